"""``stack PROC``: a process's current stacktrace (``process_info(Pid, current_stacktrace)``)."""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet

from .context import Context
from .procs import RESOLVE, explain_proc, frame_text, optional_name, pid_shown, proc_binding
from .remote import evaluate
from .spec import Command, Invocation, Param

STACK = Snippet(
    "stack",
    RESOLVE
    + """
    Pid = BgProcess(Proc),
    case erlang:process_info(Pid, [registered_name, current_stacktrace]) of
        [{registered_name, Name}, {current_stacktrace, Frames}] -> {Pid, Name, Frames};
        undefined -> throw({beamgate, no_such_process, Proc})
    end.
    """,
    ("Proc",),
)

PROC_PARAM = Param("PROC", "proc", "a pid (<0.123.0>), registered name (my_server, MyApp.Worker) or global:NAME")


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    ref, node = inv.args["proc"], ctx.need_target().name
    pid, name, frames = await evaluate(ctx, STACK, {"Proc": proc_binding(ref)}, explain=explain_proc(ref, node))
    return {"pid": pid_shown(pid, node), "name": optional_name(name), "stack": [frame_text(f, node) for f in frames]}


def render(result: dict[str, Any], inv: Invocation) -> str:
    head = f"stack of {result['pid']}" + (f" ({result['name']})" if result["name"] else "")
    return "\n".join([head, *(f"  {frame}" for frame in result["stack"])])


COMMAND = Command(
    name="stack",
    summary="a process's current stacktrace",
    shows="Where the process is right now: its call stack, innermost first, with file and line when known.",
    when=(
        "A process that does not answer, a mailbox that keeps growing, or a process stuck in one function "
        "in proc_window: the stack shows what it is waiting on (a gen_server:call to whom, a receive, a port)."
    ),
    cost="One process_info/2 call; the process is not interrupted beyond the signal that reads its stack.",
    params=(PROC_PARAM,),
    run=run,
    render=render,
    to_json=lambda result, inv: result,
    fanout=True,
    examples=("stack my_server", "stack <0.123.0>", "stack MyApp.Worker --json"),
)
