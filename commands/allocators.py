"""recon_alloc's arithmetic over ``erlang:system_info({allocator, A})``, as pure functions.

The node sends the ``mbcs``, ``sbcs`` and ``mbcs_pool`` sections of every
instance of recon's nine alloc_util allocators (and ``mseg_alloc``'s
``memkind``); everything else is computed here, where it can be unit-tested.

Facts carried over from recon_alloc (all sizes in bytes):

* ``current`` reads the first value of a ``{Key, Current, LastMax, Max}``
  figure, ``max`` the last; for ``mbcs`` the ``current`` value includes the
  instance's ``mbcs_pool`` (carriers abandoned by one instance and free for
  another of the same type), which only has current values.
* ``used`` sums block sizes, ``allocated`` sums carrier sizes (single-block
  and multiblock), ``unused = allocated - used``, ``usage = used/allocated``;
  ``allocated_types`` groups ``allocated`` by allocator, ``allocated_instances``
  by instance (0 is the global instance used by non-scheduler threads).
* ``usage(Blocks, Carriers)`` is ``Blocks/Carriers`` and 1.0 for an empty
  carrier, so empty allocators never look fragmented.
* fragmentation is ranked by ``(1 - sbcs_usage) * sbcs_carriers_size +
  (1 - mbcs_usage) * mbcs_carriers_size``: unused bytes, biggest first.
* cache hit rates rank ``(1 - hit_rate) * calls``, worst first.

Since OTP 23 a section lists its blocks per allocation type
(``{blocks, [{Type, [{count, C, L, M}, {size, S, L, M}]}]}``) instead of
``blocks`` and ``blocks_size`` figures; both forms are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: recon's alloc_util allocators (sys_alloc and mseg_alloc serve them; literal and exec are left out).
UTIL_ALLOCATORS = (
    "temp_alloc",
    "eheap_alloc",
    "binary_alloc",
    "ets_alloc",
    "driver_alloc",
    "sl_alloc",
    "ll_alloc",
    "fix_alloc",
    "std_alloc",
)
FIGURES = ("blocks", "blocks_size", "carriers", "carriers_size")


@dataclass(frozen=True)
class Instance:
    """One instance of one allocator: ``{figure: (current, max)}`` per section."""

    allocator: str
    number: int
    sbcs: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    mbcs: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    pool: Mapping[str, int] = field(default_factory=dict)

    def value(self, section: str, figure: str, kind: str) -> int:
        """recon_alloc's ``container_value``: ``kind`` is ``current`` or ``max``."""
        figures = self.sbcs if section == "sbcs" else self.mbcs
        current, peak = figures.get(figure, (0, 0))
        if kind == "max":
            return peak
        return current + (self.pool.get(figure, 0) if section == "mbcs" else 0)

    def total(self, figure: str, kind: str) -> int:
        return self.value("sbcs", figure, kind) + self.value("mbcs", figure, kind)


def _section(entries: Any) -> dict[str, tuple[int, int]]:
    """``{figure: (current, max)}`` from one section's list of tuples (either OTP format)."""
    out: dict[str, tuple[int, int]] = {}
    if not isinstance(entries, list):
        return out
    for entry in entries:
        if not (isinstance(entry, tuple) and entry):
            continue
        key = str(entry[0])
        numbers = [n for n in entry[1:] if isinstance(n, int)]
        if key == "blocks" and len(entry) == 2 and isinstance(entry[1], list):
            count, size = (0, 0), (0, 0)
            for per_type in entry[1]:
                stats = {str(s[0]): s[1:] for s in per_type[1] if isinstance(s, tuple) and s}
                count = _add(count, stats.get("count", ()))
                size = _add(size, stats.get("size", ()))
            out["blocks"], out["blocks_size"] = count, size
        elif key in FIGURES and numbers and len(numbers) == len(entry) - 1:
            out[key] = (numbers[0], numbers[-1])
    return out


def _add(acc: tuple[int, int], figure: Sequence[Any]) -> tuple[int, int]:
    numbers = [n for n in figure if isinstance(n, int)]
    if not numbers:
        return acc
    return (acc[0] + numbers[0], acc[1] + numbers[-1])


def parse(raw: Iterable[Any]) -> list[Instance]:
    """``[{Allocator, [{N, [{mbcs, ...}, {sbcs, ...}, {mbcs_pool, ...}]}]}]`` from the node."""
    instances = []
    for allocator, per_instance in raw:
        for number, sections in per_instance:
            by_name = {str(s[0]): s[1] for s in sections if isinstance(s, tuple) and len(s) == 2}
            pool = {k: v[0] for k, v in _section(by_name.get("mbcs_pool")).items()}
            instances.append(
                Instance(str(allocator), number, _section(by_name.get("sbcs")), _section(by_name.get("mbcs")), pool)
            )
    return instances


def usage(blocks: float, carriers: float) -> float:
    """Share of carrier bytes holding blocks; 1.0 for an empty carrier."""
    return 1.0 if carriers == 0 else blocks / carriers


def memory(instances: Sequence[Instance], what: str, kind: str) -> Any:
    """recon_alloc:memory/2."""
    if what == "used":
        return sum(i.total("blocks_size", kind) for i in instances)
    if what == "allocated":
        return sum(i.total("carriers_size", kind) for i in instances)
    if what == "unused":
        return memory(instances, "allocated", kind) - memory(instances, "used", kind)
    if what == "usage":
        return usage(memory(instances, "used", kind), memory(instances, "allocated", kind))
    if what == "allocated_types":
        types: dict[str, int] = {}
        for i in instances:
            types[i.allocator] = types.get(i.allocator, 0) + i.total("carriers_size", kind)
        return [{"allocator": a, "bytes": types[a]} for a in sorted(types)]
    if what == "allocated_instances":
        numbers: dict[int, int] = {}
        for i in instances:
            numbers[i.number] = numbers.get(i.number, 0) + i.total("carriers_size", kind)
        return [{"instance": n, "bytes": numbers[n]} for n in sorted(numbers)]
    raise ValueError(what)


def fragmentation(instances: Sequence[Instance], kind: str) -> list[dict[str, Any]]:
    """recon_alloc:fragmentation/1: per instance, most unused carrier bytes first."""
    weighed = []
    for i in instances:
        sb, sc = i.value("sbcs", "blocks_size", kind), i.value("sbcs", "carriers_size", kind)
        mb, mc = i.value("mbcs", "blocks_size", kind), i.value("mbcs", "carriers_size", kind)
        s_use, m_use = usage(sb, sc), usage(mb, mc)
        weight = (1.0 - s_use) * sc + (1.0 - m_use) * mc
        row = {
            "allocator": i.allocator,
            "instance": i.number,
            "sbcs_usage": s_use,
            "mbcs_usage": m_use,
            "sbcs_block_size": sb,
            "sbcs_carriers_size": sc,
            "mbcs_block_size": mb,
            "mbcs_carriers_size": mc,
        }
        weighed.append(((weight, i.allocator, i.number), row))
    return [row for _, row in sorted(weighed, key=lambda w: w[0], reverse=True)]


def sbcs_to_mbcs(instances: Sequence[Instance], kind: str) -> list[dict[str, Any]]:
    """recon_alloc:sbcs_to_mbcs/1: single-block over multiblock block counts, worst first."""
    rows = []
    for i in instances:
        sbcs, mbcs = i.value("sbcs", "blocks", kind), i.value("mbcs", "blocks", kind)
        ratio: float | str = 0.0 if sbcs == mbcs == 0 else "infinity" if mbcs == 0 else sbcs / mbcs
        rows.append({"allocator": i.allocator, "instance": i.number, "ratio": ratio})
    return sorted(
        rows, key=lambda r: (r["ratio"] == "infinity", _number(r["ratio"]), r["allocator"], r["instance"]), reverse=True
    )


def _number(ratio: Any) -> float:
    return float(ratio) if isinstance(ratio, int | float) else 0.0


def average_block_sizes(instances: Sequence[Instance], kind: str) -> list[dict[str, Any]]:
    """recon_alloc:average_block_sizes/1: mean block size per allocator, sbcs and mbcs."""
    sums: dict[str, dict[str, list[int]]] = {}
    for i in instances:
        per = sums.setdefault(i.allocator, {"sbcs": [0, 0], "mbcs": [0, 0]})
        for section in ("sbcs", "mbcs"):
            per[section][0] += i.value(section, "blocks", kind)
            per[section][1] += i.value(section, "blocks_size", kind)
    return [
        {
            "allocator": allocator,
            **{section: (size / count if count else 0) for section, (count, size) in sums[allocator].items()},
        }
        for allocator in sorted(sums)
    ]


def cache_hit_rates(mseg: Iterable[Any]) -> list[dict[str, Any]]:
    """recon_alloc:cache_hit_rates/0 from ``[{Instance, MemkindProps}]`` of mseg_alloc, worst first."""
    weighed = []
    for number, memkind in mseg:
        props = {str(p[0]): p[1] for p in memkind or [] if isinstance(p, tuple) and len(p) == 2}
        status = {str(s[0]): s[1:] for s in props.get("status", []) if isinstance(s, tuple)}
        calls = {str(c[0]): c[1:] for c in props.get("calls", []) if isinstance(c, tuple)}
        hits = status.get("cache_hits", (0,))[0]
        giga, ones = (*calls.get("mseg_alloc", ()), 0, 0)[:2]
        total = 1_000_000_000 * giga + ones
        rate = usage(hits, total)
        weighed.append(
            (((1.0 - rate) * total, number), {"instance": number, "hit_rate": rate, "hits": hits, "calls": total})
        )
    return [row for _, row in sorted(weighed, key=lambda w: w[0], reverse=True)]
