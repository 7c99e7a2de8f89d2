"""The constraint vocabulary, read off each command's declared params and flags.

A role constrains a command through names derived from the command's own
:class:`~commands.spec.Param` and :class:`~commands.spec.Flag` values, so
the vocabulary works for any registered command without a list to maintain:

* ``max_<key>`` caps an ``int`` argument or option (``max_n`` for ``N``,
  ``max_ms`` for ``MS``, ``max_timeout`` for ``--timeout``);
* ``allow_<key>`` restricts a ``choice`` or ``word`` argument or option to
  listed values (``allow_attr`` for ``ATTR``, ``allow_what`` for ``WHAT``);
* ``fanout`` applies to commands that accept ``--nodes``.

The ``trace`` options that the ``trace`` table governs (:data:`limits.TRACE_KEYS`)
are left out of the generic vocabulary. :func:`registry_issues` checks that
a registered ``trace`` command carries those options with the kinds the
engine expects, so a renamed option cannot silently escape its cap.
"""

from __future__ import annotations

from collections.abc import Mapping

from commands.spec import Command, Flag, Param

from . import limits

Spec = Param | Flag

#: Options every command gets from the framework; never constrained by ``args``.
_COMMON = frozenset({"node", "nodes", "json"})
_CHOICE_KINDS = frozenset({"choice", "word"})


def _specs(command: Command) -> list[Spec]:
    specs: list[Spec] = [*command.params, *command.flags]
    return [s for s in specs if s.key not in _COMMON]


def int_specs(command: Command) -> dict[str, Spec]:
    """Integer arguments and options a role may cap with ``max_<key>``."""
    out = {s.key: s for s in _specs(command) if s.kind == "int"}
    if command.name == limits.TRACE_COMMAND:
        out = {k: s for k, s in out.items() if k not in limits.TRACE_KEYS}
    return out


def choice_specs(command: Command) -> dict[str, Spec]:
    """Arguments and options a role may restrict with ``allow_<key>``."""
    out = {s.key: s for s in _specs(command) if s.kind in _CHOICE_KINDS or s.choices}
    if command.name == limits.TRACE_COMMAND:
        out = {k: s for k, s in out.items() if k not in limits.TRACE_KEYS}
    return out


def process_key_params(command: Command) -> list[Param]:
    """The ``KEY...`` arguments of a command that takes a process (``info PROC [KEY...]``)."""
    if not any(p.kind == "proc" for p in command.params):
        return []
    return [p for p in command.params if p.key in ("key", "keys")]


def proc_params(command: Command) -> list[Param]:
    return [p for p in command.params if p.kind == "proc"]


def hard_max(command: Command, spec: Spec, messages_cap: int) -> int | None:
    """The largest value any role may grant for ``spec`` (``None``: no built-in bound)."""
    bounds = [b for b in (spec.max, limits.HARD_MAX_BY_KEY.get(spec.key)) if b is not None]
    if command.name == limits.MAILBOX_COMMAND and spec.key == "n":
        bounds.append(messages_cap)
    return min(bounds) if bounds else None


#: What the engine expects of a registered ``trace`` command: option key -> accepted kinds.
_TRACE_FLAGS: Mapping[str, frozenset[str]] = {
    limits.TRACE_LIMIT: frozenset({"int"}),
    limits.TRACE_RATE: frozenset({"rate"}),
    limits.TRACE_SECONDS: frozenset({"int"}),
    limits.TRACE_PID: frozenset({"proc", "word", "text", "choice"}),
    limits.TRACE_RETURN: frozenset({"bool"}),
}


def registry_issues(registry: Mapping[str, Command]) -> list[str]:
    """Mismatches between registered commands and what the policy engine relies on."""
    problems: list[str] = []
    trace = registry.get(limits.TRACE_COMMAND)
    if trace is not None:
        flags = {f.key: f for f in trace.flags}
        for key, kinds in _TRACE_FLAGS.items():
            flag = flags.get(key)
            if flag is None:
                problems.append(f"trace has no --{key} option, which the trace caps are applied to")
            elif flag.kind not in kinds:
                problems.append(f"trace --{key} is of kind {flag.kind}; the policy engine expects {sorted(kinds)}")
        if not any(p.kind == "funspec" for p in trace.params):
            problems.append("trace has no funspec argument, which the modules cap is applied to")
    for name in limits.PROTECTED_COMMANDS:
        command = registry.get(name)
        if command is not None and not proc_params(command):
            problems.append(f"{name} has no process argument, which protected processes are checked against")
    return problems
