"""The shell's argument grammar: one line in, one :class:`~commands.spec.Invocation` out.

Shared by the interactive shell and exec mode. Words are split like a POSIX
shell (quotes group, backslash escapes); then:

* ``--name VALUE`` and ``--name=VALUE`` set an option, ``--flag`` a boolean;
  an option given twice is a usage error (no silent "last one wins",
  which could smuggle a second ``--node`` past a reviewer);
* ``--`` ends options;
* the remaining words fill the positionals in order.

Every value is checked against its kind (``int`` bounds, ``choice`` lists,
process references and function specs via :mod:`commands.refs`). Errors are
:class:`UsageError` with one line a person can act on; the parser never
raises anything else, whatever the input (a property test holds it to that).
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Mapping
from typing import Any

from .refs import RefError, parse_funspec, parse_proc
from .spec import Command, Flag, Invocation, Param

MAX_LINE = 4096
MAX_WORDS = 64


class UsageError(ValueError):
    """The line does not fit the grammar. ``command`` is set when it is known."""

    def __init__(self, message: str, command: Command | None = None) -> None:
        super().__init__(message)
        self.command = command


def split_words(line: str) -> list[str]:
    if len(line) > MAX_LINE:
        raise UsageError(f"line too long ({len(line)} characters; the limit is {MAX_LINE})")
    if any((ord(c) < 0x20 and c not in "\t") or ord(c) == 0x7F for c in line):
        raise UsageError("the line contains control characters")
    try:
        words = shlex.split(line, posix=True)
    except ValueError as exc:
        raise UsageError(f"cannot split the line: {exc}") from None
    if len(words) > MAX_WORDS:
        raise UsageError(f"too many words ({len(words)}; the limit is {MAX_WORDS})")
    return words


def parse_line(line: str, registry: Mapping[str, Command]) -> Invocation | None:
    """Parse a whole line; ``None`` for an empty line."""
    words = split_words(line)
    if not words:
        return None
    name = words[0]
    command = registry.get(name)
    if command is None:
        hint = _closest(name, registry)
        raise UsageError(f"unknown command {_shown(name)}" + (f" (did you mean {hint}?)" if hint else "; try help"))
    return parse_words(command, words[1:], line)


def parse_words(command: Command, words: list[str], line: str = "") -> Invocation:
    flags: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    options_done = False
    while i < len(words):
        word = words[i]
        i += 1
        if not options_done and word == "--":
            options_done = True
            continue
        if not options_done and word.startswith("--") and len(word) > 2:
            name, eq, inline = word[2:].partition("=")
            flag = command.flag(name)
            if flag is None:
                raise UsageError(
                    f"{command.name}: unknown option {_shown('--' + name)}; usage: {command.usage()}", command
                )
            if flag.key in flags:
                raise UsageError(f"{command.name}: --{name} given twice", command)
            if flag.kind == "bool":
                if eq:
                    raise UsageError(f"{command.name}: --{name} takes no value", command)
                flags[flag.key] = True
                continue
            if eq:
                value = inline
            elif i < len(words):
                value = words[i]
                i += 1
            else:
                raise UsageError(f"{command.name}: --{name} needs a value ({flag.shown})", command)
            if value == "":
                raise UsageError(f"{command.name}: --{name} needs a non-empty value", command)
            flags[flag.key] = _convert(command, flag, value)
            continue
        positional.append(word)

    args = _fill_positionals(command, positional)
    for flag in command.flags:
        if flag.key not in flags and flag.default is not None:
            flags[flag.key] = flag.default
    node = flags.pop("node", None)
    nodes_glob = flags.pop("nodes", None)
    as_json = bool(flags.pop("json", False))
    if node is not None and nodes_glob is not None:
        raise UsageError(f"{command.name}: give --node or --nodes, not both", command)
    return Invocation(command, args, flags, line, node=node, nodes_glob=nodes_glob, json=as_json)


def _fill_positionals(command: Command, words: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    params = list(command.params)
    for index, param in enumerate(params):
        if param.many:
            values = words[index:]
            words = words[:index]
            if param.required and not values:
                raise UsageError(f"missing {param.name}; usage: {command.usage()}", command)
            args[param.key] = [_convert(command, param, w) for w in values]
            break
        if index < len(words):
            args[param.key] = _convert(command, param, words[index])
        elif param.required:
            raise UsageError(f"missing {param.name}; usage: {command.usage()}", command)
        else:
            args[param.key] = param.default
    else:
        if len(words) > len(params):
            extra = words[len(params)]
            raise UsageError(f"{command.name}: unexpected argument {_shown(extra)}; usage: {command.usage()}", command)
    return args


_NODE = re.compile(r"^[A-Za-z0-9_-]+@[A-Za-z0-9_.:-]+$")
_GLOB = re.compile(r"^[A-Za-z0-9_.*?@:\[\]!-]+$")
_WORD = re.compile(r"^[A-Za-z0-9_.:@/-]+$")
_RATE = re.compile(r"^([0-9]{1,9})/([0-9]{1,6})$")
_PORT = re.compile(
    r"^(?:#Port<[0-9]{1,10}\.[0-9]{1,20}>|[0-9]{1,10}\.[0-9]{1,20}|[0-9]{1,20}|[a-z][A-Za-z0-9_@]{0,254})$"
)


def _convert(command: Command, spec: Param | Flag, text: str) -> Any:
    """Check and convert one value according to its declared kind."""
    what = spec.name if isinstance(spec, Param) else f"--{spec.name}"
    kind = spec.kind
    try:
        if kind == "int":
            if not re.fullmatch(r"-?[0-9]{1,12}", text):
                raise UsageError(f"{what} must be a whole number, not {_shown(text)}")
            value = int(text)
            if spec.min is not None and value < spec.min:
                raise UsageError(f"{what} must be at least {spec.min}")
            if spec.max is not None and value > spec.max:
                raise UsageError(f"{what} must be at most {spec.max}")
            return value
        if kind == "choice":
            if text not in spec.choices:
                raise UsageError(f"{what} must be one of {', '.join(spec.choices)}; got {_shown(text)}")
            return text
        if kind == "proc":
            return parse_proc(text)
        if kind == "funspec":
            return parse_funspec(text)
        if kind == "node":
            if not _NODE.match(text):
                raise UsageError(f"{what}: {_shown(text)} is not a node name (name@host)")
            return text
        if kind == "glob":
            if not _GLOB.match(text):
                raise UsageError(f"{what}: {_shown(text)} is not a node name pattern")
            return text
        if kind == "rate":
            m = _RATE.match(text)
            if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
                raise UsageError(f"{what} must look like N/SECONDS (e.g. 10/1), not {_shown(text)}")
            return (int(m.group(1)), int(m.group(2)))
        if kind == "port":
            if not _PORT.match(text):
                raise UsageError(
                    f"{what}: {_shown(text)} is not a port (#Port<0.123>, 0.123, 123 or a registered name)"
                )
            return text
        if kind in ("word", "command"):
            if not _WORD.match(text) or len(text) > 255:
                raise UsageError(f"{what}: {_shown(text)} is not a valid {kind}")
            if spec.choices and text not in spec.choices:
                raise UsageError(f"{what} must be one of {', '.join(spec.choices)}; got {_shown(text)}")
            return text
        if kind == "text":
            if len(text) > 1024:
                raise UsageError(f"{what} is longer than 1024 characters")
            return text
    except RefError as exc:
        raise UsageError(f"{what}: {exc}", command) from None
    except UsageError as exc:
        raise UsageError(f"{command.name}: {exc}", command) from None
    raise UsageError(f"{what}: unsupported kind {kind}", command)  # pragma: no cover


def _shown(text: str, limit: int = 40) -> str:
    """A user's word, quoted and cut, for an error message (never raw control characters)."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return repr(clean if len(clean) <= limit else clean[:limit] + "...")


def _closest(name: str, registry: Mapping[str, Command]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(name, list(registry), n=1, cutoff=0.7)
    return matches[0] if matches else None


def matches_glob(name: str, pattern: str) -> bool:
    """Node and name globs: ``*``, ``?`` and ``[...]``, case-sensitive."""
    return fnmatch.fnmatchcase(name, pattern)
