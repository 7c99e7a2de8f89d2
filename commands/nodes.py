"""``nodes``: the configured nodes you may use, whether they answer, and their OTP release."""

from __future__ import annotations

from typing import Any

from .context import Context
from .format import table
from .spec import Command, Invocation


async def run(ctx: Context, inv: Invocation) -> list[dict[str, Any]]:
    statuses = await ctx.session.node_status(list(ctx.session.allowed_nodes()))
    return [
        {
            "node": s.name,
            "cluster": s.cluster,
            "reachable": s.reachable,
            "otp_release": s.otp_release or None,
            "error": s.error or None,
            "current": s.current,
        }
        for s in statuses
    ]


def render(rows: list[dict[str, Any]], inv: Invocation) -> str:
    if not rows:
        return "no configured node is open to you (whoami shows your node patterns)"
    body = [
        (
            "*" if r["current"] else "",
            r["node"],
            r["cluster"],
            f"OTP {r['otp_release']}" if r["reachable"] else "down",
            "" if r["reachable"] else r["error"] or "",
        )
        for r in rows
    ]
    return table(("", "NODE", "CLUSTER", "STATUS", "DETAIL"), body)


COMMAND = Command(
    name="nodes",
    summary="configured nodes you may use, with reachability and OTP release",
    shows=(
        "Each configured node your roles allow, its cluster, whether the gateway can reach it "
        "(and if not, which step failed: epmd, registration, connection, cookie), and its OTP release. "
        "The current node is marked with *."
    ),
    when="At the start of a session, or when a command reports a node down.",
    cost="One distribution connection per node (reused by later commands) and one system_info call each.",
    run=run,
    render=render,
    to_json=lambda rows, inv: rows,
    remote=False,
    examples=("nodes", "nodes --json"),
)
