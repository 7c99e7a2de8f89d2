"""Benchmark: ``proc_count`` and ``proc_window`` against the physical limit, at 10k / 100k / 1M processes.

    python3 bench/commands.py [--runtimes otp25,otp28] [--sizes 10000,100000,1000000] [--repeat 3]

The physical limit is one compiled pass of ``erlang:process_info(P, memory)``
over every process (``bench/bench_procs.erl``, compiled here with erlc and
loaded on the bench node only). Against it, side by side on the same node in
the same run:

* ``proc_count memory 10`` end to end through the command layer: parse,
  bounded evaluation on the node (a fresh worker, erl_eval of the snippet),
  decoding and rendering. Target: at most 1.6x the pass.
* ``proc_window reductions 10 1000``. Target: at most 2x the ``proc_count``
  time plus the 1 s window.
* the worker's peak heap for each, from the node's own GC trace events
  (young + old heap blocks + fragments at each collection: what
  ``max_heap_size`` is checked against), next to the default budget.
* on OTP 28, one walk of ``erlang:processes_iterator/0`` driven by erl_eval,
  which is why the commands do not use it.

Each figure is the best of ``--repeat`` interleaved runs (after one warm-up
run that also parses the snippets on the node): on a shared machine the
minimum is the run least disturbed by others, for the pass and the commands
alike. Read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.config import SafetyConfig  # noqa: E402
from tests.support.erlang import ErlangNode, Runtime, compile_erlang, runtimes  # noqa: E402
from tests.support.harness import Harness, harness_for  # noqa: E402

DEFAULT_BUDGET = SafetyConfig().max_heap
#: Generous bounds so that the benchmark measures instead of tripping them.
BENCH_SAFETY = SafetyConfig(max_heap=4 * 1024**3, eval_timeout=600.0, max_reply=16 * 1024 * 1024)
WINDOW_MS = 1000


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def peak_heap(node: ErlangNode, h: Harness, line: str) -> int:
    node.eval("bench_procs:watch().")
    h.run(line)
    return node.eval_int("bench_procs:peak().")


@dataclass
class Row:
    runtime: str
    processes: int
    pass_s: float
    count_s: float
    window_s: float
    count_peak: int
    window_peak: int
    iterator_s: float | None

    @property
    def count_ratio(self) -> float:
        return self.count_s / self.pass_s

    @property
    def window_ratio(self) -> float:
        """proc_window over its budget, 2 x proc_count + the window (target <= 1)."""
        return self.window_s / (2 * self.count_s + WINDOW_MS / 1000)

    def line(self) -> str:
        iterator = "-" if self.iterator_s is None else f"{self.iterator_s / self.pass_s:.2f}x"
        return (
            f"{self.runtime:<8} {self.processes:>10,} {self.pass_s:>7.3f}s {self.count_s:>9.3f}s "
            f"{self.count_ratio:>5.2f}x {self.window_s:>10.3f}s {self.window_ratio:>5.2f}x "
            f"{mib(self.count_peak):>11} {mib(self.window_peak):>12} {iterator:>9}"
        )


HEADER = (
    f"{'runtime':<8} {'processes':>10} {'pass':>8} {'proc_count':>10} {'ratio':>6} {'proc_window':>11} "
    f"{'ratio':>6} {'count peak':>11} {'window peak':>12} {'iterator':>9}"
)


def mib(n: int) -> str:
    return f"{n / 1024**2:.1f} MiB"


def measure(runtime: Runtime, sizes: list[int], repeat: int, workdir: Path) -> list[Row]:
    beams = compile_erlang(ROOT / "bench" / "bench_procs.erl", outdir=workdir / "beams")
    node = ErlangNode(runtime, workdir, extra_args=["+P", str(4 * max(sizes))], extra_code_paths=[beams]).start()
    h = harness_for(node, safety=BENCH_SAFETY)
    rows = []
    try:
        for size in sizes:
            count = node.eval_int(f"bench_procs:spawn_idle({size}).")
            node.eval("erlang:garbage_collect(), ok.")
            count_line = "proc_count memory 10"
            window_line = f"proc_window reductions 10 {WINDOW_MS}"
            h.run(count_line)  # warm-up: parse the snippets on the node
            h.run(window_line)
            passes, counts, windows = [], [], []
            for _ in range(repeat):  # interleaved, so that drift in the machine's load hits all three alike
                passes.append(node.eval_int("bench_procs:pass().") / 1e6)
                counts.append(seconds(partial(h.run, count_line)))
                windows.append(seconds(partial(h.run, window_line)))
            iterator_us = node.eval_int("bench_procs:iterator_walk().")
            row = Row(
                runtime=runtime.name,
                processes=count,
                pass_s=min(passes),
                count_s=min(counts),
                window_s=min(windows),
                count_peak=peak_heap(node, h, count_line),
                window_peak=peak_heap(node, h, window_line),
                iterator_s=iterator_us / 1e6 if iterator_us >= 0 else None,
            )
            rows.append(row)
            print(row.line(), flush=True)
    finally:
        h.close()
        node.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default="otp25,otp28")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    wanted = args.runtimes.split(",")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    chosen = [r for r in runtimes() if r.name in wanted]
    print(
        "pass = one compiled process_info(P, memory) over all processes; proc_count ratio = proc_count / pass "
        "(target <= 1.6); proc_window ratio = proc_window / (2 x proc_count + 1 s window) (target <= 1.0, "
        f"i.e. <= 2x proc_count + window); peaks vs the default budget of {mib(DEFAULT_BUDGET)}; "
        "iterator = erl_eval walk of processes_iterator / pass"
    )
    print(HEADER, flush=True)
    rows = []
    for runtime in chosen:
        with tempfile.TemporaryDirectory(prefix=f"bench-{runtime.name}-") as tmp:
            rows += measure(runtime, sizes, args.repeat, Path(tmp))
    worst_count = max(r.count_ratio for r in rows)
    worst_window = max(r.window_ratio for r in rows)
    print(
        f"\nworst proc_count ratio {worst_count:.2f}x (target 1.6x); "
        f"worst proc_window ratio {worst_window:.2f} (target 1.0)"
    )
    return 0 if worst_count <= 1.6 and worst_window <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
