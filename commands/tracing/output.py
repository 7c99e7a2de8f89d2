"""What ``trace`` prints: recon-style lines, SPEC's JSON lines, the status and stop lines.

A call prints as recon prints it, ``13:14:34.086078 <0.44.0> queue:in(a, {[],[]})``,
and a return (``--return``) as ``13:14:34.086100 <0.44.0> queue:in/2 --> {[a],[]}``;
Elixir modules in Elixir form (``MyApp.Worker.handle_call(...)``). Times
are the trace timestamps taken on the node, shown in UTC. Everything that
came from the node was formatted there with depth and size bounds and is
sanitized here (:func:`commands.format.sanitize`) before it reaches a
terminal.

Errors from the target (``throw({beamgate, Kind, Detail})`` in the snippet,
or ``{failed, Kind, Detail}`` from the relay) are phrased by
:func:`failure_message`, one line each.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gateway.dist.terms import Atom

from ..format import sanitize
from ..refs import format_mfa
from .plan import MAX_BACKLOG, Limits
from .relay import TraceEvent, mfa_head


@dataclass(frozen=True)
class TraceStarted:
    """The status line: what is traced where, and the limits in force."""

    node: str
    specs: str
    matched: int
    procs: str
    limits: Limits
    sessions: bool
    pattern: str | None = None


@dataclass(frozen=True)
class TraceStatus:
    """A reminder during a quiet trace: messages seen so far and what is left."""

    count: int
    limits: Limits
    seconds_left: int


@dataclass(frozen=True)
class TraceStopped:
    """The final summary: why the trace stopped and how many messages were seen."""

    reason: str
    count: int
    limits: Limits
    node: str
    detail: str = ""


def timestamp(ts_us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_us / 1_000_000, tz=dt.UTC)


def event_line(event: TraceEvent) -> str:
    clock = timestamp(event.ts_us).strftime("%H:%M:%S.%f")
    if event.kind == "call":
        return f"{clock} {event.pid} {mfa_head(event.module, event.function)}({event.args or ''})"
    return f"{clock} {event.pid} {event.mfa} --> {event.result}"


def event_json(event: TraceEvent) -> dict[str, Any]:
    """SPEC's JSON shape of one trace message."""
    return {
        "ts": timestamp(event.ts_us).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "pid": event.pid,
        "kind": event.kind,
        "mfa": event.mfa,
        "args": event.args,
        "result": event.result,
    }


def started_line(s: TraceStarted) -> str:
    functions = "1 function" if s.matched == 1 else f"{s.matched} functions"
    where = f"in {s.procs}" + (f" with arguments matching {sanitize(s.pattern)}" if s.pattern else "")
    legacy = "" if s.sessions else " (OTP < 27: one beamgate trace per node at a time)"
    return f"tracing {s.specs} ({functions}) {where} on {s.node}: {s.limits.describe()}{legacy}; Ctrl-C stops"


def status_line(s: TraceStatus) -> str:
    seen = "1 message" if s.count == 1 else f"{s.count} messages"
    return f"still tracing: {seen} so far, stops within {s.seconds_left}s ({s.limits.describe()}); Ctrl-C stops"


def stop_reason_text(s: TraceStopped) -> str:
    lim = s.limits
    if s.reason == "rate" and s.detail == "backlog":
        return (
            f"rate limit tripped: trace messages came faster than the node could relay them "
            f"(more than {MAX_BACKLOG} waiting)"
        )
    texts = {
        "limit": f"message limit of {lim.messages} reached",
        "rate": f"rate limit tripped: more than {lim.rate} messages within {lim.per_seconds}s",
        "duration": f"time limit of {lim.seconds}s reached",
        "interrupted": "interrupted",
        "node_down": f"lost {s.node} (node down or connection lost); the node removes the trace itself",
        "crashed": f"the trace relay on {s.node} stopped unexpectedly ({s.detail}); its trace was removed",
    }
    return texts.get(s.reason, s.reason)


def stopped_line(s: TraceStopped) -> str:
    seen = "1 message" if s.count == 1 else f"{s.count} messages"
    return f"trace stopped after {seen}: {stop_reason_text(s)}"


def stopped_json(s: TraceStopped) -> dict[str, Any]:
    """SPEC's ``stopped`` event, plus ``detail`` when there is one (``backlog``, a crash reason)."""
    return {"event": "stopped", "reason": s.reason, "count": s.count} | ({"detail": s.detail} if s.detail else {})


# -- failures -------------------------------------------------------------------------


def _b(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return sanitize(bytes(value).decode("utf-8", "replace"))
    return sanitize(str(value))


def _spec_text(detail: Any) -> str:
    if isinstance(detail, tuple) and len(detail) == 3:
        module, function, arity = detail
        return format_mfa(
            _b(module),
            None if function == Atom("_") else _b(function),
            None if arity == Atom("_") else int(arity),
        )
    return _b(detail)


def _seconds(ms: Any) -> str:
    return f"{int(ms) // 1000}s" if isinstance(ms, int) else "?"


def failure_message(kind: str, detail: Any, node: str) -> str | None:
    """One line for a failure the snippet or relay reported, or ``None`` if ``kind`` is not ours."""
    if kind == "no_such_module":
        spec = _spec_text(detail)
        module = _b(detail[0]) if isinstance(detail, tuple) else spec
        if isinstance(detail, tuple) and detail[1] != Atom("_"):
            return f"no such function {spec} on {node} (no module {format_mfa(module)})"
        return f"no such module {format_mfa(module)} on {node}"
    if kind == "module_not_loaded":
        module = _b(detail[0]) if isinstance(detail, tuple) else _b(detail)
        return (
            f"module {format_mfa(module)} is not loaded on {node} (nothing has used it yet); "
            "beamgate never loads code on a node"
        )
    if kind == "no_such_function":
        return f"no such function {_spec_text(detail)} on {node}"
    if kind == "not_exported":
        return f"{_spec_text(detail)} is not exported on {node}: add --local to trace calls made inside its module"
    if kind == "no_such_process":
        return f"no such process {_b(detail)} on {node}"
    if kind == "remote_process":
        name, where = detail if isinstance(detail, tuple) and len(detail) == 2 else (detail, "another node")
        return f"global:{_b(name)} runs on {_b(where)}, not {node}: run the trace there with --node"
    if kind == "no_such_atom":
        return (
            f"--match names the atom {_b(detail)}, which does not exist on {node}: "
            "no call can match it (beamgate never creates atoms on a node)"
        )
    if kind == "busy":
        user, age, left = detail if isinstance(detail, tuple) and len(detail) == 3 else ("another session", 0, 0)
        return (
            f"{node} already runs a beamgate trace, started by {_b(user)} {_seconds(age)} ago "
            f"(it stops within {_seconds(left)}): before OTP 27 the node has a single tracer, so traces "
            "cannot overlap; wait for it to stop, or ask its owner to press Ctrl-C"
        )
    if kind == "setup":
        return (
            f"could not set up the trace on {node}: {_b(detail)} (before OTP 27 a process has one tracer: "
            "is dbg or recon tracing it?)"
        )
    if kind == "no_match":
        return f"no function on {node} matches the trace specification"
    return None
