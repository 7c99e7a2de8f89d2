"""Dispatch: the single path from a typed line to its output, for the shell and exec mode.

For every line, in this order and nowhere else:

1. **parse** with :func:`commands.grammar.parse_line` (a :class:`UsageError`
   names the problem);
2. **resolve the node**: ``--node N``, else the ``use``d node, else the only
   configured node; an unconfigured node is denied by the policy exactly like
   a forbidden one (exit 3: no probing of node names). With ``--nodes GLOB``
   (commands declared ``fanout``) the policy picks the nodes;
3. **policy**: ``UserPolicy.check(invocation, node)`` (the user's policy
   under the config generation in force) returns a :class:`~policies.Decision`:
   its ``invocation`` (values possibly lowered to a cap, each with a notice
   shown first) is what runs, on exactly its ``nodes``, after the user has
   typed its confirmation if it asks for one (only the interactive shell can:
   elsewhere that is a denial); or it raises :class:`~policies.Denied`;
4. **run**: a fresh owner process on the node's cluster
   :class:`~gateway.dist.node.LocalNode` and a
   :class:`~gateway.target.BoundedTarget` per command, so closing the owner
   (on completion, Ctrl-C or the end of the session) ends the remote work;
5. **render**: the command's formatter (``--json``: ``to_json``, one
   document), then a last sanitizing pass so nothing remote reaches a
   terminal raw (SPEC safety rule 8);
6. **audit**: one ``command`` event (or ``denied``) with the node, the line,
   the deciding rule, the outcome, the duration, the bytes of output and
   where they sit in the session recording (which also gets a marker at
   each command). A privileged command (``kill``) is audited before it acts
   too: a ``command`` event with outcome ``started`` once the policy and the
   confirmation let it run; if that cannot be written it is refused (exit
   1), so a gateway killed mid-command still leaves its trace. ``trace`` is
   bracketed by ``trace_start`` (written as the trace first reaches the
   node, so a line the command itself refuses leaves neither) and
   ``trace_stop`` (why it stopped, how many messages).

Streaming commands hand each event to ``ctx.emit`` as it comes; it is
printed with the command's own ``render`` (with ``--json``: ``to_json``,
one JSON line each), like the final result the command returns.

Exit status (SPEC): 0 ok, 1 the command failed, 2 usage error, 3 denied;
errors are one line: ``error: ...``, ``usage: ...``, ``denied: ...``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from commands import REGISTRY
from commands.context import Context, Identity
from commands.errors import CommandError
from commands.format import sanitize
from commands.grammar import MAX_LINE, UsageError, parse_line
from commands.spec import Command, Invocation
from policies import Decision, Denied, UserPolicy

from .audit import AuditError
from .dist.errors import DistError
from .recording import RecordingError
from .session_state import AuditTrail, SessionState
from .target import BoundedTarget, TargetError

log = logging.getLogger("beamgate.dispatch")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DENIED = 3


class Output(Protocol):
    """Where a command's text goes: ``out`` for results, ``err`` for the one-line errors."""

    def out(self, text: str) -> None: ...

    def err(self, text: str) -> None: ...


@dataclass(frozen=True)
class Outcome:
    status: int
    #: ``ok``, ``error``, ``usage``, ``denied``, ``cancelled`` (confirmation not given),
    #: ``interrupted`` (audit only: the caller sees the cancellation) or ``empty``.
    kind: str


EMPTY = Outcome(EXIT_OK, "empty")

#: Audit events that bracket a streaming command, by command name.
STREAM_EVENTS = {"trace": ("trace_start", "trace_stop")}


class _Counted:
    """An :class:`Output` that counts the bytes it passes on."""

    def __init__(self, inner: Output) -> None:
        self.inner = inner
        self.bytes = 0

    def out(self, text: str) -> None:
        self.bytes += len(text.encode("utf-8"))
        self.inner.out(text)

    def err(self, text: str) -> None:
        self.bytes += len(text.encode("utf-8")) + 1
        self.inner.err(text)


@dataclass
class _Result:
    """One node's part of a run: its value or the error message."""

    node: str | None
    value: Any = None
    error: str | None = None


def safe_text(text: str) -> str:
    """Rendered output, with any control character left in it shown visibly (newlines kept)."""
    return sanitize(text, keep_newlines=True, escape_backslash=False)


def json_text(value: Any) -> str:
    """One JSON document on one line; non-ASCII and control characters escaped (inert)."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)


def one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return sanitize(text)


class Dispatcher:
    """Runs lines for one session."""

    def __init__(
        self,
        *,
        identity: Identity,
        state: SessionState,
        audit: AuditTrail,
        registry: Mapping[str, Command] = REGISTRY,
        extras: Mapping[str, Any] | None = None,
        confirm: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        self.identity = identity
        self.state = state
        self.clusters = state.clusters
        self.audit = audit
        self.registry = registry
        self.extras = dict(extras or {})
        self.confirm = confirm

    async def run_line(self, line: str, output: Output, *, dropped: int = 0) -> Outcome:
        """Run one line to completion; cancelling the call cancels the command and its remote work.

        ``dropped``: characters the shell cut off the end of ``line`` (it was too long); such a line is
        refused, with its whole length.
        """
        started = time.monotonic()
        if not line.strip() and not dropped:
            return EMPTY
        self.audit.mark(line)
        fields: dict[str, Any] = {"line": line, **self.audit.position()}
        if dropped:
            fields["line_length"] = len(line) + dropped
        counted = _Counted(output)
        try:
            outcome = await self._run_line(line, counted, fields, started, dropped)
        finally:
            fields["output_bytes"] = counted.bytes
        if outcome is EMPTY:
            return outcome
        if outcome.kind == "denied":
            self.audit.emit("denied", duration_ms=_ms(started), **fields)
        else:
            self.audit.emit("command", outcome=outcome.kind, status=outcome.status, duration_ms=_ms(started), **fields)
        return outcome

    async def _run_line(
        self, line: str, output: Output, fields: dict[str, Any], started: float, dropped: int
    ) -> Outcome:
        try:
            if dropped:
                raise UsageError(f"line too long ({len(line) + dropped} characters; the limit is {MAX_LINE})")
            inv = parse_line(line, self.registry)
            if inv is None:
                return EMPTY
            fields["command"] = inv.name
            policy = self.state.policy  # the generation in force now (SIGHUP reloads apply per command)
            decision = self._decide(policy, inv, output, fields)
            if not await self._confirmed(decision, output, fields):
                return Outcome(EXIT_FAILED, "cancelled")
            if inv.command.privileged or inv.command.confirms:
                self._audit_started(inv, fields)
            if inv.nodes_glob is not None:
                results = await self._fan_out(policy, decision, output, fields)
                outcome = Outcome(EXIT_FAILED, "error") if any(r.error for r in results) else Outcome(EXIT_OK, "ok")
            else:
                await self._single(policy, decision, output)
                outcome = Outcome(EXIT_OK, "ok")
        except UsageError as exc:
            output.err(f"usage: {one_line(exc)}")
            outcome = Outcome(EXIT_USAGE, "usage")
            fields["error"] = str(exc)
        except Denied as exc:
            output.err(f"denied: {one_line(exc)}")
            fields.update(rule=exc.rule, reason=str(exc))
            outcome = Outcome(EXIT_DENIED, "denied")
        except (CommandError, TargetError, DistError) as exc:
            output.err(f"error: {one_line(exc)}")
            outcome = Outcome(EXIT_FAILED, "error")
            fields["error"] = str(exc)
        except asyncio.CancelledError:
            self.audit.emit("command", outcome="interrupted", duration_ms=_ms(started), **fields)
            raise
        except (RecordingError, AuditError):
            raise  # the session cannot go on unrecorded or unaudited: it ends
        except Exception as exc:
            log.exception("command %r failed inside the gateway", line)
            output.err(f"error: internal error in the gateway ({type(exc).__name__}); it has been logged")
            outcome = Outcome(EXIT_FAILED, "error")
            fields["error"] = f"internal: {type(exc).__name__}: {exc}"
        return outcome

    # -- deciding ----------------------------------------------------------------------

    def _node_for(self, inv: Invocation) -> str | None:
        """The node a single-node remote command runs on: ``--node``, the ``use``d one, or the only one."""
        if not inv.command.remote or inv.nodes_glob is not None:
            return None
        node = inv.node or self.state.default_node()
        if node is None:
            raise UsageError(
                f"{inv.name}: no node selected; use NODE first or add --node NODE (nodes lists them)", inv.command
            )
        # An unconfigured node is left to the policy, which denies it exactly like a
        # forbidden one: a least-privilege user cannot probe which node names exist.
        return node

    def _decide(self, policy: UserPolicy, inv: Invocation, output: Output, fields: dict[str, Any]) -> Decision:
        """The policy's decision; its notices (lowered values) are shown before anything runs."""
        if inv.nodes_glob is not None and inv.command.streaming:
            raise UsageError(f"{inv.name} streams its output and runs on one node at a time", inv.command)
        node = self._node_for(inv)
        fields["node"] = node
        decision = policy.check(inv, node)
        fields["decision"] = decision.audit
        if decision.invocation.clamped:
            fields["clamped"] = {k: list(v) for k, v in decision.invocation.clamped.items()}
        for notice in decision.notices:
            output.err(f"note: {notice}")
        return decision

    async def _confirmed(self, decision: Decision, output: Output, fields: dict[str, Any]) -> bool:
        """Ask for the policy's confirmation, if any; only the exact answer runs the command."""
        confirm = decision.confirm
        if confirm is None:
            if decision.invocation.command.confirms and self.confirm is None:
                raise Denied(
                    f"{decision.invocation.name} asks you to type its target back before it acts "
                    "(built-in: privileged commands are always confirmed); run it from the interactive shell "
                    "(ssh with a terminal, no command)",
                    "built-in: privileged commands are always confirmed",
                )
            return True
        fields["confirmation"] = confirm.rule
        if self.confirm is None:
            raise Denied(
                f"{decision.invocation.name} needs a typed confirmation ({confirm.rule}); "
                "run it from the interactive shell (ssh with a terminal, no command)",
                confirm.rule,
            )
        answer = await self.confirm(confirm.prompt + "\n> ")
        fields["confirmed"] = answer is not None and answer.strip() == confirm.answer
        if not fields["confirmed"]:
            output.err("cancelled: nothing was sent")
        return bool(fields["confirmed"])

    def _audit_started(self, inv: Invocation, fields: dict[str, Any]) -> None:
        """A command that changes a node is audited before it acts; if that fails, it does not act."""
        try:
            self.audit.emit("command", outcome="started", **fields)
        except AuditError as exc:
            raise CommandError(f"{inv.name} was not run: it cannot be audited ({exc})") from None

    # -- one node ----------------------------------------------------------------------

    async def _single(self, policy: UserPolicy, decision: Decision, output: Output) -> None:
        run = decision.invocation
        node = decision.nodes[0] if decision.nodes else None
        events = STREAM_EVENTS.get(run.name)
        if events is None:
            result = await self._run(policy, run, node, output)
        else:
            result = await self._bracketed(events, policy, run, node, output)
        if run.json:
            output.out(json_text(run.command.to_json(result, run)) + "\n")
        else:
            _print(output, run.command.render(result, run))

    async def _bracketed(
        self, events: tuple[str, str], policy: UserPolicy, inv: Invocation, node: str | None, output: Output
    ) -> Any:
        """Run a streaming command between its start and stop audit events.

        The start is written as the command first reaches the node: a line it refuses on the gateway
        (a usage error) never started, and leaves neither event.
        """
        spec = " ".join(str(v) for v in inv.args.get("spec") or ())
        started = False

        def start() -> None:
            nonlocal started
            self.audit.emit(events[0], node=node, line=inv.line, spec=spec, **self.audit.position())
            started = True

        stop: dict[str, Any] = {"reason": "error"}
        last: list[Any] = []
        try:
            result = await self._run(policy, inv, node, output, last, reaching=start)
        except asyncio.CancelledError:
            stop["reason"] = "interrupted"
            # Cancelled, the command still emits its summary (how many messages, the limits) as it stops.
            stop.update(_stop_fields(inv, last[0]) if last else {})
            raise
        else:
            stop.update(_stop_fields(inv, result))
            return result
        finally:
            if started:
                self.audit.emit(events[1], node=node, line=inv.line, spec=spec, **stop, **self.audit.position())

    # -- many nodes --------------------------------------------------------------------

    async def _fan_out(
        self, policy: UserPolicy, decision: Decision, output: Output, fields: dict[str, Any]
    ) -> list[_Result]:
        """Run on every node the decision names, concurrently; one section (or JSON key) per node."""
        run = decision.invocation
        fields["nodes"] = list(decision.nodes)
        results = await asyncio.gather(*(self._one_of_many(policy, n, run) for n in decision.nodes))
        fields["node_outcomes"] = {r.node: "error" if r.error else "ok" for r in results}
        if run.json:
            doc = {r.node: {"error": r.error} if r.error else run.command.to_json(r.value, run) for r in results}
            output.out(json_text(doc) + "\n")
            return results
        for r in results:
            output.out(f"== {r.node} ==\n")
            if r.error:
                output.out(f"error: {sanitize(r.error)}\n")
            else:
                _print(output, run.command.render(r.value, run))
        return results

    async def _one_of_many(self, policy: UserPolicy, node: str, inv: Invocation) -> _Result:
        try:
            return _Result(node, await self._run(policy, inv, node, None))
        except (CommandError, TargetError, DistError) as exc:
            return _Result(node, error=str(exc))

    # -- running -----------------------------------------------------------------------

    async def _run(
        self,
        policy: UserPolicy,
        inv: Invocation,
        node: str | None,
        output: Output | None,
        last: list[Any] | None = None,
        reaching: Callable[[], None] | None = None,
    ) -> Any:
        """Run ``inv`` on ``node`` under a fresh owner process, closed whatever happens.

        A streaming command's events are printed as they come; ``last``, if given, holds the latest one.
        ``reaching`` is called just before the command first evaluates anything on the node.
        """
        ctx = Context(
            identity=self.identity,
            registry=self.registry,
            session=self.state,
            policy=policy,
            safety=policy.safety,
            confirm=self.confirm,
            extras=dict(self.extras),
        )
        if inv.command.streaming and output is not None:
            ctx.emit = self._emitter(inv, output, last)
        if node is None:
            return await inv.command.run(ctx, inv)
        cluster = self.clusters.cluster_of(node)
        owner = cluster.local.spawn()
        try:
            ctx.target = BoundedTarget(cluster.nodes[node], owner, policy.safety, reaching=reaching)
            return await inv.command.run(ctx, inv)
        finally:
            owner.close()

    def _emitter(self, inv: Invocation, output: Output, last: list[Any] | None) -> Callable[[Any], Awaitable[None]]:
        async def emit(event: Any) -> None:
            if last is not None:
                last[:] = [event]
            if inv.json:
                output.out(json_text(inv.command.to_json(event, inv)) + "\n")
            else:
                _print(output, inv.command.render(event, inv))

        return emit


def _stop_fields(inv: Invocation, summary: Any) -> dict[str, Any]:
    """The audit fields of a streaming command's final summary: reason, messages and limits."""
    doc = inv.command.to_json(summary, inv)
    if not isinstance(doc, Mapping) or doc.get("event") != "stopped":
        return {}
    fields: dict[str, Any] = {"reason": doc.get("reason"), "messages": doc.get("count")}
    if doc.get("detail") is not None:
        fields["detail"] = doc["detail"]  # why beyond the reason (a backlog tripped the rate limit)
    limits = getattr(summary, "limits", None)
    if dataclasses.is_dataclass(limits) and not isinstance(limits, type):
        fields["limits"] = dataclasses.asdict(limits)
    return fields


def _print(output: Output, text: str) -> None:
    if text:
        output.out(safe_text(text.rstrip("\n")) + "\n")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
