"""The policy engine: may this user run this parsed command, and with what values?

Decisions are made server-side, on the parsed :class:`~commands.spec.Invocation`,
before anything reaches a node, in one place (:meth:`UserPolicy.check`)
shared by the shell and exec mode. The dispatcher runs exactly
:attr:`Decision.invocation` (values lowered to the user's caps, with
``clamped`` filled) on exactly :attr:`Decision.nodes`, after the user has
typed :attr:`Confirmation.answer` when :attr:`Decision.confirm` is set. A
refusal is :class:`Denied`, whose text names the deciding rule by its key
path in the config (``roles.contractor.deny_process_keys``).

The checks, in order (``docs/policies.md`` has the full model):

1. the command: a ``deny`` in any role refuses it; otherwise some role must
   grant it (privileged commands only by exact name);
2. built-in protections no role can lift: protected processes for
   ``state``/``messages``/``kill``, denied process keys, node arguments;
3. the nodes: each must be granted, together with the command, by one role;
   ``--nodes`` fan-out is narrowed to the nodes where such a role also
   allows fan-out;
4. the arguments: allowed values, integer caps, and for ``trace`` the
   message, rate and time limits (filled in when absent: they always apply);
5. the cost: privileged commands are always confirmed; expensive ones follow
   the roles' ``expensive`` setting; ``args.CMD.confirm`` asks every time.

Steps 4 and 5 apply, on each node, the rights merged over the roles that
grant the command *on that node* (for a fan-out: and allow fan-out there),
never those of a role that grants it only elsewhere: a role granting
``trace`` on staging nodes must not lift the module list another role sets
on production nodes. A fan-out whose nodes fall under different roles is
checked against each group's rights in turn, so one invocation satisfies
all of them: values are lowered to the smallest cap, a value refused on any
of its nodes refuses it (the reason names those nodes), the strictest
``expensive`` setting applies.

How roles combine is in :mod:`policies.rights`; the hard numbers in
:mod:`policies.limits`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from commands.grammar import UsageError, matches_glob
from commands.protected import name_label, protected_labels
from commands.refs import FunSpec, NameRef
from commands.spec import Command, Flag, Invocation, Param
from gateway.config import EXPENSIVE_MODES, Config, RoleConfig, SafetyConfig, TraceLimits

from . import limits
from .rights import Cap, Rights, allows_fanout, denied_by, denied_keys, fanout_rules, grants, merge, paths
from .vocabulary import hard_max, int_specs, proc_params, process_key_params


class Denied(Exception):
    """The policy refuses the command. ``reason`` names the rule; ``rule`` is its key path, for audit."""

    def __init__(self, reason: str, rule: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rule = rule


@dataclass(frozen=True)
class Confirmation:
    """Show ``prompt``; run only if the user types exactly ``answer``; anything else cancels."""

    prompt: str
    answer: str
    rule: str


@dataclass(frozen=True)
class Decision:
    """An allowed command: what to run, where, and what to ask or tell first."""

    #: Run this, not the parsed invocation: values may be lowered (``clamped``) or filled in.
    invocation: Invocation
    #: The grant, for audit (``roles.sre.commands``).
    rule: str
    #: The nodes to run on, in order (empty for commands that need no node).
    nodes: tuple[str, ...] = ()
    #: When set, the dispatcher asks and runs only on the exact answer.
    confirm: Confirmation | None = None
    #: One line each, shown to the user before running (lowered values, narrowed keys).
    notices: tuple[str, ...] = ()

    @property
    def audit(self) -> str:
        """The audit log's ``decision`` text."""
        parts = [f"allowed by {self.rule}"]
        parts += [f"{k} {asked}->{granted}" for k, (asked, granted) in self.invocation.clamped.items()]
        if self.confirm is not None:
            parts.append(f"confirmation required by {self.confirm.rule}")
        return "; ".join(parts)


class _Edit:
    """The invocation being adjusted: values set by key, lowered values recorded.

    It may be checked against several rights in turn (a fan-out over nodes of different
    roles): a value lowered twice is recorded once, from what the user asked to the last
    value, and each key keeps one notice, the last.
    """

    def __init__(self, inv: Invocation) -> None:
        self.inv = inv
        self.params = {p.key for p in inv.command.params}
        self.args = dict(inv.args)
        self.flags = dict(inv.flags)
        self.clamped: dict[str, tuple[Any, Any]] = dict(inv.clamped)
        self._notices: dict[str, str] = {}

    def get(self, key: str) -> Any:
        return self.args.get(key) if key in self.params else self.flags.get(key)

    def asked(self, key: str) -> Any:
        """The value as parsed, before any change (``None``: not given, and no default)."""
        return self.inv.args.get(key) if key in self.params else self.inv.flags.get(key)

    def set(self, key: str, value: Any) -> None:
        (self.args if key in self.params else self.flags)[key] = value

    def notice(self, key: str, text: str) -> None:
        self._notices[key] = text

    @property
    def notices(self) -> tuple[str, ...]:
        return tuple(self._notices.values())

    def lower(self, key: str, shown: str, granted: Any, rule: str) -> None:
        asked = self.asked(key)
        self.set(key, granted)
        self.clamped[key] = (asked, granted)
        self.notice(key, f"{self.inv.name}: {shown} lowered from {_text(asked)} to {_text(granted)} ({rule})")

    def result(self) -> Invocation:
        return replace(self.inv, args=self.args, flags=self.flags, clamped=self.clamped)


def _text(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}/{value[1]}"
    return str(value)


def _values(value: Any) -> list[Any]:
    """An argument's values as a list (``many`` params hold lists; absent is empty)."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) and not isinstance(value, str) else [value]


class UserPolicy:
    """The merged rights of one user (their roles, the configured nodes, the safety settings)."""

    def __init__(
        self,
        user: str,
        roles: Iterable[RoleConfig],
        registry: Mapping[str, Command],
        *,
        nodes: Mapping[str, str] | None = None,
        safety: SafetyConfig | None = None,
    ) -> None:
        self.user = user
        self.roles = tuple(roles)
        self.registry = registry
        #: Configured node -> its cluster name.
        self.nodes = dict(nodes or {})
        self.safety = safety or SafetyConfig()

    # -- what the user may run (help, completion, nodes, use) -------------------------

    def granting(self, command: Command) -> list[RoleConfig]:
        return [r for r in self.roles if grants(r, command)]

    def rights(self, name: str) -> Rights | None:
        """The rights on ``name`` merged over every granting role, or ``None`` if denied or not granted.

        What the user may do with ``name`` *somewhere*: enough to say whether it is granted, and
        for completion. :meth:`check` merges per node (:meth:`node_groups`).
        """
        command = self.registry.get(name)
        if command is None or denied_by(self.roles, name) is not None:
            return None
        granting = self.granting(command)
        if not granting:
            return None
        return merge(command, granting, self.safety)

    def trace_caps(self) -> TraceLimits | None:
        """The merged ``trace`` caps of the roles granting ``trace``, or None if none does.

        Over every granting role: an upper bound. The limits of an actual trace are set per
        node by :meth:`check` (filled in and lowered in :attr:`Decision.invocation`).
        """
        rights = self.rights(limits.TRACE_COMMAND)
        if rights is None or rights.trace is None:
            return None
        t = rights.trace
        assert t.max_messages.value is not None and t.max_rate.value is not None and t.max_seconds.value is not None
        return TraceLimits(int(t.max_messages.value), int(t.max_rate.value), float(t.max_seconds.value))

    def may_run(self, command: str) -> bool:
        """For ``help`` and completion: is ``command`` granted (on some node) and not denied?"""
        return self.rights(command) is not None

    def covers(self, role: RoleConfig, node: str) -> bool:
        """Does ``role`` grant ``node`` (its name and its cluster)?"""
        cluster = self.nodes.get(node)
        return (
            cluster is not None
            and any(matches_glob(node, p) for p in role.nodes)
            and any(matches_glob(cluster, p) for p in role.clusters)
        )

    def may_use_node(self, node: str) -> bool:
        """For ``nodes`` and ``use``: does any role grant ``node``?"""
        return any(self.covers(r, node) for r in self.roles)

    def usable_nodes(self, command: str | None = None) -> list[str]:
        """Configured nodes the user may use (for ``command``, if given), in config order."""
        if command is None:
            return [n for n in self.nodes if self.may_use_node(n)]
        rights = self.rights(command)
        if rights is None:
            return []
        return [n for n in self.nodes if any(self.covers(r, n) for r in rights.roles)]

    def node_groups(self, command: Command) -> list[tuple[tuple[str, ...], tuple[RoleConfig, ...]]]:
        """The nodes the user may run ``command`` on, grouped by the granting roles that cover them.

        Each group's rights are those roles' merge. A command that needs no node (or that no
        usable node is open to) is one group of every granting role, without nodes.
        """
        granting = self.granting(command)
        if not command.remote:
            return [((), tuple(granting))]
        nodes = [n for n in self.nodes if any(self.covers(r, n) for r in granting)]
        if not nodes:
            return [((), tuple(granting))]
        return _grouped(nodes, {n: [r for r in granting if self.covers(r, n)] for n in nodes})

    def allowed_values(self, command: str, key: str) -> tuple[str, ...] | None:
        """For completion: the values the user may give for ``key`` (``None``: any the command accepts)."""
        rights = self.rights(command)
        if rights is None:
            return ()
        allowed = rights.allow.get(key)
        return None if allowed is None else allowed.values

    def int_limit(self, rights: Rights, key: str) -> Cap:
        """The effective cap on integer ``key``: the roles' cap, lowered to the hard maximum."""
        command = rights.command
        cap = rights.caps[key]
        hard = hard_max(command, int_specs(command)[key], self.safety.messages_cap)
        if hard is not None and (cap.value is None or hard < cap.value):
            return Cap(hard, f"the hard maximum for {command.name} {key}")
        return cap

    def describe(self) -> dict[str, Any]:
        """Effective permissions with caps, for ``whoami`` and ``policy`` (JSON-serialisable)."""
        from .describe import describe

        return describe(self)

    # -- the check ------------------------------------------------------------------------

    def check(self, inv: Invocation, node: str | None) -> Decision:
        """Allow ``inv`` on ``node`` (or on its ``--nodes`` glob), or raise :class:`Denied`.

        ``node`` is the resolved target of a remote command (``--node``, the ``use``d
        node, or the only node); it is ignored for commands that need none and for
        fan-out, where the nodes come from the glob. Raises :class:`UsageError` only
        for a fan-out glob that matches no configured node.
        """
        command = inv.command
        name = command.name
        if self.registry.get(name) is not command:
            raise Denied(f"{name} is not a registered command", "registry")
        rule = denied_by(self.roles, name)
        if rule is not None:
            raise Denied(f"{name} is denied to {self.user} by {rule}", rule)
        granting = self.granting(command)
        if not granting:
            raise self._not_granted(command)
        edit = _Edit(inv)
        self._protected(edit)
        self._process_keys(edit)
        self._node_args(edit)
        nodes, groups = self._placement(inv, node, granting)
        merged = [(where, merge(command, roles, self.safety)) for where, roles in groups]
        for where, rights in merged:
            try:
                self._allowed_values(edit, rights)
                self._int_caps(edit, rights)
                if rights.trace is not None:
                    self._trace(edit, rights)
            except Denied as exc:
                if len(merged) == 1:
                    raise
                raise Denied(
                    f"{exc.reason}; this applies on {_where(where)}: narrow --nodes to leave them out", exc.rule
                ) from None
        result = edit.result()
        deciding = {r.name: r for _, roles in groups for r in roles}
        return Decision(
            invocation=result,
            rule=paths(deciding.values(), "commands"),
            nodes=nodes,
            confirm=self._confirmation(result, [rights for _, rights in merged], nodes),
            notices=edit.notices,
        )

    def _not_granted(self, command: Command) -> Denied:
        if not self.roles:
            return Denied(f"{self.user} has no roles, so may run nothing (users.{self.user}.roles)", "users.roles")
        rule = paths(self.roles, "commands")
        if command.privileged and any(matches_glob(command.name, p) for r in self.roles for p in r.commands):
            return Denied(
                f"{command.name} is privileged: a role must name it exactly, a glob never grants it ({rule})", rule
            )
        return Denied(f"no role of {self.user} grants {command.name} ({rule})", rule)

    def _protected(self, edit: _Edit) -> None:
        """Built-in: ``state``, ``messages`` and ``kill`` refuse protected processes, by name.

        So does ``info PROC KEY...`` asking for a key that shows what such a command
        shows (``info auth messages`` reads the mailbox ``messages auth`` would).
        """
        name = edit.inv.name
        keys = [str(v) for p in process_key_params(edit.inv.command) for v in _values(edit.get(p.key))]
        if name not in limits.PROTECTED_COMMANDS and not any(
            limits.KEY_COMMANDS.get(k) in limits.PROTECTED_COMMANDS for k in keys
        ):
            return
        protected = self.protected_names()
        for param in proc_params(edit.inv.command):
            for ref in _values(edit.get(param.key)):
                label = name_label(ref)
                if label is not None and label in protected:
                    raise Denied(
                        f"{name} refuses the protected process {ref} for every role "
                        "(built-in protection, safety.protected_processes)",
                        "safety.protected_processes",
                    )

    def protected_names(self) -> frozenset[str]:
        """Protected process names as atom text (``global:NAME`` for global names), as the commands check them."""
        return protected_labels(self.safety.protected_processes)

    def _process_keys(self, edit: _Edit) -> None:
        """``deny_process_keys`` from every role: refuse asked keys, narrow default groups."""
        denied = denied_keys(self.roles)
        if not denied:
            return
        name = edit.inv.name
        for key, command in limits.KEY_COMMANDS.items():
            if name == command and key in denied:
                raise Denied(f"{name} shows process key {key}, which {denied[key]} denies", denied[key])
        if all(edit.get(p.key) is None for p in proc_params(edit.inv.command)):
            return  # no process named (``info`` alone is the node overview)
        for param in process_key_params(edit.inv.command):
            asked = [str(v) for v in _values(edit.get(param.key))]
            kept: list[str] = []
            narrowed_by: str | None = None
            for value in asked or list(limits.PROCESS_KEY_GROUPS):
                if value in denied:
                    raise Denied(f"{name}: process key {value} is denied by {denied[value]}", denied[value])
                members = limits.PROCESS_KEY_GROUPS.get(value, ())
                hidden = [k for k in members if k in denied]
                if not hidden:
                    kept.append(value)
                    continue
                rule = denied[hidden[0]]
                others = [k for k in members if k not in denied]
                if asked:
                    raise Denied(
                        f"{name}: {value} shows {', '.join(hidden)}, which {rule} denies; "
                        f"ask for the other keys instead ({', '.join(others)})",
                        rule,
                    )
                kept.extend(others)
                narrowed_by = narrowed_by or rule
            if narrowed_by is None:
                continue
            if not param.many or (param.choices and any(k not in param.choices for k in kept)):
                raise Denied(
                    f"{name}: the default keys include keys denied by {narrowed_by}; name the keys you need",
                    narrowed_by,
                )
            edit.set(param.key, kept)
            edit.notice(param.key, f"{name}: showing {', '.join(kept)} (keys denied by {narrowed_by} left out)")

    def _node_args(self, edit: _Edit) -> None:
        """Node-valued arguments (``use NODE``) must name a node the user may use.

        The common ``--node`` option is not among ``command.flags``: it is the target, checked later.
        """
        command = edit.inv.command
        specs: list[Param | Flag] = [*command.params, *command.flags]
        for spec in specs:
            if spec.kind != "node":
                continue
            for value in _values(edit.get(spec.key)):
                if not self.may_use_node(str(value)):
                    raise Denied(
                        f"{value} is not a node {self.user} may use (not configured, or no role's nodes match it; "
                        f"{paths(self.roles, 'nodes')})",
                        paths(self.roles, "nodes"),
                    )

    def _placement(
        self, inv: Invocation, node: str | None, granting: Sequence[RoleConfig]
    ) -> tuple[tuple[str, ...], list[tuple[tuple[str, ...], tuple[RoleConfig, ...]]]]:
        """The nodes to run on (config order), and the roles whose rights apply, by group of nodes.

        On a node, the granting roles that cover it; for a fan-out, those that also allow it.
        A command that needs no node is one group of every granting role.
        """
        command = inv.command
        name = command.name
        if not command.remote:
            return (), [((), tuple(granting))]
        rule = paths(granting, "nodes")
        if inv.nodes_glob is None:
            if node is None:
                raise ValueError(f"{name} is remote: resolve its node before the policy check")
            here = tuple(r for r in granting if self.covers(r, node))
            if not here:
                raise Denied(
                    f"{self.user} may not run {name} on {node} (not configured, or no role granting "
                    f"{name} has a nodes/clusters pattern matching it: {rule})",
                    rule,
                )
            return (node,), [((node,), here)]
        if not command.fanout or not any(allows_fanout(r, name) for r in granting):
            fanout_rule = fanout_rules(granting, name)
            raise Denied(f"{name} --nodes: fan-out is not allowed ({fanout_rule})", fanout_rule)
        matched = [n for n in self.nodes if matches_glob(n, inv.nodes_glob)]
        if not matched:
            raise UsageError(f"--nodes {inv.nodes_glob} matches no configured node; try nodes", command)
        covering = {n: [r for r in granting if self.covers(r, n)] for n in matched}
        granted = [n for n in matched if covering[n]]
        if not granted:
            raise Denied(
                f"{name} --nodes {inv.nodes_glob}: no matching node is one you may run {name} on ({rule})", rule
            )
        fanning = {n: [r for r in covering[n] if allows_fanout(r, name)] for n in granted}
        nodes = [n for n in granted if fanning[n]]
        if not nodes:
            roles = {r.name: r for n in granted for r in covering[n]}
            fanout_rule = fanout_rules(roles.values(), name)
            raise Denied(
                f"{name} --nodes {inv.nodes_glob}: fan-out is not allowed on the matching nodes you may run "
                f"{name} on ({fanout_rule})",
                fanout_rule,
            )
        return tuple(nodes), _grouped(nodes, fanning)

    def _allowed_values(self, edit: _Edit, rights: Rights) -> None:
        name = edit.inv.name
        for key, allowed in rights.allow.items():
            if allowed.values is None:
                continue
            values = _values(edit.get(key))
            shown = key.upper()
            if not values:
                raise Denied(
                    f"{name}: give {shown} explicitly; you may use {', '.join(allowed.values)} ({allowed.rule})",
                    allowed.rule,
                )
            for value in values:
                if str(value) not in allowed.values:
                    raise Denied(
                        f"{name}: {shown} {value} is not allowed; you may use {', '.join(allowed.values)} "
                        f"({allowed.rule})",
                        allowed.rule,
                    )

    def _int_caps(self, edit: _Edit, rights: Rights) -> None:
        name = edit.inv.name
        for key, spec in int_specs(edit.inv.command).items():
            limit = self.int_limit(rights, key)
            if limit.value is None:
                continue
            top = int(limit.value)
            shown = spec.name if key in edit.params else f"--{spec.name}"
            value = edit.get(key)
            if edit.asked(key) is None:  # not given: a role's cap fills it in
                if (value is None and rights.caps[key].value is not None) or (value is not None and value > top):
                    edit.set(key, top)
                    edit.notice(key, f"{name}: {shown} set to {top}, your cap ({limit.rule})")
                continue
            if not isinstance(value, int):
                raise Denied(f"{name}: cannot check {shown} against its cap ({limit.rule})", limit.rule)
            if value > top:
                edit.lower(key, shown, top, limit.rule)

    def _trace(self, edit: _Edit, rights: Rights) -> None:
        """The trace caps; limits are filled in when absent, so they always apply (safety rule 6)."""
        t = rights.trace
        assert t is not None
        command = edit.inv.command
        if t.modules.values is not None:
            for param in command.params:
                if param.kind != "funspec":
                    continue
                for spec in _values(edit.get(param.key)):
                    module = spec.module if isinstance(spec, FunSpec) else str(spec)
                    if not any(matches_glob(module, g) for g in t.modules.values):
                        raise Denied(
                            f"trace: module {module} is outside your modules {', '.join(t.modules.values)} "
                            f"({t.modules.rule})",
                            t.modules.rule,
                        )
        if edit.get(limits.TRACE_RETURN) and not t.allow_return:
            raise Denied(f"trace --return is not allowed ({t.return_rule})", t.return_rule)
        pid = edit.get(limits.TRACE_PID)
        if _label(pid) in (None, limits.TRACE_PID_ALL) and not t.allow_pid_all:
            raise Denied(
                f"trace over all processes is not allowed: give --pid PROC, new or existing ({t.pid_all_rule})",
                t.pid_all_rule,
            )
        self._trace_count(edit, limits.TRACE_LIMIT, t.max_messages, t.default_messages)
        self._trace_count(edit, limits.TRACE_SECONDS, t.max_seconds, t.default_seconds)
        cap = t.max_rate
        assert cap.value is not None
        rate = edit.get(limits.TRACE_RATE)
        if edit.asked(limits.TRACE_RATE) is None:
            filled = t.default_rate if rate is None else min(rate[0], t.default_rate)
            edit.set(limits.TRACE_RATE, (filled, 1))
        elif not (isinstance(rate, tuple) and len(rate) == 2 and all(isinstance(x, int) and x > 0 for x in rate)):
            raise Denied(f"trace: cannot check --rate against its cap ({cap.rule})", cap.rule)
        elif rate[0] > cap.value * rate[1]:
            edit.lower(limits.TRACE_RATE, "--rate", (max(int(cap.value * rate[1]), 1), rate[1]), cap.rule)

    def _trace_count(self, edit: _Edit, key: str, cap: Cap, default: int) -> None:
        assert cap.value is not None
        top = max(int(cap.value), 1)
        value = edit.get(key)
        if edit.asked(key) is None:  # filled in: the safer of the default and the cap
            edit.set(key, default if value is None else min(value, default))
        elif not isinstance(value, int):
            raise Denied(f"trace: cannot check --{key} against its cap ({cap.rule})", cap.rule)
        elif value > top:
            edit.lower(key, f"--{key}", top, cap.rule)

    def _confirmation(self, inv: Invocation, merged: Sequence[Rights], nodes: Sequence[str]) -> Confirmation | None:
        """Privileged: always; expensive: the strictest setting among ``merged`` (one per group of
        nodes) decides; ``args.C.confirm``: if any group asks."""
        command = inv.command
        rights = min(merged, key=lambda r: EXPENSIVE_MODES.index(r.expensive))
        asking = next((r for r in merged if r.confirm), None)
        where = _where(nodes)
        reasons = []
        if command.name in limits.EXPENSIVE_COMMANDS:
            reasons.append(limits.EXPENSIVE_COMMANDS[command.name])
        window = inv.get(limits.WINDOW_KEY)
        if isinstance(window, int) and window > limits.EXPENSIVE_WINDOW_MS:
            reasons.append(f"it samples for {window} ms (more than {limits.EXPENSIVE_WINDOW_MS} ms)")
        if len(nodes) > limits.EXPENSIVE_FANOUT_NODES:
            reasons.append(f"it runs on {len(nodes)} nodes at once (more than {limits.EXPENSIVE_FANOUT_NODES})")
        expensive = bool(reasons) and rights.expensive != "allow"
        if reasons and rights.expensive == "refuse":
            raise Denied(
                f"{command.name} is expensive ({'; '.join(reasons)}) and no role granting it allows expensive "
                f"commands ({rights.expensive_rule})",
                rights.expensive_rule,
            )
        generic = command.privileged and not command.confirms  # kill asks for the pid itself
        if not (generic or expensive or asking):
            return None
        answer, rules, lines = "yes", [], []
        if generic:
            target = next((_values(inv.args.get(p.key)) for p in command.params), [])
            answer = str(target[0]) if target else command.name
            lines.append(f"{command.name} {answer} on {where} changes the node: {command.summary}.")
            rules.append("built-in: privileged commands are always confirmed")
        if expensive:
            lines.append(f"{command.name} on {where} is expensive: {'; '.join(reasons)}.")
            rules.append(rights.expensive_rule)
        if asking is not None:
            lines.append(f"{command.name} on {where} needs your confirmation.")
            rules.append(asking.confirm_rule)
        lines.append(f"Cost on the node: {command.cost}")
        lines.append(f"Type {answer} to run it; anything else cancels.")
        return Confirmation(prompt="\n".join(lines), answer=answer, rule="; ".join(rules))


def _where(nodes: Sequence[str]) -> str:
    if not nodes:
        return "the gateway"
    if len(nodes) == 1:
        return nodes[0]
    more = ", ..." if len(nodes) > 3 else ""
    return f"{len(nodes)} nodes ({', '.join(nodes[:3])}{more})"


def _grouped(
    nodes: Sequence[str], roles_of: Mapping[str, Sequence[RoleConfig]]
) -> list[tuple[tuple[str, ...], tuple[RoleConfig, ...]]]:
    """``nodes`` grouped by the roles that apply on each (same roles, same rights), in order."""
    groups: dict[tuple[str, ...], tuple[list[str], tuple[RoleConfig, ...]]] = {}
    for node in nodes:
        roles = tuple(roles_of[node])
        groups.setdefault(tuple(r.name for r in roles), ([], roles))[0].append(node)
    return [(tuple(members), roles) for members, roles in groups.values()]


def _label(value: Any) -> str | None:
    """``--pid`` as text: ``all``, ``new``, a name, or ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, NameRef):
        return value.name
    return str(value)


class Policy:
    """Policies of every configured user; one per config generation (see :mod:`policies.store`)."""

    def __init__(self, config: Config, registry: Mapping[str, Command]) -> None:
        self.config = config
        self.registry = registry
        self.nodes = {node: cluster.name for node, cluster in config.all_nodes()}

    def for_user(self, user: str) -> UserPolicy:
        """The user's policy; an unknown user gets no roles, hence may run nothing."""
        spec = self.config.users.get(user)
        roles = [self.config.roles[r] for r in spec.roles if r in self.config.roles] if spec else []
        return UserPolicy(user, roles, self.registry, nodes=self.nodes, safety=self.config.safety)
