"""``state PROC [--timeout MS]``: an OTP process's state via ``sys:get_state/2``, printed bounded.

The state is read with the system message every OTP behaviour answers
(``gen_server``, ``gen_statem``, ``gen_event``, Elixir's GenServer and
Agent). It is printed on the node with ``~tP`` at depth 30 and cut at 32 KiB,
so a huge state costs bounded time and bytes to show. Protected processes
(``auth``, ``net_kernel``, ``safety.protected_processes``) are refused for
everyone: their state holds secrets such as the cookie.
"""

from __future__ import annotations

from typing import Any

from gateway.config import format_duration
from gateway.dist.rpc import Snippet

from .context import Context
from .format import sanitize_bytes
from .procs import RESOLVE, SHOW, explain_proc, optional_name, pid_shown, proc_binding, protected_bindings, shown_text
from .remote import evaluate, run_timeout
from .spec import Command, Flag, Invocation
from .stack import PROC_PARAM

DEPTH = 30
MAX_BYTES = 32 * 1024

STATE = Snippet(
    "state",
    RESOLVE
    + SHOW
    + """
    Pid = BgGuard(BgProcess(Proc), Protected),
    Name = case erlang:process_info(Pid, registered_name) of {registered_name, Registered} -> Registered; _ -> [] end,
    State = try sys:get_state(Pid, Timeout)
            catch exit:{timeout, _} -> throw({beamgate, state_timeout, Timeout});
                  exit:{noproc, _} -> throw({beamgate, no_such_process, Proc});
                  exit:{Reason, _} -> throw({beamgate, state_failed, element(2, BgShow(Reason, 6, 300))});
                  error:Reason -> throw({beamgate, state_failed, element(2, BgShow(Reason, 6, 300))})
            end,
    {Pid, Name, BgShow(State, Depth, MaxBytes)}.
    """,
    ("Depth", "MaxBytes", "Proc", "Protected", "Timeout"),
)


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    ref, node = inv.args["proc"], ctx.need_target().name
    timeout_ms = inv.flags.get("timeout") or max(int(ctx.safety.state_timeout * 1000), 1)
    explain = {
        **explain_proc(ref, node),
        "state_timeout": lambda _d: (
            f"{ref} did not answer the state request within {format_duration(timeout_ms / 1000)} "
            "(busy, blocked, or not an OTP process); --timeout MS waits longer"
        ),
        "state_failed": lambda d: f"{ref} could not give its state: {sanitize_bytes(d) if isinstance(d, bytes) else d}",
    }
    bindings = {
        "Proc": proc_binding(ref),
        "Protected": protected_bindings(ctx),
        "Timeout": timeout_ms,
        "Depth": DEPTH,
        "MaxBytes": MAX_BYTES,
    }
    pid, name, shown = await evaluate(
        ctx, STATE, bindings, timeout=run_timeout(ctx, timeout_ms / 1000), explain=explain
    )
    return {
        "pid": pid_shown(pid, node),
        "name": optional_name(name),
        "state": shown_text(shown),
        "truncated": shown[0] is True,
    }


def render(result: dict[str, Any], inv: Invocation) -> str:
    head = f"state of {result['pid']}" + (f" ({result['name']})" if result["name"] else "")
    note = f"\n(cut at depth {DEPTH} / {MAX_BYTES // 1024} KiB)" if result["truncated"] else ""
    return f"{head}:\n{result['state']}{note}"


COMMAND = Command(
    name="state",
    summary="an OTP process's internal state (sys:get_state), depth- and size-limited",
    shows=(
        f"The state of a gen_server, gen_statem (state and data), gen_event or Elixir GenServer/Agent, as "
        f"sys:get_state/2 returns it, printed on the node at depth {DEPTH} and cut at {MAX_BYTES // 1024} KiB."
    ),
    when=(
        "A server misbehaves and you need to see what it holds: a queue that never drains, a stale "
        "connection, a cache that grows. A timeout means the process is busy or blocked (check its stack) "
        "or is not an OTP process."
    ),
    cost=(
        "One system message handled by the process itself, between two of its callbacks: if it is stuck, "
        "the request waits in its mailbox until it gets to it (answered to nobody). The state is copied "
        "to the bounded worker and printed there. Refused for auth, net_kernel and configured protected "
        "processes."
    ),
    params=(PROC_PARAM,),
    flags=(
        Flag(
            "timeout",
            "int",
            "how long the process may take to answer (default: safety.state_timeout)",
            "MS",
            min=10,
            max=60_000,
        ),
    ),
    run=run,
    render=render,
    to_json=lambda result, inv: result,
    fanout=True,
    examples=("state my_server", "state MyApp.Worker --timeout 5000", "state <0.123.0> --json"),
)
