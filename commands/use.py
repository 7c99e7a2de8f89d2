"""``use NODE``: pick the node later commands run on (until the next ``use``)."""

from __future__ import annotations

from typing import Any

from .context import Context
from .spec import Command, Invocation, Param


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    node = inv.args["node"]
    ctx.session.select_node(node)
    return {"node": node}


COMMAND = Command(
    name="use",
    summary="select the node later commands run on",
    shows="Nothing but a confirmation; the prompt then shows the node.",
    when="Before a series of commands on one node, instead of adding --node NODE to each.",
    cost="None: the node is contacted by the next command, not by use.",
    params=(Param("NODE", "node", "a configured node you may use (see nodes)"),),
    run=run,
    render=lambda result, inv: f"using {result['node']}",
    to_json=lambda result, inv: result,
    remote=False,
    examples=("use app@10.0.0.5",),
)
