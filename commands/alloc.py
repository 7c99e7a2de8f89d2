"""``alloc WHAT [ARG...]``: recon_alloc's views of the memory allocators.

The node sends the carrier and block figures of recon's nine alloc_util
allocators (``options`` and ``calls`` left out) and mseg_alloc's cache
figures; :mod:`commands.allocators` computes what recon_alloc would. Text
output is humanised (KiB, MiB, percentages); ``--json`` gives bytes and
ratios as numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.dist.rpc import Snippet
from gateway.dist.terms import Atom

from . import allocators
from .context import Context
from .format import human_bytes, human_count, key_values, table
from .grammar import UsageError
from .remote import evaluate
from .spec import Command, Invocation, Param

ALLOC = Snippet(
    "alloc",
    """
    Sections = [mbcs, sbcs, mbcs_pool],
    Trim = fun(Props) -> [P || P <- Props, is_tuple(P), lists:member(element(1, P), Sections)] end,
    Allocs = [{A, [{N, Trim(Props)} || {instance, N, Props} <- Instances]}
              || A <- Util, Instances <- [erlang:system_info({allocator, A})], is_list(Instances)],
    Mseg = case erlang:system_info({allocator, mseg_alloc}) of
               MsegInstances when is_list(MsegInstances) ->
                   [{N, proplists:get_value(memkind, Props)} || {instance, N, Props} <- MsegInstances];
               _ -> []
           end,
    {Allocs, Mseg}.
    """,
    ("Util",),
)

MEMORY_KINDS = ("used", "allocated", "unused", "usage", "allocated_types", "allocated_instances")
PEAKS = ("current", "max")
WHATS = ("memory", "fragmentation", "cache_hit_rates", "average_block_sizes", "sbcs_to_mbcs")

NOTES = """Forms:
  alloc memory [used|allocated|unused|usage|allocated_types|allocated_instances] [current|max]
  alloc fragmentation [current|max]
  alloc cache_hit_rates
  alloc average_block_sizes [current|max]
  alloc sbcs_to_mbcs [current|max]
current (default) is now, max is the peak since the node started.
memory: used = bytes in blocks, allocated = bytes in carriers obtained from the OS (compare with the
OS's figure), unused = allocated - used, usage = used / allocated (low usage: fragmentation).
Allocators: temp, eheap (process heaps), binary, ets, driver, sl (short-lived), ll (long-lived: code),
fix (fixed sizes), std (the rest); instance 0 serves non-scheduler threads, 1..N the schedulers."""


def _arguments(inv: Invocation) -> tuple[str, str | None, str]:
    """(what, memory kind or None, current|max), checked against the forms above."""
    what, args = inv.args["what"], list(inv.args.get("arg") or [])
    kind = None
    if what == "memory" and args and args[0] in MEMORY_KINDS:
        kind = args.pop(0)
    peak = "current"
    if what != "cache_hit_rates" and args and args[0] in PEAKS:
        peak = args.pop(0)
    if args:
        raise UsageError(f"alloc {what}: unexpected {args[0]!r}; usage: {_form(what)}", inv.command)
    return what, kind, peak


def _form(what: str) -> str:
    return next(line.strip() for line in NOTES.splitlines() if line.strip().startswith(f"alloc {what}"))


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    what, kind, peak = _arguments(inv)
    raw_allocs, mseg = await evaluate(ctx, ALLOC, {"Util": [Atom(a) for a in allocators.UTIL_ALLOCATORS]})
    instances = allocators.parse(raw_allocs)
    out: dict[str, Any] = {"node": ctx.need_target().name, "what": what, "peak": peak}
    if what == "memory":
        kinds = [kind] if kind else ["used", "allocated", "unused", "usage"]
        out["memory"] = {k: allocators.memory(instances, k, peak) for k in kinds}
    elif what == "fragmentation":
        out["rows"] = allocators.fragmentation(instances, peak)
    elif what == "cache_hit_rates":
        out["rows"] = allocators.cache_hit_rates(mseg)
    elif what == "average_block_sizes":
        out["rows"] = allocators.average_block_sizes(instances, peak)
    else:
        out["rows"] = allocators.sbcs_to_mbcs(instances, peak)
    return out


def to_json(result: dict[str, Any], inv: Invocation) -> Any:
    return result["memory"] if result["what"] == "memory" else result["rows"]


def _pct(ratio: float) -> str:
    return f"{100 * ratio:.1f}%"


def render(result: dict[str, Any], inv: Invocation) -> str:
    what, peak = result["what"], result["peak"]
    head = (
        f"alloc {what} ({peak}) on {result['node']}"
        if what != "cache_hit_rates"
        else f"mseg_alloc cache on {result['node']}"
    )
    if what == "memory":
        return head + "\n" + _render_memory(result["memory"])
    rows: Sequence[dict[str, Any]] = result["rows"]
    if what == "fragmentation":
        body = table(
            [
                "ALLOCATOR",
                "INST",
                "SBCS USAGE",
                "SBCS BLOCKS",
                "SBCS CARRIERS",
                "MBCS USAGE",
                "MBCS BLOCKS",
                "MBCS CARRIERS",
            ],
            [
                [
                    r["allocator"],
                    r["instance"],
                    _pct(r["sbcs_usage"]),
                    human_bytes(r["sbcs_block_size"]),
                    human_bytes(r["sbcs_carriers_size"]),
                    _pct(r["mbcs_usage"]),
                    human_bytes(r["mbcs_block_size"]),
                    human_bytes(r["mbcs_carriers_size"]),
                ]
                for r in rows
            ],
            right=range(1, 8),
        )
    elif what == "cache_hit_rates":
        body = table(
            ["INSTANCE", "HIT RATE", "HITS", "CALLS"],
            [[r["instance"], _pct(r["hit_rate"]), human_count(r["hits"]), human_count(r["calls"])] for r in rows],
            right=range(4),
        )
    elif what == "average_block_sizes":
        body = table(
            ["ALLOCATOR", "MBCS AVG BLOCK", "SBCS AVG BLOCK"],
            [[r["allocator"], human_bytes(r["mbcs"]), human_bytes(r["sbcs"])] for r in rows],
            right=(1, 2),
        )
    else:
        body = table(
            ["ALLOCATOR", "INSTANCE", "SBCS/MBCS"],
            [
                [r["allocator"], r["instance"], r["ratio"] if isinstance(r["ratio"], str) else f"{r['ratio']:.3f}"]
                for r in rows
            ],
            right=(1, 2),
        )
    return head + "\n" + body


def _render_memory(memory: dict[str, Any]) -> str:
    pairs: list[tuple[str, Any]] = []
    for kind, value in memory.items():
        if kind == "usage":
            pairs.append((kind, _pct(value)))
        elif kind == "allocated_types":
            pairs += [(r["allocator"], human_bytes(r["bytes"])) for r in value]
        elif kind == "allocated_instances":
            pairs += [(f"instance {r['instance']}", human_bytes(r["bytes"])) for r in value]
        else:
            pairs.append((kind, human_bytes(value)))
    return key_values(pairs)


COMMAND = Command(
    name="alloc",
    summary="memory allocators: used vs allocated, fragmentation, carrier and cache statistics",
    shows=(
        "recon_alloc's views of ERTS's memory allocators: memory used by data versus allocated from the OS, "
        "per allocator or scheduler instance; fragmentation (block bytes over carrier bytes); mseg_alloc "
        "cache hit rates; average block sizes; single-block versus multiblock carrier counts."
    ),
    when=(
        "The OS reports much more memory than erlang:memory(total): alloc memory allocated should match the "
        "OS; low usage means fragmentation; then alloc memory allocated_types for the allocator at fault and "
        "alloc fragmentation current vs max to see whether a past peak left carriers behind."
    ),
    cost=(
        "erlang:system_info({allocator, A}) for ten allocators (every scheduler reports its own instances): "
        "milliseconds, and a reply of a few KiB per scheduler."
    ),
    params=(
        Param("WHAT", "choice", "which view", choices=WHATS),
        Param(
            "ARG",
            "choice",
            "what to report and current|max",
            choices=(*MEMORY_KINDS, *PEAKS),
            required=False,
            many=True,
        ),
    ),
    run=run,
    render=render,
    to_json=to_json,
    fanout=True,
    notes=NOTES,
    examples=(
        "alloc memory",
        "alloc memory allocated_types",
        "alloc fragmentation max",
        "alloc cache_hit_rates --json",
    ),
)
