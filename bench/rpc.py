"""RPC latency and throughput: beamgate's client against Erlang's own rpc:call.

Starts a target node B and a client node A (same runtime, same cookie). In
one run, alternating round by round so both sides see the same machine load:

* Erlang to Erlang: node A runs ``bench_rpc`` (``bench/bench_rpc.erl``,
  compiled here) which times ``rpc:call(B, erlang, node, [])``;
* beamgate to Erlang: :meth:`RemoteNode.call` of the same function on B.

Latency is measured with one call at a time (p50, p99); throughput with
``--concurrency`` calls in flight. Prints the figures and the ratios
ours/Erlang, against the targets of issue 2: p50 <= 2x, throughput >= 0.5x.

A third row is the floor under any asyncio client: a bare round trip of a
100-byte message to a TCP echo running on node B (no codec, no RPC, no rex):
what Python's event loop and the kernel cost before our code does anything.

    python3 bench/rpc.py [--runtime otp25|otp28] [--rounds 3] [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import loop as event_loop  # noqa: E402
from gateway.dist.node import LocalNode  # noqa: E402
from gateway.dist.rpc import RemoteNode, RpcClient  # noqa: E402
from gateway.dist.terms import Atom  # noqa: E402
from gateway.secret import Cookie  # noqa: E402
from tests.support.erlang import ErlangNode, compile_erlang, runtimes, short_host  # noqa: E402


@dataclass
class Figures:
    p50_us: float
    p99_us: float
    calls_per_s: float


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figures(latencies_ns: list[float], calls: int, elapsed_ns: float) -> Figures:
    return Figures(
        percentile(latencies_ns, 0.50) / 1000, percentile(latencies_ns, 0.99) / 1000, calls / (elapsed_ns / 1e9)
    )


def erlang_round(client: ErlangNode, target: ErlangNode, calls: int, concurrency: int, per_worker: int) -> Figures:
    latencies = [
        float(x) for x in client.eval(f"bench_rpc:latency('{target.name}', {calls}).", timeout=300)[1:-1].split(",")
    ]
    elapsed = float(client.eval(f"bench_rpc:throughput('{target.name}', {concurrency}, {per_worker}).", timeout=300))
    return figures(latencies, concurrency * per_worker, elapsed)


async def ours_round(remote: RemoteNode, calls: int, concurrency: int, per_worker: int) -> Figures:
    expected = Atom(remote.name)
    for _ in range(200):
        await remote.call("erlang", "node")
    latencies = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        t0 = clock()
        result = await remote.call("erlang", "node")
        latencies.append(float(clock() - t0))
        assert result == expected

    async def worker() -> None:
        for _ in range(per_worker):
            assert await remote.call("erlang", "node") == expected

    t0 = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return figures(latencies, concurrency * per_worker, clock() - t0)


ECHO = """
{ok, L} = gen_tcp:listen(0, [binary, {active, false}, {nodelay, true}]),
Echo = fun Loop(S) -> case gen_tcp:recv(S, 0) of {ok, D} -> ok = gen_tcp:send(S, D), Loop(S); _ -> ok end end,
spawn(fun Accept() -> {ok, S} = gen_tcp:accept(L), Echo(S), Accept() end),
{ok, P} = inet:port(L),
P.
"""


class _Echo(asyncio.Protocol):
    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


async def floor_round(port: int, calls: int) -> float:
    """p50 in microseconds of a 100-byte round trip to the echo (one outstanding at a time)."""
    loop = asyncio.get_running_loop()
    transport, echo = await loop.create_connection(_Echo, "127.0.0.1", port)
    latencies = []
    try:
        for _ in range(calls + 200):
            t0 = time.perf_counter_ns()
            echo.waiter = loop.create_future()
            transport.write(b"x" * 100)
            await echo.waiter
            latencies.append(float(time.perf_counter_ns() - t0))
    finally:
        transport.close()
    return percentile(latencies[200:], 0.5) / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", default="otp25", help="otp25 (Debian) or otp28 (fixture wheel)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per round (latency)")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight (throughput)")
    parser.add_argument("--per-worker", type=int, default=150, help="calls per in-flight worker")
    args = parser.parse_args()

    runtime = next((r for r in runtimes() if r.name == args.runtime), None)
    if runtime is None:
        print(f"runtime {args.runtime} is not installed (run scripts/setup.sh)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="beamgate-bench-") as tmp:
        work = Path(tmp)
        ebin = compile_erlang(Path(__file__).with_name("bench_rpc.erl"), outdir=work / "ebin")
        target = ErlangNode(runtime, work, name=f"bench_b_{secrets.token_hex(3)}").start()
        client = ErlangNode(runtime, work, name=f"bench_a_{secrets.token_hex(3)}", cookie=target.cookie,
                            extra_code_paths=[ebin]).start()  # fmt: skip
        try:
            echo_port = int(target.eval(ECHO))
            erl, ours, floors = event_loop.run(run_rounds(args, client, target, echo_port))
        finally:
            client.stop()
            target.stop()

    e, o = median_figures(erl), median_figures(ours)
    print(f"{runtime.name}, {args.rounds} rounds (medians), {args.calls} sequential calls, "
          f"{args.concurrency} in flight x {args.per_worker} calls; call: erlang:node(); "
          f"event loop: {event_loop.name()} (BEAMGATE_EVENT_LOOP=asyncio for asyncio's own)")  # fmt: skip
    print(f"{'':28}{'p50 us':>10}{'p99 us':>10}{'calls/s':>12}")
    print(f"{'erlang rpc:call (A -> B)':28}{e.p50_us:10.1f}{e.p99_us:10.1f}{e.calls_per_s:12.0f}")
    print(f"{'beamgate RemoteNode.call':28}{o.p50_us:10.1f}{o.p99_us:10.1f}{o.calls_per_s:12.0f}")
    floor = statistics.median(floors)
    print(f"{'event loop floor (TCP echo)':28}{floor:10.1f}")
    p50_ratio, p99_ratio, tput_ratio = o.p50_us / e.p50_us, o.p99_us / e.p99_us, o.calls_per_s / e.calls_per_s
    print(f"{'ratio ours / erlang':28}{p50_ratio:9.2f}x{p99_ratio:9.2f}x{tput_ratio:11.2f}x")
    print(f"floor / erlang p50: {floor / e.p50_us:.2f}x; our code adds {o.p50_us - floor:.1f} us over the floor")
    p50_ok, tput_ok = p50_ratio <= 2.0, tput_ratio >= 0.5
    print(f"targets: p50 <= 2x: {'met' if p50_ok else 'MISSED'}; throughput >= 0.5x: {'met' if tput_ok else 'MISSED'}")
    return 0


async def run_rounds(
    args: argparse.Namespace, client: ErlangNode, target: ErlangNode, echo_port: int
) -> tuple[list[Figures], list[Figures], list[float]]:
    local = LocalNode(f"bench_gw_{secrets.token_hex(3)}@{short_host()}", Cookie(target.cookie.encode()))
    remote = RemoteNode(local, target.name, RpcClient(local), call_timeout=30)
    erl, ours, floors = [], [], []
    try:
        for _ in range(args.rounds):
            erl.append(
                await asyncio.to_thread(erlang_round, client, target, args.calls, args.concurrency, args.per_worker)
            )
            ours.append(await ours_round(remote, args.calls, args.concurrency, args.per_worker))
            floors.append(await floor_round(echo_port, args.calls))
    finally:
        local.close()
    return erl, ours, floors


def median_figures(rounds: list[Figures]) -> Figures:
    return Figures(
        statistics.median(r.p50_us for r in rounds),
        statistics.median(r.p99_us for r in rounds),
        statistics.median(r.calls_per_s for r in rounds),
    )


if __name__ == "__main__":
    sys.exit(main())
