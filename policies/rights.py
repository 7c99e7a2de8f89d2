"""Merging a user's roles into their rights on one command (``docs/policies.md``, "Merge rules").

Pure functions over :class:`~gateway.config.RoleConfig` values; the engine
applies the result to an invocation, and ``describe()`` prints the same
result, so what a user is told and what is enforced cannot drift apart.

The rules, in the order a reviewer applies them:

1. *Grants are the union.* A role grants a command when a pattern in its
   ``commands`` matches the name; a privileged command only when the role
   names it exactly.
2. *An explicit deny in any role wins*: ``deny`` (commands) and
   ``deny_process_keys``, taken from every role the user has, granting or not.
3. *Everything else is the most permissive value among the roles that grant
   the command on the node* (the "granting roles" there): the largest cap (a
   role that sets no cap grants up to the hard maximum), the union of allowed
   values and modules (a role that lists none allows any), a permission if
   any of them gives it, a confirmation only if every one asks for one.
   Roles that do not grant the command, or not on that node, contribute
   nothing to it. :func:`merge` takes the roles to merge; the engine picks
   them per node (:meth:`policies.engine.UserPolicy.check`).
4. Nodes pair with commands: a command runs on a node when one role grants
   both (the command, the node, and the node's cluster).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from commands.grammar import matches_glob
from commands.spec import Command
from gateway.config import EXPENSIVE_MODES, CommandRules, RoleConfig, RoleTrace, SafetyConfig

from . import limits
from .vocabulary import choice_specs, int_specs

_NO_RULES = CommandRules()


def grants(role: RoleConfig, command: Command) -> bool:
    """Rule 1: does ``role`` grant ``command``? Privileged commands only by exact name."""
    if command.name in role.commands:
        return True
    return not command.privileged and any(matches_glob(command.name, p) for p in role.commands)


def denied_by(roles: Iterable[RoleConfig], command: str) -> str | None:
    """Rule 2: the ``deny`` entry that refuses ``command``, as ``roles.R.deny ("PATTERN")``."""
    for role in roles:
        for pattern in role.deny:
            if matches_glob(command, pattern):
                return f'roles.{role.name}.deny ("{pattern}")'
    return None


def denied_keys(roles: Iterable[RoleConfig]) -> dict[str, str]:
    """Rule 2: every denied process key -> the role path that denies it."""
    out: dict[str, str] = {}
    for role in roles:
        for key in role.deny_process_keys:
            out.setdefault(key, f"roles.{role.name}.deny_process_keys")
    return out


def paths(roles: Iterable[RoleConfig], suffix: str) -> str:
    """``roles.a.SUFFIX, roles.b.SUFFIX``: the rule text naming several roles."""
    return ", ".join(f"roles.{r.name}.{suffix}" for r in roles)


@dataclass(frozen=True)
class Cap:
    """An effective upper bound and the rule that sets it (``value=None``: no role bounds it)."""

    value: float | None
    rule: str


@dataclass(frozen=True)
class Allowed:
    """The values allowed for one argument (``values=None``: any) and the rule that says so."""

    values: tuple[str, ...] | None
    rule: str


@dataclass(frozen=True)
class TraceRights:
    """The ``trace`` caps, and the limits used when the user gives none (the safer of default and cap)."""

    max_messages: Cap
    max_rate: Cap
    max_seconds: Cap
    default_messages: int
    default_rate: int
    default_seconds: int
    modules: Allowed
    allow_return: bool
    return_rule: str
    allow_pid_all: bool
    pid_all_rule: str


@dataclass(frozen=True)
class Rights:
    """What the user may do with one command, merged over its granting roles."""

    command: Command
    roles: tuple[RoleConfig, ...]
    caps: dict[str, Cap]
    allow: dict[str, Allowed]
    fanout: bool
    fanout_rule: str
    confirm: bool
    confirm_rule: str
    expensive: str
    expensive_rule: str
    trace: TraceRights | None

    @property
    def rule(self) -> str:
        """The grant, for audit: ``roles.sre.commands, roles.oncall.commands``."""
        return paths(self.roles, "commands")


def _rules(role: RoleConfig, command: str) -> CommandRules:
    return role.args.get(command, _NO_RULES)


def merge(command: Command, granting: Sequence[RoleConfig], safety: SafetyConfig) -> Rights:
    """Rule 3 for ``command`` over its ``granting`` roles (at least one)."""
    name = command.name
    caps = {key: _cap(granting, name, key) for key in int_specs(command)}
    allow = {key: _allowed(granting, name, key) for key in choice_specs(command)}
    fanout_roles = [r for r in granting if allows_fanout(r, name)]
    confirm_roles = [r for r in granting if _rules(r, name).confirm]
    best = max(granting, key=lambda r: EXPENSIVE_MODES.index(r.expensive))
    return Rights(
        command=command,
        roles=tuple(granting),
        caps=caps,
        allow=allow,
        fanout=bool(fanout_roles),
        fanout_rule=_fanout_rule(fanout_roles[0], name) if fanout_roles else fanout_rules(granting, name),
        confirm=len(confirm_roles) == len(granting),
        confirm_rule=paths(confirm_roles, f"args.{name}.confirm"),
        expensive=best.expensive,
        expensive_rule=f'roles.{best.name}.expensive = "{best.expensive}"',
        trace=_trace(granting, safety) if name == limits.TRACE_COMMAND else None,
    )


def _cap(granting: Sequence[RoleConfig], command: str, key: str) -> Cap:
    open_roles = [r for r in granting if key not in _rules(r, command).max]
    if open_roles:
        return Cap(None, f"roles.{open_roles[0].name} sets no args.{command}.max_{key}")
    top = max(granting, key=lambda r: _rules(r, command).max[key])
    return Cap(_rules(top, command).max[key], f"roles.{top.name}.args.{command}.max_{key}")


def _allowed(granting: Sequence[RoleConfig], command: str, key: str) -> Allowed:
    open_roles = [r for r in granting if key not in _rules(r, command).allow]
    if open_roles:
        return Allowed(None, f"roles.{open_roles[0].name} sets no args.{command}.allow_{key}")
    values: dict[str, None] = {}
    for role in granting:
        values.update(dict.fromkeys(_rules(role, command).allow[key]))
    return Allowed(tuple(values), paths(granting, f"args.{command}.allow_{key}"))


def allows_fanout(role: RoleConfig, command: str) -> bool:
    """Does ``role`` allow ``--nodes`` fan-out of ``command`` (``args.C.fanout``, else the role's ``fanout``)?"""
    own = _rules(role, command).fanout
    return role.fanout if own is None else own


def _fanout_rule(role: RoleConfig, command: str) -> str:
    if _rules(role, command).fanout is not None:
        return f"roles.{role.name}.args.{command}.fanout = {str(allows_fanout(role, command)).lower()}"
    return f"roles.{role.name}.fanout = {str(role.fanout).lower()}"


def fanout_rules(roles: Iterable[RoleConfig], command: str) -> str:
    """The fan-out settings of ``roles`` for ``command``, as the rule text of a refusal."""
    return ", ".join(_fanout_rule(r, command) for r in roles)


_NO_TRACE = RoleTrace()


def _trace(granting: Sequence[RoleConfig], safety: SafetyConfig) -> TraceRights:
    defaults = safety.trace_defaults

    def cap(field: str, default: float, hard: float) -> Cap:
        best: tuple[float, str] | None = None
        for role in granting:
            own = getattr(role.trace or _NO_TRACE, field)
            value, rule = (
                (own, f"roles.{role.name}.trace.{field}")
                if own is not None
                else (default, f"safety.trace_defaults.{field} (roles.{role.name} sets no trace.{field})")
            )
            if best is None or value > best[0]:
                best = (value, rule)
        assert best is not None
        if best[0] > hard:
            return Cap(hard, f"the hard maximum trace.{field} = {hard:g}")
        return Cap(best[0], best[1])

    traces = [(r, r.trace or _NO_TRACE) for r in granting]
    open_roles = [r for r, t in traces if t.modules is None]
    if open_roles:
        modules = Allowed(None, f"roles.{open_roles[0].name} sets no trace.modules")
    else:
        union: dict[str, None] = {}
        for _, t in traces:
            union.update(dict.fromkeys(t.modules or ()))
        modules = Allowed(tuple(union), paths(granting, "trace.modules"))
    returns = [r for r, t in traces if t.allow_return]
    pid_all = [r for r, t in traces if t.allow_pid_all]
    messages = cap("max_messages", defaults.max_messages, limits.TRACE_MAX_MESSAGES)
    rate = cap("max_rate", defaults.max_rate, limits.TRACE_MAX_RATE)
    seconds = cap("max_seconds", defaults.max_seconds, limits.TRACE_MAX_SECONDS)

    def safer(default: float, top: Cap) -> int:
        assert top.value is not None
        return max(int(min(default, top.value)), 1)

    return TraceRights(
        max_messages=messages,
        max_rate=rate,
        max_seconds=seconds,
        default_messages=safer(defaults.max_messages, messages),
        default_rate=safer(defaults.max_rate, rate),
        default_seconds=safer(defaults.max_seconds, seconds),
        modules=modules,
        allow_return=bool(returns),
        return_rule=(
            f"roles.{returns[0].name}.trace.allow_return" if returns else paths(granting, "trace.allow_return = false")
        ),
        allow_pid_all=bool(pid_all),
        pid_all_rule=(
            f"roles.{pid_all[0].name}.trace.allow_pid_all"
            if pid_all
            else paths(granting, "trace.allow_pid_all = false")
        ),
    )
