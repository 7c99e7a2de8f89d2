"""``proc_count ATTR [N]``: the N processes with the largest value of ATTR right now (recon:proc_count/2).

One pass over ``erlang:processes()`` in chunks (:mod:`commands.sampling`):
``process_info/2`` for a whole chunk through ``lists:zipwith/3``, a running
top-N cut on the target, then name, current function and initial call for
the N winners only.
"""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet
from gateway.dist.terms import Atom

from .context import Context
from .procs import ATTR_HELP, ATTRS, MEASURE, proc_rows, rows_table
from .remote import evaluate
from .sampling import SAMPLING
from .spec import Command, Invocation, Param

PROC_COUNT = Snippet(
    "proc_count",
    SAMPLING
    + MEASURE
    + """
    Values = BgProcRank(Attr),
    Best = BgFold(erlang:processes(), fun(Part, Top) -> BgOffer(Values(Part), Part, N + 2, Top) end, []),
    BgProcRows(Best, N).
    """,
    ("Attr", "N"),
)

N_PARAM = Param("N", "int", "how many processes to show", default=10, required=False, min=1, max=1000)
ATTR_PARAM = Param("ATTR", "choice", "the attribute to rank by", choices=tuple(ATTRS))


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    attr = inv.args["attr"]
    raw = await evaluate(ctx, PROC_COUNT, {"Attr": Atom(attr), "N": inv.args["n"]})
    rows = proc_rows(raw, ctx.need_target().name)
    for row in rows:  # BgProcRank ranks process_info's own {Attr, Value} answers
        if isinstance(row["value"], tuple):
            row["value"] = row["value"][1]
    return {"node": ctx.need_target().name, "attr": attr, "rows": rows}


def render(result: dict[str, Any], inv: Invocation) -> str:
    attr = result["attr"]
    title = f"top {len(result['rows'])} processes by {attr} on {result['node']}"
    return title + "\n" + rows_table(result["rows"], attr.upper(), ATTRS[attr])


COMMAND = Command(
    name="proc_count",
    summary="the processes with the most memory, reductions, queued messages, ... right now",
    shows=(
        "The N processes with the largest value of ATTR at this moment, largest first, with their "
        "registered name, current function and initial call (recon:proc_count/2)."
    ),
    when=(
        "Memory growing, a long run queue, or a slow node: proc_count memory finds the fat process, "
        "message_queue_len the overloaded one (a mailbox that keeps growing is the classic overload), "
        "binary_memory the one holding refc binaries. For CPU hogs, reductions only shows totals since "
        "each process started: use proc_window reductions to see who works now."
    ),
    cost=(
        "One erlang:process_info/2 per process, in chunks, compiled; the top N is kept on the node, so "
        "memory stays at the process list (16 bytes per process) plus one chunk. About one pass over the "
        "process table: seconds with a million processes."
    ),
    params=(ATTR_PARAM, N_PARAM),
    run=run,
    render=render,
    to_json=lambda result, inv: result["rows"],
    fanout=True,
    notes=ATTR_HELP,
    examples=("proc_count memory", "proc_count message_queue_len 5", "proc_count binary_memory 20 --json"),
)
