"""Driving ``trace`` against real nodes: a real Context with a real BoundedTarget.

:class:`Gateway` is one hidden gateway node (a real :class:`LocalNode`)
connected to a fixture node. :meth:`Gateway.trace` parses a command line
with the real grammar and registry and returns a :class:`TraceRun`: its own
owner process (as the session gives each command), a real
:class:`~gateway.target.BoundedTarget`, and an ``emit`` that records every
event. Only the session-level views (current node, policy) are minimal
stand-ins: they are a unit boundary the trace command only reads.

:func:`leftovers` is the independent check: it asks the node itself, through
the fixture REPL and never through beamgate, what tracing remains.

Run as a script, this module is the gateway side of the SIGKILL tests: it
starts one trace and prints ``STARTED`` and then one line per event, until
it is killed::

    python -m tests.support.trace_harness NODE COOKIE_FILE 'trace bg_traced:work/2'
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commands import REGISTRY
from commands.context import Context, Identity
from commands.grammar import parse_line
from commands.spec import Invocation
from gateway.config import SafetyConfig, TraceLimits
from gateway.dist.node import LocalNode, Process
from gateway.dist.rpc import RemoteNode, RpcClient
from gateway.secret import Cookie
from gateway.target import BoundedTarget
from tests.support.erlang import ErlangNode, short_host
from tests.support.harness import FakeSession

#: Generous defaults for tests; individual tests pass their own limits on the line.
SAFETY = SafetyConfig(
    max_heap=32 * 1024 * 1024,
    eval_timeout=5.0,
    trace_defaults=TraceLimits(max_messages=200, max_rate=100, max_seconds=30),
)

#: Clean state, as :func:`leftovers` prints it.
CLEAN = "{[],0,{flags,[]},0,[],[],undefined}"


@dataclass
class OpenPolicy:
    """Every command allowed; ``trace`` caps published as the policy engine would."""

    trace: Mapping[str, Any] | None = None

    def may_run(self, command: str) -> bool:
        return True

    def describe(self) -> Mapping[str, Any]:
        return {"trace": self.trace} if self.trace is not None else {}

    def trace_caps(self) -> TraceLimits | None:
        if self.trace is None:
            return None
        return TraceLimits(self.trace["max_messages"], self.trace["max_rate"], self.trace["max_seconds"])


@dataclass
class TraceRun:
    """One ``trace`` command: its context, its owner, and what it emitted."""

    ctx: Context
    inv: Invocation
    owner: Process
    events: list[Any] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[Any] | None = None

    async def emit(self, event: Any) -> None:
        self.events.append(event)
        self._changed.set()

    async def run(self) -> Any:
        return await self.ctx.registry["trace"].run(self.ctx, self.inv)

    def start(self) -> asyncio.Task[Any]:
        self.task = asyncio.ensure_future(self.run())
        return self.task

    def trace_events(self) -> list[Any]:
        from commands.tracing.relay import TraceEvent

        return [e for e in self.events if isinstance(e, TraceEvent)]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` trace events arrived (fails on timeout, or if the run ended first)."""
        async with asyncio.timeout(timeout):
            while len(self.trace_events()) < count:
                if self.task is not None and self.task.done():
                    raise AssertionError(f"trace ended with {self.task.result()!r} before {count} events")
                self._changed.clear()
                with_task = [asyncio.ensure_future(self._changed.wait())]
                if self.task is not None:
                    with_task.append(self.task)  # type: ignore[arg-type]
                await asyncio.wait(with_task, return_when=asyncio.FIRST_COMPLETED)
                with_task[0].cancel()


class Gateway:
    """A hidden gateway node connected to one fixture node."""

    def __init__(self, node: ErlangNode, safety: SafetyConfig = SAFETY) -> None:
        self.node = node
        self.safety = safety
        self.local = LocalNode(f"beamgate_{secrets.token_hex(3)}@{short_host()}", Cookie(node.cookie.encode()))
        self.remote = RemoteNode(self.local, node.name, RpcClient(self.local), call_timeout=5.0)

    def trace(self, line: str, *, user: str = "alice", caps: Mapping[str, Any] | None = None) -> TraceRun:
        inv = parse_line(line, REGISTRY)
        assert inv is not None
        owner = self.local.spawn()
        run = TraceRun(ctx=None, inv=inv, owner=owner)  # type: ignore[arg-type]
        run.ctx = Context(
            identity=Identity(user, ("sre",), "SHA256:test"),
            registry=REGISTRY,
            session=FakeSession(self.node.name),
            policy=OpenPolicy(caps),
            safety=self.safety,
            target=BoundedTarget(self.remote, owner, self.safety),
            emit=run.emit,
        )
        return run

    def close(self) -> None:
        self.local.close()


def leftovers(node: ErlangNode, module: str = "bg_traced", function: str = "work", arity: int = 2) -> str:
    """What tracing remains on ``node``, asked through its own REPL; :data:`CLEAN` when nothing.

    The tuple: functions of ``module`` with a legacy trace pattern; processes
    with legacy trace flags; the flags for new processes; live beamgate
    relays or cleaners; beamgate trace sessions (OTP 27+); sessions tracing
    ``module:function/arity``; the legacy relay's registered name.
    """
    return node.eval(
        f"""(fun() ->
          ChkPatterns = [ChkF || {{ChkF, ChkA}} <- {module}:module_info(functions),
                                 erlang:trace_info({{{module}, ChkF, ChkA}}, traced) =/= {{traced, false}}],
          ChkFlags = [ChkP || ChkP <- processes(),
                              not lists:member(erlang:trace_info(ChkP, flags), [{{flags, []}}, undefined])],
          ChkOurs = [ChkP || ChkP <- processes(),
                             case erlang:process_info(ChkP, dictionary) of
                                 {{dictionary, ChkD}} -> lists:keymember(beamgate_trace, 1, ChkD)
                                                         orelse lists:keymember(beamgate_trace_cleaner, 1, ChkD);
                                 _ -> false
                             end],
          ChkSessions = case catch trace:session_info(all) of
                            ChkL when is_list(ChkL) -> [ChkS || {{beamgate_trace, _}} = ChkS <- ChkL];
                            _ -> []
                        end,
          ChkFun = case catch trace:session_info({{{module}, {function}, {arity}}}) of
                       ChkL2 when is_list(ChkL2) -> ChkL2;
                       _ -> []
                   end,
          {{ChkPatterns, length(ChkFlags), erlang:trace_info(new, flags), length(ChkOurs), ChkSessions, ChkFun,
            whereis(beamgate_trace_relay)}}
        end)()."""
    )


async def _drive(node_name: str, cookie_file: Path, line: str) -> None:
    local = LocalNode(f"beamgate_{secrets.token_hex(3)}@{short_host()}", Cookie.from_file(cookie_file))
    remote = RemoteNode(local, node_name, RpcClient(local), call_timeout=5.0)
    owner = local.spawn()
    inv = parse_line(line, REGISTRY)
    assert inv is not None

    async def emit(event: Any) -> None:
        text = inv.command.render(event, inv)
        print("STARTED" if text.startswith("tracing ") else text, flush=True)

    ctx = Context(
        identity=Identity("driver", ("sre",), "SHA256:test"),
        registry=REGISTRY,
        session=FakeSession(node_name),
        policy=OpenPolicy(),
        safety=SAFETY,
        target=BoundedTarget(remote, owner, SAFETY),
        emit=emit,
    )
    result = await inv.command.run(ctx, inv)
    print(inv.command.render(result, inv), flush=True)


if __name__ == "__main__":
    asyncio.run(_drive(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
