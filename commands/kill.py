"""``kill PROC``: ``exit(Pid, kill)``, after the user types the pid to confirm. Privileged.

Two evaluations: the first resolves PROC and describes the process (name,
current function, initial call) so the confirmation names exactly what will
die; the user must type its pid; the second kills that pid (the very pid
the node returned, sent back as data) and waits for its ``'DOWN'``.

Refused whatever the policy, on the node: processes the node cannot live
without (``init``, ``erts_code_purger``, ``erl_prim_loader``, the application
controller, and every process of the ``kernel`` application, whose
supervisor would take the node down, or cut beamgate off with ``net_kernel``),
and the protected processes (:mod:`commands.protected`), whatever name or
pid the user gave. Both evaluations run the same check (:data:`GUARD`): the
first so that nothing is asked about a refused process, the second right
before ``exit(Pid, kill)``, at the point of action, because the node may
have changed while the user typed (a protected name registered to that pid
meanwhile). A process that exited before the kill is reported as such, not
as killed. Killing beamgate's own workers is pointless and not prevented.
"""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet
from gateway.dist.terms import Pid

from .context import Context
from .errors import CommandError
from .format import mfa_text, term_text
from .procs import MEASURE, RESOLVE, explain_proc, optional_name, pid_shown, proc_binding, protected_bindings
from .refs import PidRef, RefError, parse_proc
from .remote import evaluate
from .spec import Command, Invocation
from .stack import PROC_PARAM

#: ``BgKillable(Pid)``: throws ``{beamgate, vital, Pid}`` for a process the node needs, or
#: ``BgGuard``'s ``protected``; else returns ``Pid``. Needs :data:`~commands.procs.RESOLVE`
#: and the binding ``Protected``.
GUARD = """
    BgKillable = fun(BgPid) ->
        BgVital = [whereis(init), whereis(erts_code_purger), whereis(erl_prim_loader),
                   whereis(application_controller)],
        case lists:member(BgPid, BgVital) orelse application:get_application(BgPid) =:= {ok, kernel} of
            true -> throw({beamgate, vital, BgPid});
            false -> BgGuard(BgPid, Protected)
        end
    end,
"""

DESCRIBE = Snippet(
    "kill_describe",
    RESOLVE
    + MEASURE
    + GUARD
    + """
    Pid = BgKillable(BgProcess(Proc)),
    case BgProcRow({0, Pid}) of
        [{_, _, Name, Current, Initial}] -> {Pid, Name, Current, Initial};
        [] -> throw({beamgate, no_such_process, Proc})
    end.
    """,
    ("Proc", "Protected"),
)

KILL = Snippet(
    "kill",
    RESOLVE
    + GUARD
    + """
    Ref = erlang:monitor(process, BgKillable(Pid)),
    exit(Pid, kill),
    receive {'DOWN', Ref, process, _, Reason} -> Reason after 5000 -> still_alive end.
    """,
    ("Pid", "Protected"),
)


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    ref, node = inv.args["proc"], ctx.need_target().name
    explain = {
        **explain_proc(ref, node),
        "vital": lambda pid: (
            f"refused: {pid_shown(pid, node)} ({ref}) is vital to the node (init, code or kernel); "
            "killing it would take the node down or cut it off"
        ),
    }
    bindings = {"Proc": proc_binding(ref), "Protected": protected_bindings(ctx)}
    pid, name, current, initial = await evaluate(ctx, DESCRIBE, bindings, explain=explain)
    shown = pid_shown(pid, node)
    if ctx.confirm is None:
        raise CommandError("kill needs an interactive confirmation (typing the pid); none is possible here")
    about = ", ".join(t for t in (optional_name(name), mfa_text(current), mfa_text(initial)) if t)
    answer = await ctx.confirm(f"kill {shown} ({about})? type its pid to confirm: ")
    if answer is None or not _same_pid(answer, pid):
        raise CommandError(f"kill cancelled: {shown} left alone")
    reason = await evaluate(ctx, KILL, {"Pid": pid, "Protected": bindings["Protected"]}, explain=explain)
    if reason == "still_alive":
        raise CommandError(f"{shown} still alive 5s after exit(Pid, kill)")
    if reason == "noproc":
        raise CommandError(f"{shown} had already exited; nothing was killed")
    return {"pid": shown, "name": optional_name(name), "killed": True, "reason": term_text(reason)}


def _same_pid(answer: str, pid: Any) -> bool:
    try:
        typed = parse_proc(answer.strip())
    except RefError:
        return False
    return isinstance(pid, Pid) and typed == PidRef(0, pid.id, pid.serial)


def render(result: dict[str, Any], inv: Invocation) -> str:
    name = f" ({result['name']})" if result["name"] else ""
    return f"killed {result['pid']}{name}: {result['reason']}"


COMMAND = Command(
    confirms=True,
    name="kill",
    summary="kill a process (exit(Pid, kill)) after typing its pid to confirm",
    shows="Which process will be killed (name, current function, initial call), then the exit reason it died with.",
    when=(
        "A runaway process (a mailbox growing without bound, memory heading for the limit) that its "
        "supervisor will restart, when waiting is worse than the restart. Prefer fixing the cause."
    ),
    cost=(
        "Kills the process: its links and supervisor react (restart, or more exits). Refused for init, "
        "the code server and loader, the application controller, every kernel process, and auth, "
        "net_kernel and configured protected processes."
    ),
    params=(PROC_PARAM,),
    run=run,
    render=render,
    to_json=lambda result, inv: result,
    privileged=True,
    examples=("kill <0.123.0>", "kill my_runaway_worker"),
)
