"""``inet_window ATTR [N] [MS]``: the sockets whose counter grew the most over MS ms (recon:inet_window/3)."""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet

from .context import Context
from .inet_count import ATTR_PARAM, N_PARAM, keys
from .netports import INET, INET_HELP, inet_rows, inet_table
from .proc_window import MS_PARAM
from .remote import evaluate, run_timeout
from .sampling import SAMPLING
from .spec import Command, Invocation

INET_WINDOW = Snippet(
    "inet_window",
    SAMPLING
    + INET
    + """
    BgInetRows(BgWindow(BgInetPorts, BgInetValues(Keys), N, Ms), Keys, N).
    """,
    ("Keys", "Ms", "N"),
)


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    attr, ms, node = inv.args["attr"], inv.args["ms"], ctx.need_target().name
    bindings = {"Keys": keys(attr), "N": inv.args["n"], "Ms": ms}
    raw = await evaluate(ctx, INET_WINDOW, bindings, timeout=run_timeout(ctx, ms / 1000))
    return {"node": node, "attr": attr, "ms": ms, "rows": inet_rows(raw, node)}


def render(result: dict[str, Any], inv: Invocation) -> str:
    title = f"top {len(result['rows'])} sockets by {result['attr']} gained over {result['ms']} ms on {result['node']}"
    return title + "\n" + inet_table(result["rows"], result["attr"], "+" + result["attr"].upper())


COMMAND = Command(
    name="inet_window",
    summary="the sockets with the most traffic during a short window",
    shows=(
        "The N TCP/UDP/SCTP sockets whose ATTR counter grew the most between two samples MS milliseconds "
        "apart (recon:inet_window/3). Sockets opened during the window count from zero; sockets closed "
        "before the second sample are left out."
    ),
    when="Which connection is busy now: a hot client, a chatty peer node, a flood.",
    cost=(
        "inet:getstat/2 twice per inet port, compiled and chunked; between the samples the node keeps the "
        "port list and one word per port."
    ),
    params=(ATTR_PARAM, N_PARAM, MS_PARAM),
    run=run,
    render=render,
    to_json=lambda result, inv: result["rows"],
    fanout=True,
    notes=INET_HELP,
    examples=("inet_window oct", "inet_window send_oct 5 5000"),
)
