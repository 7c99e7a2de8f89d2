"""``messages PROC [N]``: the first N messages of a short mailbox.

SPEC safety rule 7: ``process_info(Pid, messages)`` copies the whole
mailbox, so it is only called when ``message_queue_len`` is at most
``safety.messages_cap`` (default 100), checked on the node immediately
before. Above the cap the command is refused with the queue length
(``proc_count message_queue_len`` and ``stack`` say more about an overloaded
process without touching its mailbox). Each message is printed on the node
at depth 10 and cut at 2,000 bytes. Protected processes are refused.
"""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet

from .context import Context
from .procs import (
    RESOLVE,
    SHOW,
    explain_proc,
    optional_name,
    pid_shown,
    proc_binding,
    protected_bindings,
    queue_too_long,
    shown_text,
)
from .remote import evaluate
from .spec import Command, Invocation, Param
from .stack import PROC_PARAM

MESSAGES = Snippet(
    "messages",
    RESOLVE
    + SHOW
    + """
    Pid = BgGuard(BgProcess(Proc), Protected),
    case erlang:process_info(Pid, [registered_name, message_queue_len]) of
        [_, {message_queue_len, Len}] when Len > Cap -> throw({beamgate, queue_too_long, Len});
        [{registered_name, Name}, {message_queue_len, _}] ->
            case erlang:process_info(Pid, messages) of
                {messages, Queue} -> {Pid, Name, length(Queue), [BgShow(M, 10, 2000) || M <- lists:sublist(Queue, N)]};
                undefined -> throw({beamgate, no_such_process, Proc})
            end;
        undefined -> throw({beamgate, no_such_process, Proc})
    end.
    """,
    ("Cap", "N", "Proc", "Protected"),
)


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    ref, node = inv.args["proc"], ctx.need_target().name
    cap = ctx.safety.messages_cap
    explain = {**explain_proc(ref, node), "queue_too_long": queue_too_long(ref, cap)}
    bindings = {"Proc": proc_binding(ref), "Protected": protected_bindings(ctx), "Cap": cap, "N": inv.args["n"]}
    pid, name, length, shown = await evaluate(ctx, MESSAGES, bindings, explain=explain)
    return {
        "pid": pid_shown(pid, node),
        "name": optional_name(name),
        "queue_len": length,
        "messages": [shown_text(s) for s in shown],
    }


def render(result: dict[str, Any], inv: Invocation) -> str:
    head = f"{result['queue_len']} messages queued for {result['pid']}" + (
        f" ({result['name']})" if result["name"] else ""
    )
    shown = result["messages"]
    if len(shown) < result["queue_len"]:
        head += f"; the first {len(shown)}"
    return "\n".join([head + ":", *(f"{i}. {text}" for i, text in enumerate(shown, 1))])


COMMAND = Command(
    name="messages",
    summary="the first messages in a process's mailbox (only short mailboxes)",
    shows=(
        "The first N messages waiting in the mailbox, oldest first, each printed at depth 10 and cut at "
        "2,000 bytes. Refused when more than safety.messages_cap (default 100) are queued."
    ),
    when=(
        "A process falls behind and you want to know what it is being sent: a message it never matches "
        "(a selective receive that skips it), an unexpected sender, a reply that arrives too late."
    ),
    cost=(
        "Reading messages copies the whole mailbox, which is why it is capped; the length is checked on the "
        "node just before. Refused for auth, net_kernel and configured protected processes."
    ),
    params=(PROC_PARAM, Param("N", "int", "how many messages to show", default=10, required=False, min=1, max=1000)),
    run=run,
    render=render,
    to_json=lambda result, inv: result,
    fanout=True,
    examples=("messages my_server", "messages <0.123.0> 3 --json"),
)
