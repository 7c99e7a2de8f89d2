"""``exit``: leave the shell (Ctrl-D does the same)."""

from __future__ import annotations

from typing import Any

from .context import Context
from .spec import Command, Invocation


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    ctx.session.request_exit()
    return {"exit": True}


COMMAND = Command(
    name="exit",
    summary="leave the shell",
    shows="Nothing; the session ends and its recording is closed.",
    when="When you are done (Ctrl-D does the same).",
    cost="None. Anything still running on a node for this session is stopped.",
    run=run,
    render=lambda result, inv: "",
    to_json=lambda result, inv: result,
    remote=False,
)
