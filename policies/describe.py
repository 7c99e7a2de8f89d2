"""A user's effective permissions as data, for ``whoami`` and ``policy``.

Built from the same merged :class:`~policies.rights.Rights` the engine
enforces, with the same hard maxima applied, so what the user is told is
what is checked. Rights are merged per node, over the roles granting the
command there, so a command whose nodes fall under different roles has one
entry per group of nodes (``trace`` on ``app@*`` with the contractor's
modules, on ``staging@*`` with any). The result is plain JSON-serialisable
data; the ``policy`` command renders it as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from commands.spec import Command

from . import limits
from .rights import Rights, denied_by, denied_keys, merge

if TYPE_CHECKING:
    from .engine import UserPolicy


def describe(policy: UserPolicy) -> dict[str, Any]:
    """``{"user", "roles", "nodes", "commands": [...], "not_allowed", "deny_process_keys"}``."""
    commands = []
    not_allowed = []
    for name, command in policy.registry.items():
        if policy.rights(name) is None:
            not_allowed.append(name)
            continue
        for nodes, roles in policy.node_groups(command):
            commands.append(_command(policy, command, nodes, merge(command, roles, policy.safety)))
    return {
        "user": policy.user,
        "roles": [r.name for r in policy.roles],
        "nodes": policy.usable_nodes(),
        "commands": commands,
        "not_allowed": not_allowed,
        "denied_by_role": {n: rule for n in policy.registry if (rule := denied_by(policy.roles, n)) is not None},
        "deny_process_keys": sorted(denied_keys(policy.roles)),
        "protected_processes": sorted(policy.protected_names()),
    }


def _command(policy: UserPolicy, command: Command, nodes: Sequence[str], rights: Rights) -> dict[str, Any]:
    """One command on one group of nodes (all of its nodes, unless they fall under different roles)."""
    entry: dict[str, Any] = {"name": command.name, "granted_by": [r.name for r in rights.roles]}
    if command.privileged:
        entry["privileged"] = True
    if command.remote:
        entry["nodes"] = list(nodes)
    caps = {}
    for key in rights.caps:
        limit = policy.int_limit(rights, key)
        if limit.value is not None:
            caps[key] = int(limit.value)
    if caps:
        entry["max"] = caps
    allow = {key: list(a.values) for key, a in rights.allow.items() if a.values is not None}
    if allow:
        entry["allow"] = allow
    if command.fanout:
        entry["fanout"] = rights.fanout
    may_be_expensive = (
        command.name in limits.EXPENSIVE_COMMANDS
        or (limits.WINDOW_KEY in caps and caps[limits.WINDOW_KEY] > limits.EXPENSIVE_WINDOW_MS)
        or (limits.WINDOW_KEY in rights.caps and limits.WINDOW_KEY not in caps)
        or (command.fanout and rights.fanout and len(policy.usable_nodes(command.name)) > limits.EXPENSIVE_FANOUT_NODES)
    )
    if command.privileged or rights.confirm:
        entry["confirm"] = "always"
    elif may_be_expensive and rights.expensive != "allow":
        entry["confirm"] = "when expensive" if rights.expensive == "confirm" else "expensive runs refused"
    if rights.trace is not None:
        t = rights.trace
        assert t.max_messages.value is not None and t.max_rate.value is not None and t.max_seconds.value is not None
        entry["trace"] = {
            "max_messages": int(t.max_messages.value),
            "max_rate": int(t.max_rate.value),
            "max_seconds": int(t.max_seconds.value),
            "defaults": {"messages": t.default_messages, "rate": t.default_rate, "seconds": t.default_seconds},
            "modules": None if t.modules.values is None else list(t.modules.values),
            "allow_return": t.allow_return,
            "allow_pid_all": t.allow_pid_all,
        }
    return entry
