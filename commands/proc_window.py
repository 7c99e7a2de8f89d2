"""``proc_window ATTR [N] [MS]``: who grew ATTR the most during the last MS milliseconds (recon:proc_window/3).

Two samples MS apart, ranked by the difference, with the top-N cut on the
target (``BgWindow`` in :mod:`commands.sampling`): between the samples the
worker keeps the process list and one word per process.
"""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet
from gateway.dist.terms import Atom

from .context import Context
from .proc_count import ATTR_PARAM, N_PARAM
from .procs import ATTR_HELP, ATTRS, MEASURE, proc_rows, rows_table
from .remote import evaluate, run_timeout
from .sampling import SAMPLING
from .spec import Command, Invocation, Param

PROC_WINDOW = Snippet(
    "proc_window",
    SAMPLING
    + MEASURE
    + """
    BgProcRows(BgWindow(fun erlang:processes/0, BgProcValues(Attr), N + 2, Ms), N).
    """,
    ("Attr", "Ms", "N"),
)

MS_PARAM = Param("MS", "int", "the window, in milliseconds", default=1000, required=False, min=10, max=60_000)


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    attr, ms = inv.args["attr"], inv.args["ms"]
    node = ctx.need_target().name
    raw = await evaluate(
        ctx, PROC_WINDOW, {"Attr": Atom(attr), "N": inv.args["n"], "Ms": ms}, timeout=run_timeout(ctx, ms / 1000)
    )
    return {"node": node, "attr": attr, "ms": ms, "rows": proc_rows(raw, node)}


def render(result: dict[str, Any], inv: Invocation) -> str:
    attr = result["attr"]
    title = f"top {len(result['rows'])} processes by {attr} gained over {result['ms']} ms on {result['node']}"
    return title + "\n" + rows_table(result["rows"], f"+{attr.upper()}", ATTRS[attr])


COMMAND = Command(
    name="proc_window",
    summary="the processes whose memory, reductions, ... grew the most over a short window",
    shows=(
        "The N processes whose ATTR increased the most between two samples MS milliseconds apart "
        "(recon:proc_window/3), largest first. Processes born during the window count from zero; "
        "processes that died before the second sample are left out."
    ),
    when=(
        "Which process is burning CPU now (reductions), allocating now (memory), or filling its mailbox "
        "now (message_queue_len). Totals from proc_count favour old processes; the window shows current "
        "activity. Keep MS shorter than the life of the processes you hunt: a process younger than the "
        "window only shows the part it lived."
    ),
    cost=(
        "Two process_info/2 passes over every process, compiled and chunked, plus the list of processes "
        "born in between. Between the samples the node keeps the process list and one word per process "
        "(about 24 bytes per process); the top N is cut on the node."
    ),
    params=(ATTR_PARAM, N_PARAM, MS_PARAM),
    run=run,
    render=render,
    to_json=lambda result, inv: result["rows"],
    fanout=True,
    notes=ATTR_HELP,
    examples=("proc_window reductions", "proc_window memory 5 5000", "proc_window message_queue_len 10 500"),
)
