"""What a ``trace`` costs the node, and the gateway. Run: ``python3 bench/trace.py``.

For each runtime (OTP 25, legacy tracer; OTP 28, trace sessions) a fresh
node runs ``bench/bg_bench_hot.erl``: a loader calling ``hot/1`` about
100,000 times per second (paced, 100 calls every millisecond) and a sampler
recording its call count every 10 ms. Measured side by side in one run:

1. untraced throughput (the baseline);
2. throughput while ``trace bg_bench_hot:hot/1 --rate 100/1 --match '[0]'``
   runs (every call is checked against the match spec; 50 calls a second
   match and are streamed), and the loader's busy time per call;
3. the trip: every call made to match, the rate limit trips on the node;
   time from the trip (the last event's timestamp) to the first 50 ms window
   back at >= 95 % of baseline, and the throughput after the trip;
4. gateway CPU (this process) while streaming about 100 lines per second
   (each line rendered as the session would print it).

Figures are printed as ratios against the baseline of the same run.
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from commands.tracing.relay import TraceEvent
from gateway.config import SafetyConfig, TraceLimits
from tests.support.erlang import ErlangNode, Runtime, compile_erlang, runtimes
from tests.support.trace_harness import Gateway

BENCH = Path(__file__).resolve().parent
RATE = 100_000
SAFETY = SafetyConfig(trace_defaults=TraceLimits(max_messages=100_000, max_rate=1_000, max_seconds=120))


def rate_between(samples: list[tuple[int, int, int]], t0: float, t1: float) -> tuple[float, float]:
    """Calls per second and busy microseconds per 1000 calls between two times (µs)."""
    inside = [s for s in samples if t0 <= s[0] <= t1]
    if len(inside) < 2:
        return 0.0, 0.0
    (ta, ca, ba), (tb, cb, bb) = inside[0], inside[-1]
    calls = cb - ca
    return calls / ((tb - ta) / 1e6), (bb - ba) / calls * 1000 if calls else 0.0


def recovery_ms(samples: list[tuple[int, int, int]], trip_us: float, baseline: float) -> float | None:
    """Milliseconds from the trip to the end of the first 50 ms window at >= 95 % of baseline."""
    after = [s for s in samples if s[0] >= trip_us]
    for i, start in enumerate(after):
        for end in after[i + 1 :]:
            if end[0] - start[0] >= 50_000:
                if (end[1] - start[1]) / ((end[0] - start[0]) / 1e6) >= 0.95 * baseline:
                    return (end[0] - trip_us) / 1000
                break
    return None


async def measure(node: ErlangNode) -> dict[str, Any]:
    gw = Gateway(node, SAFETY)
    remote = gw.remote
    await remote.call("bg_bench_hot", "start", [RATE, 2000])
    now_us = lambda: time.time() * 1e6  # noqa: E731  (the node runs on this host: same clock)

    await asyncio.sleep(1.0)
    base_t0 = now_us()
    await asyncio.sleep(2.0)
    base_t1 = now_us()

    # 2. a --rate 100/1 trace running: 50 matching calls a second
    run = gw.trace("trace bg_bench_hot:hot/1 --rate 100/1 --match '[0]' --for 60 --limit 100000")
    task = run.start()
    await run.wait_for(5)
    traced_t0 = now_us()
    await asyncio.sleep(2.0)
    traced_t1 = now_us()

    # 3. trip it: every call matches
    await remote.call("bg_bench_hot", "set_cycle", [1])
    stopped = await asyncio.wait_for(task, 10)
    await remote.call("bg_bench_hot", "set_cycle", [2000])
    events = run.trace_events()
    trip_us = events[-1].ts_us
    await asyncio.sleep(3.0)

    # 4. gateway CPU while streaming about 100 lines a second
    await remote.call("bg_bench_hot", "set_cycle", [1000])
    stream = gw.trace("trace bg_bench_hot:hot/1 --rate 1000/1 --match '[0]' --for 5 --limit 100000")
    sink = io.StringIO()
    cmd = stream.inv.command

    async def print_line(event: Any) -> None:
        sink.write(cmd.render(event, stream.inv) + "\n")
        await stream.emit(event)

    stream.ctx.emit = print_line
    stream_task = stream.start()
    await stream.wait_for(20)
    lines0, cpu0, wall0 = len(stream.trace_events()), time.process_time(), time.monotonic()
    await asyncio.sleep(3.0)
    lines1, cpu1, wall1 = len(stream.trace_events()), time.process_time(), time.monotonic()
    await stream_task

    samples = [tuple(s) for s in await remote.call("bg_bench_hot", "samples", [], timeout=10)]
    await remote.call("bg_bench_hot", "stop", [])
    gw.close()

    baseline, base_cost = rate_between(samples, base_t0, base_t1)  # type: ignore[arg-type]
    traced, traced_cost = rate_between(samples, traced_t0, traced_t1)  # type: ignore[arg-type]
    after, after_cost = rate_between(samples, trip_us + 1e6, trip_us + 3e6)  # type: ignore[arg-type]
    lines = lines1 - lines0
    cpu = cpu1 - cpu0
    return {
        "stopped": stopped.reason,
        "baseline": baseline,
        "traced": traced,
        "after": after,
        "base_cost": base_cost,
        "traced_cost": traced_cost,
        "after_cost": after_cost,
        "recovery_ms": recovery_ms(samples, trip_us, baseline),  # type: ignore[arg-type]
        "events_before_trip": sum(1 for e in events if isinstance(e, TraceEvent)),
        "lines_per_s": lines / (wall1 - wall0),
        "gateway_cpu": cpu / (wall1 - wall0),
        "cpu_us_per_line": cpu / lines * 1e6 if lines else 0.0,
    }


def report(runtime: Runtime, r: dict[str, Any]) -> None:
    rec = r["recovery_ms"]
    print(f"== {runtime.name} ==")
    print(f"untraced hot/1 calls/s                 {r['baseline']:>12,.0f}   (1.00)")
    print(f"while --rate 100/1 --match runs        {r['traced']:>12,.0f}   ({r['traced'] / r['baseline']:.3f})")
    print(f"after it tripped ({r['stopped']})            {r['after']:>12,.0f}   ({r['after'] / r['baseline']:.3f})")
    print(
        f"loader busy us per 1000 calls          untraced {r['base_cost']:.0f}, traced {r['traced_cost']:.0f} "
        f"({r['traced_cost'] / r['base_cost']:.2f}x), after trip {r['after_cost']:.0f} "
        f"({r['after_cost'] / r['base_cost']:.2f}x)"
    )
    verdict = "n/a" if rec is None else ("ok" if rec <= 1000 else "SLOW")
    print(f"trip -> >=95% of baseline               {'never' if rec is None else f'{rec:.0f} ms'} ({verdict})")
    print(
        f"gateway CPU while streaming            {r['gateway_cpu'] * 100:.1f}% of one core at "
        f"{r['lines_per_s']:.0f} lines/s ({r['cpu_us_per_line']:.0f} us per line)"
    )


def main() -> None:
    compile_erlang(BENCH / "bg_bench_hot.erl", outdir=BENCH)
    for runtime in runtimes():
        with tempfile.TemporaryDirectory() as tmp:
            node = ErlangNode(runtime, Path(tmp), extra_code_paths=[BENCH]).start()
            try:
                report(runtime, asyncio.run(measure(node)))
            finally:
                node.stop()


if __name__ == "__main__":
    main()
