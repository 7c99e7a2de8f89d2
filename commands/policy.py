"""``policy``: the user's effective permissions, caps included.

Prints what :meth:`policies.engine.UserPolicy.describe` returns: the same
merged rights the engine enforces, so the answer to "what can this key do?"
comes from the code that decides it. ``render_permissions`` is shared with
``whoami``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .context import Context
from .format import sanitize
from .spec import Command, Invocation

MAX_NODES_SHOWN = 4


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    return dict(ctx.policy.describe())


def _list(items: Sequence[Any], limit: int = 0) -> str:
    shown = [sanitize(str(i)) for i in items]
    if limit and len(shown) > limit:
        return f"{len(shown)} nodes: " + ", ".join(shown[:limit]) + ", ..."
    return ", ".join(shown) or "none"


def _command_line(c: Mapping[str, Any]) -> str:
    parts = []
    if "nodes" in c:
        parts.append(f"on {_list(c['nodes'], MAX_NODES_SHOWN)}")
    for key, value in c.get("max", {}).items():
        parts.append(f"{key.upper()} <= {value}")
    for key, values in c.get("allow", {}).items():
        parts.append(f"{key.upper()} only {_list(values)}")
    if "fanout" in c:
        parts.append("--nodes fan-out " + ("allowed" if c["fanout"] else "not allowed"))
    t = c.get("trace")
    if t:
        d = t["defaults"]
        parts.append(
            f"at most {t['max_messages']} messages, {t['max_rate']}/s, {t['max_seconds']} s "
            f"(default {d['messages']}, {d['rate']}/s, {d['seconds']} s)"
        )
        parts.append("modules " + ("any" if t["modules"] is None else _list(t["modules"])))
        parts.append("--return " + ("allowed" if t["allow_return"] else "not allowed"))
        parts.append("all processes " + ("allowed" if t["allow_pid_all"] else "not allowed (give --pid)"))
    if c.get("privileged"):
        parts.append("privileged")
    if "confirm" in c:
        parts.append(f"confirmation: {c['confirm']}")
    parts.append(f"(roles: {_list(c['granted_by'])})")
    return "; ".join(parts)


def render_permissions(desc: Mapping[str, Any]) -> str:
    """The text form of ``describe()``: one line per allowed command, then what is refused."""
    commands = desc["commands"]
    width = max((len(c["name"]) for c in commands), default=0)
    lines = [
        f"user: {sanitize(desc['user'])} (roles: {_list(desc['roles'])})",
        f"nodes: {_list(desc['nodes'])}",
        "commands you may run:",
        *(f"  {c['name']:<{width}}  {_command_line(c)}" for c in commands),
        f"not allowed: {_list(desc['not_allowed'])}",
    ]
    for name, rule in desc["denied_by_role"].items():
        lines.append(f"  {name}: denied by {sanitize(rule)}")
    if desc["deny_process_keys"]:
        lines.append(f"denied process keys (info PROC KEY...): {_list(desc['deny_process_keys'])}")
    lines.append(f"protected processes (state, messages, kill refuse them): {_list(desc['protected_processes'])}")
    return "\n".join(lines)


def render(result: dict[str, Any], inv: Invocation) -> str:
    return render_permissions(result)


COMMAND = Command(
    name="policy",
    summary="your effective permissions: commands, nodes, caps and confirmations",
    shows=(
        "Every command you may run, on which nodes, with the caps that apply to you (top-N, windows, "
        "trace limits and modules), the values you may use, whether fan-out is allowed and when you will "
        "be asked to confirm; then what is refused to you and why."
    ),
    when="Before an incident, to know what your key can do; when a command is denied or a value lowered.",
    cost="None: nothing is sent to any node.",
    remote=False,
    run=run,
    render=render,
    to_json=lambda result, inv: result,
    examples=("policy", "policy --json"),
)
