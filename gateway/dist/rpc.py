"""Remote calls on one target node: ``rex`` RPC and evaluation of fixed snippets.

:meth:`RemoteNode.call` sends what ``rpc:call/5`` sends (a ``gen_server``
call to ``rex`` with the group leader ``user``, as C nodes do) and waits for
``{Ref, Reply}`` on a single gateway process shared by all calls to the node.
Each call has its own timeout; a reply arriving after it is dropped and
counted, and nothing is kept for it.

:meth:`RemoteNode.eval` runs a :class:`Snippet`, a fixed piece of Erlang
source that ships with beamgate, through OTP's own ``erl_scan``,
``erl_parse`` and ``erl_eval`` (SPEC safety rules 2 and 4: no code is
loaded on the target, and user input never becomes code). The parsed forms
are cached per node and connection, pre-encoded, so each call sends them
without re-parsing. User values reach the snippet only as variable bindings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import control, etf
from .errors import CallTimeout, DistError, NodeDown, RemoteError
from .node import LocalNode, Process
from .terms import Atom, Pid, Reference

_GEN_CALL = Atom("$gen_call")
_CALL = Atom("call")
_REX = Atom("rex")
_USER = Atom("user")
_BADRPC = Atom("badrpc")
_ERL_EVAL = Atom("erl_eval")
_EXPRS = Atom("exprs")
_VALUE = Atom("value")


@dataclass(frozen=True)
class Snippet:
    """A fixed, reviewed piece of Erlang evaluated on targets.

    ``source`` is a sequence of Erlang expressions ending with a period. It
    may refer to the variables named in ``bindings`` only; values for them
    are supplied per call. Nothing from a user is ever formatted into
    ``source``.
    """

    name: str
    source: str
    bindings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.source.rstrip().endswith("."):
            raise ValueError(f"snippet {self.name}: source must end with a period")
        for var in self.bindings:
            if not var[:1].isupper():
                raise ValueError(f"snippet {self.name}: binding {var!r} is not an Erlang variable name")


@dataclass
class _NodeState:
    """Per-connection cache: parsed snippets and facts about the node."""

    conn: object
    forms: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


class RpcClient:
    """The single gateway process that receives every ``rex`` reply of a node."""

    def __init__(self, local: LocalNode) -> None:
        self.local = local
        self.process: Process = local.spawn(self._on_message)
        self._waiting: dict[Reference, asyncio.Future[Any]] = {}
        self.late_replies = 0

    def _on_message(self, message: Any) -> None:
        if type(message) is tuple and len(message) == 2:
            fut = self._waiting.pop(message[0], None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(message[1])
                return
        self.late_replies += 1
        self.local.dropped += 1

    async def call(self, node: str, module: Atom, function: Atom, args: list[Any], timeout: float) -> Any:
        conn = await self.local.connect(node)
        ref = self.local.make_ref()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._waiting[ref] = fut
        request = (_GEN_CALL, (self.process.pid, ref), (_CALL, module, function, args, _USER))
        try:
            conn.send(*control.reg_send(self.process.pid, _REX, request), with_payload=True)
        except DistError:
            self._waiting.pop(ref, None)
            raise
        handle = loop.call_later(timeout, _timeout, fut, node, module, function, timeout)
        closed = conn.closed
        closed.add_done_callback(fut_fail := _fail_on_close(fut))
        try:
            return await fut
        finally:
            handle.cancel()
            closed.remove_done_callback(fut_fail)
            self._waiting.pop(ref, None)


def _timeout(fut: asyncio.Future[Any], node: str, module: str, function: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(CallTimeout(f"{node} did not answer {module}:{function} within {timeout:g}s"))


def _fail_on_close(fut: asyncio.Future[Any]) -> Any:
    def callback(closed: asyncio.Future[DistError]) -> None:
        if not fut.done():
            reason = closed.result()
            fut.set_exception(NodeDown(f"{reason} (during a call)"))

    return callback


class RemoteNode:
    """Calls on one target node, through the shared connection of ``local``."""

    def __init__(self, local: LocalNode, name: str, rpc: RpcClient, *, call_timeout: float = 10.0) -> None:
        self.local = local
        self.name = name
        self.rpc = rpc
        self.call_timeout = call_timeout
        self._state: _NodeState | None = None
        self._parsing: dict[str, asyncio.Future[Any]] = {}

    def __repr__(self) -> str:
        return f"<RemoteNode {self.name}>"

    async def connect(self) -> None:
        await self.local.connect(self.name)

    @property
    def connected(self) -> bool:
        return self.local.connection_or_none(self.name) is not None

    async def call(self, module: str, function: str, args: list[Any] | None = None, *, timeout: float | None = None) -> Any:
        """``rpc:call(Node, Module, Function, Args, Timeout)``; raises on ``badrpc``."""
        result = await self.rpc.call(
            self.name, Atom(module), Atom(function), list(args or []), timeout or self.call_timeout
        )
        if type(result) is tuple and len(result) == 2 and result[0] == _BADRPC:
            raise RemoteError(f"{module}:{function} failed on {self.name}: {_reason_text(result[1])}", result[1])
        return result

    async def eval(self, snippet: Snippet, bindings: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """Evaluate ``snippet`` on the node with ``bindings``; return its value."""
        bindings = dict(bindings or {})
        unknown = set(bindings) - set(snippet.bindings)
        missing = set(snippet.bindings) - set(bindings)
        if unknown or missing:
            raise ValueError(f"snippet {snippet.name}: unknown bindings {sorted(unknown)}, missing {sorted(missing)}")
        forms = await self.forms(snippet)
        orddict = [(Atom(name), bindings[name]) for name in sorted(bindings)]
        result = await self.call("erl_eval", "exprs", [forms, orddict], timeout=timeout)
        if type(result) is tuple and len(result) == 3 and result[0] == _VALUE:
            return result[1]
        raise RemoteError(f"unexpected erl_eval result for snippet {snippet.name}")

    async def forms(self, snippet: Snippet) -> Any:
        """Parsed forms of ``snippet`` on this node (cached per connection)."""
        state = await self._node_state()
        cached = state.forms.get(snippet.source)
        if cached is not None:
            return cached
        pending = self._parsing.get(snippet.source)
        if pending is None:
            pending = asyncio.ensure_future(self._parse(snippet))
            self._parsing[snippet.source] = pending
            pending.add_done_callback(lambda _f: self._parsing.pop(snippet.source, None))
        forms = await asyncio.shield(pending)
        state.forms[snippet.source] = forms
        return forms

    async def _parse(self, snippet: Snippet) -> Any:
        scanned = await self.call("erl_scan", "string", [list(snippet.source.encode("utf-8"))])
        if not (isinstance(scanned, tuple) and scanned[0] == "ok"):
            raise RemoteError(f"snippet {snippet.name} does not scan on {self.name}: {scanned!r}")
        parsed = await self.call("erl_parse", "parse_exprs", [scanned[1]])
        if not (isinstance(parsed, tuple) and parsed[0] == "ok"):
            raise RemoteError(f"snippet {snippet.name} does not parse on {self.name}: {parsed!r}")
        return etf.Raw(parsed[1])

    async def fact(self, key: str, module: str, function: str, args: list[Any] | None = None) -> Any:
        """A per-connection cached call, for facts that only change on restart."""
        state = await self._node_state()
        if key not in state.facts:
            state.facts[key] = await self.call(module, function, args)
        return state.facts[key]

    async def otp_release(self) -> str:
        value = await self.fact("otp_release", "erlang", "system_info", [Atom("otp_release")])
        return bytes(value).decode("ascii", "replace")

    async def _node_state(self) -> _NodeState:
        conn = await self.local.connect(self.name)
        if self._state is None or self._state.conn is not conn:
            self._state = _NodeState(conn)
        return self._state

    async def ping(self) -> float:
        """Round-trip time of a trivial call, in seconds."""
        start = time.perf_counter()
        await self.call("erlang", "node", [])
        return time.perf_counter() - start

    def pid_on_node(self, pid: Pid) -> bool:
        return pid.node == self.name


def _reason_text(reason: Any) -> str:
    text = repr(reason)
    return text if len(text) <= 300 else text[:300] + "..."
