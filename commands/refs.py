"""Process references and function specs, as users type them (SPEC "Shell and exec mode").

Parsed on the gateway into plain values that travel to the target as data:
names stay strings (sent as binaries and resolved there with
``binary_to_existing_atom``, so an unknown name can never create an atom),
pid numbers stay integers.

Process references: ``<0.123.0>``, ``0.123.0``, ``#PID<0.123.0>``, a
registered name (``my_server``, ``MyApp.Worker``, ``Elixir.MyApp.Worker``,
``'quoted name'``) or ``global:NAME``.

Function specs: ``mod:fun/arity``, ``mod:fun``, ``mod``, and the Elixir forms
``MyApp.Worker.handle_call/3``, ``MyApp.Worker``, ``:queue.in/2``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_NAME = 255


class RefError(ValueError):
    """The text is not a process reference or function spec; the message says why."""


@dataclass(frozen=True)
class PidRef:
    node_index: int
    number: int
    serial: int

    def __str__(self) -> str:
        return f"<{self.node_index}.{self.number}.{self.serial}>"


@dataclass(frozen=True)
class NameRef:
    """A locally registered name (atom text, Elixir aliases already prefixed)."""

    name: str

    def __str__(self) -> str:
        return display_module(self.name)


@dataclass(frozen=True)
class GlobalRef:
    """A globally registered name (atom text, Elixir aliases already prefixed)."""

    name: str

    def __str__(self) -> str:
        return f"global:{display_module(self.name)}"


ProcRef = PidRef | NameRef | GlobalRef


@dataclass(frozen=True)
class FunSpec:
    module: str
    function: str | None = None
    arity: int | None = None

    def __str__(self) -> str:
        return format_mfa(self.module, self.function, self.arity)


_PID = re.compile(r"^(?:#PID)?<?(\d{1,10})\.(\d{1,10})\.(\d{1,10})>?$")
_ATOM = re.compile(r"^[a-z][A-Za-z0-9_@]*$")
_ALIAS = re.compile(r"^[A-Z][A-Za-z0-9_]*(?:\.[A-Z][A-Za-z0-9_]*)*$")
_ELIXIR_FUN = re.compile(r"^[a-z_][A-Za-z0-9_]*[?!]?$")
_ARITY = re.compile(r"^\d{1,3}$")


def _check_text(text: str, what: str) -> str:
    if not text:
        raise RefError(f"empty {what}")
    if len(text) > MAX_NAME:
        raise RefError(f"{what} longer than {MAX_NAME} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise RefError(f"{what} contains control characters")
    return text


def _unquote(text: str) -> str | None:
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    return None


def atom_name(text: str) -> str:
    """The atom text for a module or process name as typed (Elixir aliases prefixed)."""
    _check_text(text, "name")
    quoted = _unquote(text)
    if quoted is not None:
        return _check_text(quoted, "name")
    if text.startswith(":") and len(text) > 1:
        return atom_name(text[1:])
    if text.startswith("Elixir."):
        return text
    if _ALIAS.match(text):
        return "Elixir." + text
    if _ATOM.match(text):
        return text
    raise RefError(f"{text!r} is not a name: use an atom (my_server), an Elixir alias (MyApp.Worker) or 'quoted'")


def parse_proc(text: str) -> ProcRef:
    """Parse a process reference; raise :class:`RefError` with a usable message."""
    text = _check_text(text.strip(), "process reference")
    m = _PID.match(text)
    if m:
        a, b, c = (int(g) for g in m.groups())
        if max(a, b, c) >= 2**32:
            raise RefError(f"{text!r}: pid numbers must be below 2^32")
        return PidRef(a, b, c)
    if text.startswith("<") or text.startswith("#PID"):
        raise RefError(f"{text!r} is not a pid (expected <0.123.0>)")
    if text.startswith("global:"):
        return GlobalRef(atom_name(text[len("global:") :]))
    return NameRef(atom_name(text))


def parse_funspec(text: str) -> FunSpec:
    """Parse ``mod:fun/arity`` and the Elixir forms into a :class:`FunSpec`."""
    text = _check_text(text.strip(), "function spec")
    arity: int | None = None
    if "/" in text:
        text, _, arity_text = text.rpartition("/")
        if not _ARITY.match(arity_text):
            raise RefError(f"arity {arity_text!r} is not a number from 0 to 255")
        arity = int(arity_text)
        if arity > 255:
            raise RefError("arity above 255")
    if text.startswith(":") and ":" not in text[1:]:
        # :queue.in -- an Erlang module in Elixir syntax
        module, dot, function = text[1:].partition(".")
        return _spec(atom_name(module), function if dot else None, arity, text)
    if ":" in text:
        module, _, function = text.partition(":")
        return _spec(atom_name(module), function or None, arity, text)
    head, dot, last = text.rpartition(".")
    if dot and _ELIXIR_FUN.match(last) and _ALIAS.match(head.removeprefix("Elixir.")):
        # MyApp.Worker.handle_call or Elixir.MyApp.Worker.handle_call
        return _spec(atom_name(head), last, arity, text)
    if _ALIAS.match(text.removeprefix("Elixir.")):
        return _spec(atom_name(text), None, arity, text)
    if _ATOM.match(text) or _unquote(text) is not None:
        return _spec(atom_name(text), None, arity, text)
    raise RefError(f"{text!r} is not a function spec: use mod:fun/arity, mod:fun, mod, or MyApp.Worker.fun/2")


def _spec(module: str, function: str | None, arity: int | None, text: str) -> FunSpec:
    if function is not None:
        unq = _unquote(function)
        function = _check_text(unq, "function name") if unq is not None else function
        if unq is None and not (_ATOM.match(function) or _ELIXIR_FUN.match(function)):
            raise RefError(f"{function!r} in {text!r} is not a function name")
    if arity is not None and function is None:
        raise RefError(f"{text!r}: an arity needs a function name (mod:fun/arity)")
    return FunSpec(module, function, arity)


def _quoted(name: str, plain: re.Pattern[str]) -> str:
    return name if plain.match(name) else "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def display_module(atom: str) -> str:
    """``Elixir.MyApp.Worker`` shows as ``MyApp.Worker``; Erlang modules as they are."""
    return atom[len("Elixir.") :] if atom.startswith("Elixir.") else atom


def format_mfa(module: str, function: str | None = None, arity: int | None = None) -> str:
    """``queue:in/2`` for Erlang, ``MyApp.Worker.handle_call/3`` for Elixir modules."""
    if module.startswith("Elixir."):
        text = display_module(module)
        if function is not None:
            text += f".{_quoted(function, _ELIXIR_FUN)}"
    else:
        text = _quoted(module, _ATOM)
        if function is not None:
            text += f":{_quoted(function, _ATOM)}"
    if arity is not None and function is not None:
        text += f"/{arity}"
    return text
