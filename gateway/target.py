"""Bounded evaluation on a target node (SPEC safety rule 5).

Every diagnostic a user runs goes through :meth:`BoundedTarget.run`. On the
target, a fixed *runner* snippet (evaluated by ``erl_eval`` in the process
``rex`` spawns for the call) starts a fresh worker process with:

* ``max_heap_size`` (``safety.max_heap``, ``kill => true``): a query that
  needs more memory is killed by the VM itself, the node is unaffected;
* a deadline (``safety.eval_timeout`` or the command's own): the runner kills
  the worker when it passes;
* a reply-size cap (``safety.max_reply``), checked with
  ``erlang:external_size/1`` before anything crosses the network;
* a monitor on the *owner*, a gateway-side process that lives exactly as long
  as the user's command: Ctrl-C, the end of the session, a gateway crash or a
  lost connection all end it (a lost connection fires the monitor with
  ``noconnection``), and the runner then kills the worker.

The worker evaluates the command's own snippet. A snippet reports a
user-facing failure with ``throw({beamgate, Kind, Detail})`` (``Kind`` an
atom such as ``no_such_process``); that surfaces as :class:`TargetError` with
``kind`` set, for the command to phrase. Any other exception is reported with
its (depth- and size-limited) reason, printed on the node as UTF-8 (atoms
beyond Latin-1 included).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .config import SafetyConfig, format_duration
from .dist.node import Process
from .dist.rpc import RemoteNode, Snippet
from .dist.terms import Atom

RUNNER = Snippet(
    "beamgate_runner",
    """
    Tag = make_ref(),
    Fmt = fun(T) ->
              case unicode:characters_to_binary(io_lib:format("~tW", [T, 12])) of
                  Text when is_binary(Text) -> Text;
                  _ -> iolist_to_binary(io_lib:format("~W", [T, 12]))
              end
          end,
    Cut = fun(B) when byte_size(B) > 600 -> <<(binary:part(B, 0, 600))/binary, "...">>; (B) -> B end,
    {Worker, WorkerMon} = erlang:spawn_opt(
        fun() ->
            Outcome = try erl_eval:exprs(Forms, Bindings) of
                          {value, Value, _} -> {ok, Value}
                      catch
                          throw:{beamgate, Kind, Detail} -> {thrown, {Kind, Detail}};
                          Class:Reason:Stack -> {raised, {Class, Reason, lists:sublist(Stack, 3)}}
                      end,
            exit({Tag, Outcome})
        end,
        [monitor, {max_heap_size, #{size => MaxHeapWords, kill => true, error_logger => false}}]),
    OwnerMon = erlang:monitor(process, Owner),
    Result = receive
        {'DOWN', WorkerMon, process, _, {Tag, {ok, Value}}} ->
            case erlang:external_size(Value) of
                Size when Size > MaxReply -> {beamgate_error, reply_too_large, Size};
                _ -> {beamgate_ok, Value}
            end;
        {'DOWN', WorkerMon, process, _, {Tag, {thrown, {Kind, Detail}}}} ->
            case erlang:external_size(Detail) of
                Size when Size > 4096 -> {beamgate_error, Kind, Cut(Fmt(Detail))};
                _ -> {beamgate_error, Kind, Detail}
            end;
        {'DOWN', WorkerMon, process, _, {Tag, {raised, Raised}}} ->
            {beamgate_error, raised, Cut(Fmt(Raised))};
        {'DOWN', WorkerMon, process, _, killed} ->
            {beamgate_error, heap_limit, MaxHeapWords};
        {'DOWN', WorkerMon, process, _, Other} ->
            {beamgate_error, crashed, Cut(Fmt(Other))};
        {'DOWN', OwnerMon, process, _, _} ->
            exit(Worker, kill),
            {beamgate_error, owner_gone, 0}
    after Timeout ->
        exit(Worker, kill),
        {beamgate_error, timeout, Timeout}
    end,
    erlang:demonitor(OwnerMon, [flush]),
    Result.
    """,
    ("Bindings", "Forms", "MaxHeapWords", "MaxReply", "Owner", "Timeout"),
)

_OK = Atom("beamgate_ok")
_ERROR = Atom("beamgate_error")
#: Extra time the gateway waits beyond the target-side deadline for the answer to arrive.
TRANSPORT_MARGIN = 5.0


class TargetError(Exception):
    """A bounded query did not produce a value. ``kind`` says which bound or failure."""

    def __init__(self, kind: str, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail


class BoundedTarget:
    """One target node as a command sees it: bounded runs owned by one command."""

    def __init__(
        self,
        remote: RemoteNode,
        owner: Process,
        safety: SafetyConfig,
        *,
        reaching: Callable[[], None] | None = None,
    ) -> None:
        self.remote = remote
        self.owner = owner
        self.safety = safety
        #: Called once, just before the first evaluation goes to the node (what the command
        #: checked on the gateway passed): dispatch audits the start of a trace there.
        self._reaching = reaching

    @property
    def name(self) -> str:
        return self.remote.name

    def __repr__(self) -> str:
        return f"<BoundedTarget {self.name} owner={self.owner.pid.id}>"

    async def otp_release(self) -> str:
        return await self.remote.otp_release()

    async def run(
        self,
        snippet: Snippet,
        bindings: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        max_heap: int | None = None,
        max_reply: int | None = None,
    ) -> Any:
        """Evaluate ``snippet`` in a bounded worker on the node and return its value."""
        values = dict(bindings or {})
        unknown = set(values) - set(snippet.bindings)
        missing = set(snippet.bindings) - set(values)
        if unknown or missing:
            raise ValueError(f"snippet {snippet.name}: unknown bindings {sorted(unknown)}, missing {sorted(missing)}")
        if self._reaching is not None:
            reaching, self._reaching = self._reaching, None
            reaching()
        limit = self.safety.eval_timeout if timeout is None else timeout
        heap = max_heap or self.safety.max_heap
        reply = max_reply or self.safety.max_reply
        forms = await self.remote.forms(snippet)
        result = await self.remote.eval(
            RUNNER,
            {
                "Bindings": [(Atom(k), values[k]) for k in sorted(values)],
                "Forms": forms,
                "MaxHeapWords": max(heap // 8, 1024),
                "MaxReply": reply,
                "Owner": self.owner.pid,
                "Timeout": max(int(limit * 1000), 1),
            },
            timeout=limit + TRANSPORT_MARGIN,
        )
        if type(result) is tuple and len(result) == 2 and result[0] == _OK:
            return result[1]
        if type(result) is tuple and len(result) == 3 and result[0] == _ERROR:
            raise self._error(str(result[1]), result[2], limit, heap, reply)
        raise TargetError("protocol", f"unexpected answer from the runner on {self.name}")

    def _error(self, kind: str, detail: Any, limit: float, heap: int, reply: int) -> TargetError:
        node = self.name
        if kind == "timeout":
            msg = f"stopped on {node} after its time limit of {format_duration(limit)}"
        elif kind == "heap_limit":
            msg = (
                f"killed on {node}: it needed more than {_size(heap)} of heap "
                "(safety.max_heap); the node itself is unaffected"
            )
        elif kind == "reply_too_large":
            msg = f"the answer from {node} ({detail} bytes) exceeds the reply cap of {reply} bytes (safety.max_reply)"
        elif kind in ("raised", "crashed"):
            text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
            msg = f"failed on {node}: {text}"
        elif kind == "owner_gone":
            msg = f"cancelled on {node}"
        else:
            msg = f"{kind.replace('_', ' ')} on {node}"
        return TargetError(kind, msg, detail)


def _size(n: int) -> str:
    """``67108864`` -> ``64 MiB``; ``524288`` -> ``512 KiB``."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"
