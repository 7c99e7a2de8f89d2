"""Run commands the way the dispatcher will, against a real node, from synchronous tests.

The dispatcher and the session are not part of the command layer, so tests
drive commands through this harness: it parses a line with the real
:func:`commands.grammar.parse_line`, builds a real
:class:`commands.context.Context` whose target is a real
:class:`gateway.target.BoundedTarget` connected to a real node, runs the
command and renders both its text and its JSON form.

Only the session-level views are fakes (:class:`FakeSession`,
:class:`AllowAll`): they are the unit boundary between the command layer
and the session, and commands under test only read them.

The harness owns an asyncio loop on a background thread, so a test can
interleave commands with blocking calls to the node's fixture REPL. The
pytest fixtures built on it are in :mod:`tests.support.fixtures`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import secrets
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from commands import REGISTRY
from commands.context import Context, Identity, NodeStatus
from commands.grammar import parse_line
from commands.spec import Invocation
from gateway.config import SafetyConfig, TraceLimits
from gateway.dist.node import LocalNode
from gateway.dist.rpc import RemoteNode, RpcClient
from gateway.secret import Cookie
from gateway.target import BoundedTarget
from tests.support.erlang import ERLANG_SRC, compile_erlang, short_host

T = TypeVar("T")


class FakeSession:
    """The session view a command may read: one current node."""

    def __init__(self, node: str) -> None:
        self.node = node

    @property
    def current_node(self) -> str | None:
        return self.node

    def select_node(self, name: str) -> None:
        self.node = name

    def allowed_nodes(self) -> Sequence[str]:
        return [self.node]

    async def node_status(self, names: Sequence[str]) -> list[NodeStatus]:
        return [NodeStatus(n, "test", True, current=n == self.node) for n in names]

    def request_exit(self) -> None:
        pass


class AllowAll:
    """A policy view that allows every command (policy checks are the dispatcher's)."""

    def may_run(self, command: str) -> bool:
        return True

    def describe(self) -> Mapping[str, Any]:
        return {"user": "tester", "roles": ["test"]}

    def trace_caps(self) -> TraceLimits | None:
        return None  # no role caps: the safety defaults apply


@dataclass
class Outcome:
    """One command's result: the value ``run`` returned, its text and its JSON."""

    inv: Invocation
    value: Any
    text: str
    json: Any
    seconds: float


@dataclass
class Harness:
    """A connection to one node and a way to run command lines on it."""

    node_name: str
    cookie: str
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    #: What ``ctx.confirm`` answers (``kill``); ``None`` means the user cancelled.
    confirm_answer: str | None = None
    #: Called (in a thread) while the confirmation is pending, as if the node changed meanwhile.
    while_confirming: Callable[[], object] | None = None
    prompts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="harness-loop", daemon=True)
        self.thread.start()
        self.local = LocalNode(f"beamgate_{secrets.token_hex(3)}@{short_host()}", Cookie(self.cookie.encode()))
        self.remote = RemoteNode(self.local, self.node_name, RpcClient(self.local))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 300.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def context(self, safety: SafetyConfig | None = None) -> tuple[Context, BoundedTarget]:
        owner = self.local.spawn()
        target = BoundedTarget(self.remote, owner, safety or self.safety)
        ctx = Context(
            identity=Identity("tester", ("test",), "SHA256:test"),
            registry=REGISTRY,
            session=FakeSession(self.node_name),
            policy=AllowAll(),
            safety=safety or self.safety,
            target=target,
            confirm=self._confirm,
        )
        return ctx, target

    async def _confirm(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        if self.while_confirming is not None:
            await asyncio.to_thread(self.while_confirming)
        return self.confirm_answer

    async def _run(self, line: str, safety: SafetyConfig | None) -> Outcome:
        inv = parse_line(line, REGISTRY)
        assert inv is not None, "empty line"
        ctx, target = self.context(safety)
        start = self.loop.time()
        try:
            value = await inv.command.run(ctx, inv)
        finally:
            target.owner.close()
        seconds = self.loop.time() - start
        text = inv.command.render(value, inv)
        as_json = json.loads(json.dumps(inv.command.to_json(value, inv)))
        return Outcome(inv, value, text, as_json, seconds)

    def run(self, line: str, *, safety: SafetyConfig | None = None, timeout: float = 300.0) -> Outcome:
        """Parse and run ``line``; raise what the command raises (CommandError, UsageError)."""
        return self.call(self._run(line, safety), timeout)

    def submit(self, line: str, *, safety: SafetyConfig | None = None) -> concurrent.futures.Future[Outcome]:
        """Start ``line`` without waiting (for commands that must overlap with REPL calls)."""
        return asyncio.run_coroutine_threadsafe(self._run(line, safety), self.loop)

    def close(self) -> None:
        async def shutdown() -> None:
            self.local.close()

        try:
            self.call(shutdown(), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def harness_for(node: Any, **kwargs: Any) -> Harness:
    """A :class:`Harness` for a fixture node (:class:`~tests.support.erlang.ErlangNode` or Elixir)."""
    return Harness(node.name, node.cookie, **kwargs)


def pid_of(node: Any, name: str) -> str:
    """The pid registered as ``name`` on a fixture Erlang node, as ``<0.N.S>`` (asked through its REPL)."""
    return str(node.eval(f"pid_to_list(whereis({name})).", pretty=True)).strip('"')


def plant(node: Any, beams: Path) -> None:
    """Load ``tests/erlang/bg_plant.erl`` (the problem planter) on a fixture node, through its REPL."""
    compile_erlang(ERLANG_SRC / "bg_plant.erl", outdir=beams)
    node.eval(f'code:add_patha("{beams}"), ok.')
    node.eval("{module, bg_plant} = code:ensure_loaded(bg_plant), ok.")
