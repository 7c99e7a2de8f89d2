"""What a ``trace`` invocation asks for, checked on the gateway before anything is sent.

:func:`make_plan` turns a parsed :class:`~commands.spec.Invocation` into a
:class:`TracePlan`: the function specs, the argument pattern, the process
scope, and the three limits that always apply (SPEC safety rule 6).

Limits. Each of the message limit, the rate limit and the duration comes
from the invocation (the policy engine has already lowered it to the role's
cap, if the role has one) or, when the user gave none, from
``safety.trace_defaults``; every value is then capped again by the role's
caps when the policy publishes them, else by ``safety.trace_defaults``:
without a role cap nothing may exceed the safety defaults.

Dangerous combinations are refused here, in the spirit of recon_trace
(which refuses every module, and ``io`` and ``lists`` without an argument
pattern): every module (``'_'``), and every function of ``erlang``,
``lists``, ``io`` or ``ets`` unless a single process or an argument pattern
that constrains some argument narrows it (``[_, _]`` does not). A trace of
such a module would fire for nearly every process on the node. Unlike
recon_trace, one named function of these modules is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config import TraceLimits
from gateway.dist.terms import Atom, Pid

from ..grammar import UsageError
from ..refs import FunSpec, GlobalRef, NameRef, PidRef, ProcRef, RefError, parse_proc
from .pattern import WILDCARD, ArgPattern, PatternError, parse_pattern

#: Modules whose every function is called so often that tracing all of them is refused.
BUSY_MODULES = frozenset({"erlang", "lists", "io", "ets"})
MAX_SPECS = 16
PROCESS_SETS = ("all", "new", "existing")

#: Bounds of what crosses the network per trace message (formatted on the target).
ARG_DEPTH = 20
MAX_CHARS = 1000
#: Trace messages that may wait in the relay's mailbox on the node (off its heap, so
#: outside ``max_heap_size``); past this many the trace stops with reason ``rate``
#: (detail ``backlog``): they are produced faster than the relay can format and send them.
MAX_BACKLOG = 2000


@dataclass(frozen=True)
class Limits:
    """The limits in force: ``messages`` in total, ``rate`` per ``per_seconds``, ``seconds`` at most."""

    messages: int
    rate: int
    per_seconds: int
    seconds: int

    def describe(self) -> str:
        return f"at most {self.messages} messages, {self.rate} per {self.per_seconds}s, for {self.seconds}s"


@dataclass(frozen=True)
class TracePlan:
    specs: tuple[FunSpec, ...]
    pattern: ArgPattern | None
    return_values: bool
    local: bool
    #: ``"all"``, ``"new"``, ``"existing"``, or one process.
    procs: str | ProcRef
    limits: Limits

    @property
    def single_process(self) -> bool:
        return not isinstance(self.procs, str)

    def describe_specs(self) -> str:
        return ", ".join(str(s) for s in self.specs)

    def describe_procs(self) -> str:
        if isinstance(self.procs, str):
            return {"all": "all processes", "new": "new processes", "existing": "existing processes"}[self.procs]
        return f"process {self.procs}"

    def bindings(self, owner: Pid, user: str, heap_words: int) -> dict[str, Any]:
        """Values for :data:`commands.tracing.relay.TRACE_START` (data only, no code)."""
        return {
            "Specs": [_spec_term(s) for s in self.specs],
            "Pattern": self.pattern.tree if self.pattern is not None else WILDCARD,
            "Return": self.return_values,
            "Scope": Atom("local" if self.local else "global"),
            "Procs": _procs_term(self.procs),
            "Owner": owner,
            "User": user.encode("utf-8"),
            "Limit": self.limits.messages,
            "RateN": self.limits.rate,
            "RateMs": self.limits.per_seconds * 1000,
            "DurationMs": self.limits.seconds * 1000,
            "Depth": ARG_DEPTH,
            "MaxChars": MAX_CHARS,
            "MaxBacklog": MAX_BACKLOG,
            "HeapWords": heap_words,
        }


def make_plan(inv_values: Mapping[str, Any], defaults: TraceLimits, caps: TraceLimits) -> TracePlan:
    """Check the invocation's values and build the plan; raise :class:`UsageError`."""
    specs = tuple(inv_values.get("spec") or ())
    if not specs:
        raise UsageError("trace: missing SPEC")
    if len(specs) > MAX_SPECS:
        raise UsageError(f"trace: at most {MAX_SPECS} function specs in one trace")
    pattern = None
    match_text = inv_values.get("match")
    if match_text is not None:
        try:
            pattern = parse_pattern(match_text)
        except PatternError as exc:
            raise UsageError(f"trace: --match: {exc}") from None
    procs = _parse_procs(inv_values.get("pid"))
    plan = TracePlan(
        specs=tuple(_normalize(s) for s in specs),
        pattern=pattern,
        return_values=bool(inv_values.get("return")),
        local=bool(inv_values.get("local")),
        procs=procs,
        limits=_limits(inv_values, defaults, caps),
    )
    _refuse_dangerous(plan)
    return plan


def _normalize(spec: FunSpec) -> FunSpec:
    # mod:'_' is the whole module, as recon writes it
    return FunSpec(spec.module) if spec.function == "_" else spec


def _parse_procs(text: str | None) -> str | ProcRef:
    if text is None or text in PROCESS_SETS:
        return text or "all"
    try:
        ref = parse_proc(text)
    except RefError as exc:
        raise UsageError(f"trace: --pid: {exc}; or use all, new or existing") from None
    if isinstance(ref, PidRef) and ref.node_index != 0:
        raise UsageError(f"trace: --pid {ref} is on another node: run the trace there with --node and <0.N.S>")
    return ref


def _limits(values: Mapping[str, Any], defaults: TraceLimits, caps: TraceLimits) -> Limits:
    messages = min(values.get("limit") or defaults.max_messages, caps.max_messages)
    rate_value = values.get("rate")
    rate, per = rate_value if rate_value is not None else (defaults.max_rate, 1)
    per = min(per, max(int(caps.max_seconds), 1))
    rate = min(rate, caps.max_rate * per)
    seconds = min(values.get("for") or int(defaults.max_seconds), int(caps.max_seconds))
    return Limits(messages=max(messages, 1), rate=max(rate, 1), per_seconds=max(per, 1), seconds=max(seconds, 1))


def _refuse_dangerous(plan: TracePlan) -> None:
    arity = plan.pattern.arity if plan.pattern is not None else None
    narrowed = (plan.pattern is not None and plan.pattern.constrains) or plan.single_process
    for spec in plan.specs:
        if spec.module == "_":
            raise UsageError("trace: refusing to trace across every module ('_'): it is dangerous on a live node")
        if spec.function is None and spec.module in BUSY_MODULES and not narrowed:
            raise UsageError(
                f"trace: refusing to trace every function of {spec.module} in every process: it would fire for "
                "nearly every process on the node; name a function, or narrow with --pid PROC or a --match that "
                "constrains an argument"
            )
        if arity is not None and spec.arity is not None and spec.arity != arity:
            raise UsageError(f"trace: --match has {arity} arguments but {spec} takes {spec.arity}")


def _spec_term(spec: FunSpec) -> tuple[bytes, Any, Any]:
    return (
        spec.module.encode("utf-8"),
        spec.function.encode("utf-8") if spec.function is not None else WILDCARD,
        spec.arity if spec.arity is not None else WILDCARD,
    )


def _procs_term(procs: str | ProcRef) -> Any:
    if isinstance(procs, str):
        return Atom(procs)
    if isinstance(procs, PidRef):
        return (Atom("pid"), procs.number, procs.serial)
    if isinstance(procs, NameRef):
        return (Atom("name"), procs.name.encode("utf-8"))
    if isinstance(procs, GlobalRef):
        return (Atom("global"), procs.name.encode("utf-8"))
    raise TypeError(procs)  # pragma: no cover
