"""``bin_leak [N]``: garbage-collect every process and rank them by refc binaries freed (recon:bin_leak/1).

A process that routes large binaries but allocates little on its own heap
rarely collects, so binaries it no longer needs stay referenced (and
allocated) until its next GC: memory "leaks" in ``binary_alloc`` though
nothing holds the data. Counting each process's binary references before
and after a forced GC shows who was sitting on dead binaries.
"""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet

from .context import Context
from .format import human_bytes, human_count, table
from .proc_count import N_PARAM
from .procs import MEASURE, proc_rows
from .remote import evaluate
from .sampling import SAMPLING
from .spec import Command, Invocation

BIN_LEAK = Snippet(
    "bin_leak",
    SAMPLING
    + MEASURE
    + """
    Refs = fun(Pids) ->
        Len = length(Pids),
        Twos = lists:duplicate(Len, 2),
        Lists = lists:zipwith(fun erlang:element/2, Twos, lists:zipwith(fun erlang:max/2,
            lists:zipwith(fun erlang:process_info/2, Pids, lists:duplicate(Len, binary)),
            lists:duplicate(Len, {binary, []}))),
        Bytes = lists:zipwith(fun erlang:element/2, Twos, lists:map(fun lists:unzip3/1, Lists)),
        {lists:map(fun erlang:length/1, Lists), lists:map(fun lists:sum/1, Bytes)}
    end,
    Freed = fun(Pids) ->
        {Count0, Bytes0} = Refs(Pids),
        lists:foreach(fun erlang:garbage_collect/1, Pids),
        {Count1, Bytes1} = Refs(Pids),
        lists:zip(lists:zipwith(fun erlang:'-'/2, Count0, Count1), lists:zipwith(fun erlang:'-'/2, Bytes0, Bytes1))
    end,
    BgProcRows(BgFold(erlang:processes(), fun(Part, Top) -> BgOffer(Freed(Part), Part, N + 2, Top) end, []), N).
    """,
    ("N",),
)


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    node = ctx.need_target().name
    rows = proc_rows(await evaluate(ctx, BIN_LEAK, {"N": inv.args["n"]}), node)
    for row in rows:
        row["value"], row["bytes_freed"] = row["value"]
    return {"node": node, "rows": rows}


def render(result: dict[str, Any], inv: Invocation) -> str:
    rows = result["rows"]
    body = table(
        ["PID", "REFS FREED", "BYTES FREED", "NAME", "CURRENT FUNCTION", "INITIAL CALL"],
        [
            [
                r["pid"],
                human_count(r["value"]),
                human_bytes(r["bytes_freed"]),
                r["name"] or "-",
                r["current_function"] or "-",
                r["initial_call"] or "-",
            ]
            for r in rows
        ],
        right=(1, 2),
    )
    return f"every process garbage-collected on {result['node']}; top {len(rows)} by refc binaries freed\n{body}"


COMMAND = Command(
    name="bin_leak",
    summary="GC every process and show who released the most refc binaries (forces a GC everywhere)",
    shows=(
        "The N processes that dropped the most refc binary references when garbage-collected, with the "
        "bytes those references pointed to (recon:bin_leak/1). value = references freed (recon reports "
        "the same count, negated)."
    ),
    when=(
        "erlang:memory(binary) or binary_alloc keeps growing and proc_count binary_memory shows processes "
        "holding many binaries: bin_leak tells apart processes that still use them from processes that "
        "only had not collected yet (a refc binary leak). The fix for the latter is usually hibernation, a "
        "periodic erlang:garbage_collect/1, or not passing large binaries through long-lived processes."
    ),
    cost=(
        "Heavy: it garbage-collects EVERY process on the node, one after the other, and copies each "
        "process's list of binary references twice. Expect a latency spike on a loaded node; the run "
        "stops at the time limit (safety.eval_timeout) even if processes remain."
    ),
    params=(N_PARAM,),
    run=run,
    render=render,
    to_json=lambda result, inv: result["rows"],
    examples=("bin_leak", "bin_leak 20 --json"),
)
