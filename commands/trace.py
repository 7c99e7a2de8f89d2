"""``trace SPEC...``: rate-limited call tracing that can never outlive its session.

recon_trace semantics (function specs, ``--pid`` sets, ``--return``, count
and rate limits, refusal of dangerous combinations), made safe for a remote
node and a user who may vanish at any moment:

* :mod:`commands.tracing.plan` checks the line on the gateway and fixes the
  three limits that always apply (message count, rate, duration);
* :mod:`commands.tracing.relay` holds the snippet that starts a *relay* on
  the node; the relay owns the trace, enforces the limits there, and removes
  exactly what it set when anything ends it (limit, rate, duration, Ctrl-C,
  end of session, gateway killed, connection lost, its own crash);
* this module talks to the relay through the command's owner process: it
  waits for ``ready``, hands each trace message to ``ctx.emit`` and returns
  the final :class:`~commands.tracing.output.TraceStopped` summary.

Ctrl-C cancels :func:`run`; the session also closes the owner, which the
relay's cleaner monitors. On cancellation this module additionally asks for
a stop (the cleaner's once the trace is ready; harmless if the owner is
already gone) and emits the ``interrupted`` summary.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.config import TraceLimits
from gateway.dist.errors import DistError, NodeDown
from gateway.dist.node import DOWN, NOCONNECTION, Process
from gateway.dist.terms import Pid
from gateway.target import TargetError

from .context import Context
from .errors import CommandError
from .spec import Command, Flag, Invocation, Param
from .tracing.output import (
    TraceStarted,
    TraceStatus,
    TraceStopped,
    event_json,
    event_line,
    failure_message,
    started_line,
    status_line,
    stopped_json,
    stopped_line,
)
from .tracing.plan import TracePlan, make_plan
from .tracing.relay import STOP, TRACE_START, Failed, Ready, Stopped, TraceEvent, decode

#: Extra time the gateway waits past the trace's duration before giving up on the relay.
MARGIN = 5.0
#: After this many quiet seconds, a status line says the trace is still on (text output only).
STATUS_EVERY = 10.0
#: Relay stop reasons that mean "it ended abnormally" for the user.
_CRASHED = {"crashed", "cleaner_exited"}


def role_caps(ctx: Context, defaults: TraceLimits) -> TraceLimits:
    """The caps in force: the role's merged trace caps from the policy, else the safety defaults."""
    return ctx.policy.trace_caps() or defaults


async def run(ctx: Context, inv: Invocation) -> TraceStopped:
    target = ctx.need_target()
    defaults = ctx.safety.trace_defaults
    values = {**inv.flags, **inv.args}
    plan = make_plan(values, defaults, role_caps(ctx, defaults))
    owner = target.owner
    node = target.name
    bindings = plan.bindings(owner.pid, ctx.identity.user, max(ctx.safety.max_heap // 8, 64 * 1024))
    try:
        relay = await target.run(TRACE_START, bindings)
    except TargetError as exc:
        raise CommandError(failure_message(exc.kind, exc.detail, node) or str(exc)) from None
    if not isinstance(relay, Pid):
        raise CommandError(f"unexpected answer from {node} when starting the trace")
    emit = ctx.emit or _discard
    conversation = _Conversation(owner, relay, node, plan)
    try:
        ready = await conversation.wait_ready(ctx.safety.eval_timeout)
        if not inv.json:
            await emit(
                TraceStarted(
                    node=node,
                    specs=plan.describe_specs(),
                    matched=ready.matched,
                    procs=plan.describe_procs(),
                    limits=plan.limits,
                    sessions=ready.sessions,
                    pattern=plan.pattern.text if plan.pattern else None,
                )
            )
        return await conversation.pump(emit, status=not inv.json)
    except asyncio.CancelledError:
        conversation.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(emit(conversation.summary("interrupted")), 1.0)
        raise
    finally:
        conversation.close()


async def _discard(event: Any) -> None:
    return None


class _Conversation:
    """The gateway side of one relay: its messages arrive in the owner's mailbox."""

    def __init__(self, owner: Process, relay: Pid, node: str, plan: TracePlan) -> None:
        self.owner = owner
        self.relay = relay
        self.node = node
        self.plan = plan
        self.count = 0
        self.monitor = owner.monitor(relay)
        #: Stops go to the relay until it is ready, then to its cleaner, which acts at once.
        self.stop_to = relay

    def summary(self, reason: str, detail: str = "") -> TraceStopped:
        return TraceStopped(reason, self.count, self.plan.limits, self.node, detail)

    def stop(self) -> None:
        """Ask the trace to stop now (best effort: it also stops when the owner ends)."""
        with contextlib.suppress(DistError, OSError):
            self.owner.send(self.stop_to, (STOP, self.owner.pid))

    def close(self) -> None:
        with contextlib.suppress(DistError, OSError):
            self.owner.demonitor(self.monitor)

    def _down(self, message: Any) -> Any:
        """The reason if ``message`` says the relay is gone, else ``None``."""
        if type(message) is tuple and len(message) == 5 and message[0] == DOWN and message[1] == self.monitor:
            return message[4]
        return None

    async def wait_ready(self, timeout: float) -> Ready:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                message = await self.owner.receive(max(deadline - loop.time(), 0.001))
            except TimeoutError:
                self.stop()
                raise CommandError(f"{self.node} did not start the trace within {timeout:g}s") from None
            down = self._down(message)
            if down is not None:
                lost = down == NOCONNECTION
                raise CommandError(f"lost {self.node} while starting the trace" if lost else "the trace relay died")
            decoded = decode(message, self.relay, self.node)
            if isinstance(decoded, Ready):
                self.stop_to = decoded.cleaner
                return decoded
            if isinstance(decoded, Failed):
                raise CommandError(failure_message(decoded.kind, decoded.detail, self.node) or decoded.kind)
            if isinstance(decoded, Stopped):
                raise CommandError(failure_message(decoded.reason, None, self.node) or decoded.reason)

    async def pump(self, emit: Callable[[Any], Awaitable[None]], *, status: bool) -> TraceStopped:
        """Hand every trace message to ``emit`` until the relay stops; return the summary.

        With ``status``, a :class:`TraceStatus` is emitted after every
        :data:`STATUS_EVERY` seconds without a trace message.
        """
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.plan.limits.seconds
        quiet_since = loop.time()
        while True:
            remaining = ends + MARGIN - loop.time()
            if remaining <= 0:
                # The relay's own timer should have fired long ago: stop it and say so.
                self.stop()
                return self.summary("duration")
            try:
                message = await self.owner.receive(min(remaining, STATUS_EVERY) if status else remaining)
            except TimeoutError:
                if status and loop.time() - quiet_since >= STATUS_EVERY and loop.time() < ends:
                    quiet_since = loop.time()
                    await emit(TraceStatus(self.count, self.plan.limits, max(int(ends - loop.time()), 0)))
                continue
            except NodeDown:
                return self.summary("interrupted")  # the owner was closed: the relay is stopping
            down = self._down(message)
            if down is not None:
                if down == NOCONNECTION:
                    return self.summary("node_down")
                return self.summary("crashed", str(down))
            decoded = decode(message, self.relay, self.node)
            if isinstance(decoded, TraceEvent):
                self.count += 1
                quiet_since = loop.time()
                await emit(decoded)
            elif isinstance(decoded, Stopped):
                if decoded.reason in _CRASHED:
                    return self.summary("crashed", decoded.detail or decoded.reason)
                return self.summary(decoded.reason, decoded.detail)


def render(result: Any, inv: Invocation) -> str:
    if isinstance(result, TraceEvent):
        return event_line(result)
    if isinstance(result, TraceStarted):
        return started_line(result)
    if isinstance(result, TraceStatus):
        return status_line(result)
    if isinstance(result, TraceStopped):
        return stopped_line(result)
    return str(result)


def to_json(result: Any, inv: Invocation) -> Any:
    if isinstance(result, TraceEvent):
        return event_json(result)
    if isinstance(result, TraceStopped):
        return stopped_json(result)
    # status lines are not emitted with --json; should a session ask anyway:
    return {"event": "status", "text": render(result, inv)}


COMMAND = Command(
    name="trace",
    summary="trace calls to functions as they happen, with limits enforced on the node (recon_trace)",
    shows=(
        "Each call to the functions SPEC names, as it happens: time (UTC), process, and "
        "module:function(arguments); with --return also what each call returned. Arguments are cut "
        "to a depth and a size on the node, so a huge argument never crosses the network."
    ),
    when=(
        "When you need to see what actually reaches a function: the arguments a server receives, what it "
        "returns, which process calls it. Start narrow (one function, --match, --pid PROC, a low --limit) "
        "and widen step by step."
    ),
    cost=(
        "Every call to a traced function, in every traced process, is checked against the pattern and "
        "produces a trace message: a hot function traced in all processes slows the node. The trace stops "
        "at the first of its message limit, rate limit and duration (always in force, capped by policy) and "
        "removes exactly the patterns and flags it set when it stops, when you press Ctrl-C, when your "
        "session ends or when the gateway disappears. Before OTP 27 a node has one tracer: one beamgate "
        "trace per node at a time."
    ),
    params=(Param("SPEC", "funspec", "mod:fun/arity, mod:fun, mod, MyApp.Worker.fun/2 or :mod.fun/2", many=True),),
    flags=(
        Flag("limit", "int", "stop after N messages (calls and returns)", metavar="N", min=1, max=1_000_000),
        Flag("rate", "rate", "stop when more than N messages arrive within SECONDS", metavar="N/SECONDS"),
        Flag("for", "int", "stop after SECONDS", metavar="SECONDS", min=1, max=86_400),
        Flag(
            "pid",
            "text",
            "which processes: one (a pid or a name), new, existing, or all (default)",
            metavar="PROC|new|existing|all",
        ),
        Flag("return", "bool", "also show what each call returns (each return counts as a message)"),
        Flag("match", "text", "only calls whose argument list matches, e.g. '[3, _]'", metavar="ARGPATTERN"),
        Flag("local", "bool", "also trace calls made inside the module (and non-exported functions)"),
    ),
    streaming=True,
    run=run,
    render=render,
    to_json=to_json,
    examples=(
        "trace queue:in/2 --limit 5",
        "trace my_server:handle_call/3 --return --rate 10/1",
        "trace MyApp.Worker.handle_call/3 --pid MyApp.Worker --for 30",
        "trace my_mod:parse/2 --match '[<<\"GET\">>, _]' --local",
    ),
    notes="""
Limits: the message limit, the rate limit (N per SECONDS) and the duration
always apply; those you do not give take the defaults, and none may exceed
what your role allows. Limits are counted on the node: you never receive
more messages than the limit.

--match takes the argument list as an Erlang pattern with literals and _
only: '[3, _]', '[{error, _}, _]', '[#{id => 42}]'. No variables, guards
or bodies.

Refused as too broad: every module, and every function of erlang, lists,
io or ets unless --pid PROC or a --match that constrains some argument
narrows it ('[_, _]' does not). recon_trace refuses every module, and io
and lists without a pattern; beamgate adds erlang and ets, and allows one
named function of any of them.
""",
)
