"""Tab completion for the shell, generated from the command registry.

The same :data:`commands.REGISTRY` that feeds the parser and ``help`` feeds
completion, filtered by the policy engine's answers for this user: command
names they may run, then for the command being typed its options
(``--node``, ``--json``, its own flags) and the values its next argument
accepts (a parameter's choices narrowed to the values the user's roles
allow, the nodes they may run that command on, command names).
:func:`candidates` is a pure function; the :class:`RegistryCompleter`
adapts it to prompt_toolkit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from commands.spec import Command, Flag, Param


class CompletionPolicy(Protocol):
    """What completion asks the policy engine (:class:`policies.UserPolicy` answers it)."""

    def may_run(self, command: str) -> bool: ...

    def usable_nodes(self, command: str | None = None) -> list[str]: ...

    def allowed_values(self, command: str, key: str) -> tuple[str, ...] | None: ...


def candidates(text: str, registry: Mapping[str, Command], policy: CompletionPolicy) -> tuple[str, list[str]]:
    """``(word being completed, sorted candidates)`` for the line typed so far."""
    words = text.split()
    current = "" if not words or text[-1:].isspace() else words.pop()
    if not words:
        return current, _starting(current, (n for n in registry if policy.may_run(n)))
    command = registry.get(words[0])
    if command is None or not policy.may_run(command.name):
        return current, []
    args = words[1:]
    pending = _flag_awaiting_value(command, args)
    if pending is not None:
        return current, _starting(current, _values(command, pending, registry, policy))
    if current.startswith("-"):
        used = {a.partition("=")[0] for a in args if a.startswith("--")}
        flags = (f"--{f.name}" for f in command.all_flags() if f"--{f.name}" not in used)
        return current, _starting(current, flags)
    param = _next_param(command, args)
    if param is None:
        return current, []
    return current, _starting(current, _values(command, param, registry, policy))


def _flag_awaiting_value(command: Command, args: list[str]) -> Flag | None:
    if not args or not args[-1].startswith("--") or "=" in args[-1]:
        return None
    flag = command.flag(args[-1][2:])
    return flag if flag is not None and flag.kind != "bool" else None


def _next_param(command: Command, args: list[str]) -> Param | None:
    """The positional parameter the next word fills, skipping options and their values."""
    count = 0
    skip = False
    for word in args:
        if skip:
            skip = False
        elif word.startswith("--"):
            flag = command.flag(word[2:].partition("=")[0])
            skip = flag is not None and flag.kind != "bool" and "=" not in word
        else:
            count += 1
    params = command.params
    if not params:
        return None
    if count < len(params):
        return params[count]
    return params[-1] if params[-1].many else None


def _values(
    command: Command, spec: Param | Flag, registry: Mapping[str, Command], policy: CompletionPolicy
) -> Iterable[str]:
    if spec.choices:
        allowed = policy.allowed_values(command.name, spec.key)
        return spec.choices if allowed is None else [c for c in spec.choices if c in allowed]
    if spec.kind in ("node", "glob"):
        # --node/--nodes: where this command may run; a NODE argument (use): any node the user may use
        return policy.usable_nodes(command.name if isinstance(spec, Flag) else None)
    if spec.kind == "command":
        return [n for n in registry if policy.may_run(n)]
    return ()


def _starting(prefix: str, names: Iterable[str]) -> list[str]:
    return sorted({n for n in names if n.startswith(prefix)})


class RegistryCompleter(Completer):
    """prompt_toolkit completer over :func:`candidates`, asking the policy in force at each Tab."""

    def __init__(self, registry: Mapping[str, Command], policy: Callable[[], CompletionPolicy]) -> None:
        self.registry = registry
        self.policy = policy

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        current, names = candidates(document.text_before_cursor, self.registry, self.policy())
        for name in names:
            yield Completion(name, start_position=-len(current))
