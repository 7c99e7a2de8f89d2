"""``scheduler_usage [MS]``: how busy each scheduler was over MS milliseconds (recon:scheduler_usage/1).

``erlang:statistics(scheduler_wall_time)`` twice, MS apart. Measuring needs
the ``scheduler_wall_time`` system flag, which since OTP 22 is counted per
process: the worker turns it on for itself, and turns its own count off
afterwards, so the node ends as it was (on if another process had it on,
off otherwise). If the worker is killed (deadline, Ctrl-C) its count goes
with it: the flag cannot be left on by beamgate.
"""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet

from .context import Context
from .format import table
from .remote import evaluate, run_timeout
from .spec import Command, Invocation, Param

SCHEDULER_USAGE = Snippet(
    "scheduler_usage",
    """
    _ = erlang:system_flag(scheduler_wall_time, true),
    First = erlang:statistics(scheduler_wall_time),
    receive after Ms -> ok end,
    Last = erlang:statistics(scheduler_wall_time),
    _ = erlang:system_flag(scheduler_wall_time, false),
    {erlang:system_info(schedulers), lists:sort(First), lists:sort(Last)}.
    """,
    ("Ms",),
)


def usage(first: list[Any], last: list[Any], schedulers: int) -> list[dict[str, Any]]:
    """Per scheduler: active time over total time between the samples (recon_lib:scheduler_usage_diff/2)."""
    rows = []
    before = {s[0]: s for s in first}
    for sched_id, active1, total1 in last:
        _, active0, total0 = before.get(sched_id, (sched_id, active1, total1))
        elapsed = total1 - total0
        rows.append(
            {
                "id": sched_id,
                "type": "normal" if sched_id <= schedulers else "dirty_cpu",
                "usage": (active1 - active0) / elapsed if elapsed > 0 else 0.0,
            }
        )
    return rows


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    ms = inv.args["ms"]
    schedulers, first, last = await evaluate(ctx, SCHEDULER_USAGE, {"Ms": ms}, timeout=run_timeout(ctx, ms / 1000))
    rows = usage(first, last, schedulers)
    normal = [r["usage"] for r in rows if r["type"] == "normal"]
    return {
        "node": ctx.need_target().name,
        "ms": ms,
        "total": sum(normal) / len(normal) if normal else 0.0,
        "schedulers": rows,
    }


def render(result: dict[str, Any], inv: Invocation) -> str:
    body = table(
        ["ID", "TYPE", "USAGE"],
        [[r["id"], r["type"], f"{100 * r['usage']:.1f}%"] for r in result["schedulers"]],
        right=(0, 2),
    )
    head = (
        f"scheduler usage over {result['ms']} ms on {result['node']}: {100 * result['total']:.1f}% (normal schedulers)"
    )
    return f"{head}\n{body}"


COMMAND = Command(
    name="scheduler_usage",
    summary="how busy each scheduler was over a short window",
    shows=(
        "For each normal and dirty CPU scheduler, the share of the window it spent working rather than "
        "idle (recon:scheduler_usage/1), and the average over normal schedulers."
    ),
    when=(
        "CPU questions: the OS shows the VM busy-waiting (schedulers spin before sleeping) so top lies; "
        "scheduler usage is the real load. High usage with a short run queue is a saturated but keeping-up "
        "node; high usage and a growing run queue is overload (then proc_window reductions)."
    ),
    cost=(
        "Turns on scheduler_wall_time accounting for the window (a small cost on every scheduler switch) "
        "and restores the node's previous setting afterwards."
    ),
    params=(Param("MS", "int", "the window, in milliseconds", default=1000, required=False, min=10, max=60_000),),
    run=run,
    render=render,
    to_json=lambda result, inv: result,
    fanout=True,
    examples=("scheduler_usage", "scheduler_usage 5000 --json"),
)
