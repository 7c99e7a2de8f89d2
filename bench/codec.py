"""Term codec speed: beamgate's ``gateway.dist.etf`` against ``erlang-py``.

Both codecs decode the same bytes and re-encode what they decoded, on
payloads shaped like what the gateway really exchanges. Prints microseconds
per operation and the ratio erlang-py / ours (above 1: ours is faster).

    python3 bench/codec.py [--seconds 0.3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import erlang

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.dist import etf
from gateway.dist.terms import Atom, Pid, Reference

NODE = Atom("app@host-1")
GW = Atom("beamgate@host-1")


def pid(n: int) -> Pid:
    return Pid(NODE, n, 0, 1_700_000_000)


def payloads() -> dict[str, bytes]:
    """Typical terms, encoded once (the encoding Erlang itself would produce)."""
    ref = Reference(GW, 4711, (17, 0, 99991))
    top_n = [
        (pid(100 + i), 12_345 * i, Atom("undefined") if i % 3 else Atom(f"worker_{i}"),
         (Atom("gen_server"), Atom("loop"), 7), (Atom("proc_lib"), Atom("init_p"), 5))
        for i in range(50)
    ]  # fmt: skip
    info = {
        Atom(k): v
        for k, v in {
            "node": NODE, "otp_release": b"26", "process_count": 1234, "process_limit": 262144,
            "port_count": 56, "port_limit": 65536, "atom_count": 23456, "atom_limit": 1048576,
            "run_queue": 0,
            "memory": {Atom(m): 10_000_000 + i for i, m in enumerate(
                ["total", "processes", "system", "atom", "binary", "code", "ets"])},
        }.items()
    }  # fmt: skip
    # erl_parse forms of a small snippet: nested tuples of atoms, integers and charlists.
    forms = [
        (Atom("match"), 1, (Atom("var"), 1, Atom(f"V{i}")),
         (Atom("call"), 1, (Atom("remote"), 1, (Atom("atom"), 1, Atom("erlang")), (Atom("atom"), 1, Atom("node"))),
          [(Atom("string"), 1, list(b"some text here")), (Atom("integer"), 1, i)]))
        for i in range(20)
    ]  # fmt: skip
    return {
        "rpc reply {Ref, atom}": etf.encode((ref, NODE)),
        "top-50 process rows": etf.encode(top_n),
        "node info map": etf.encode(info),
        "parsed forms (20 exprs)": etf.encode(forms),
        "64 KiB binary": etf.encode((Atom("ok"), bytes(range(256)) * 256)),
        "1000 integers": etf.encode(list(range(100_000, 101_000))),
    }


def per_op(fn: Callable[[], Any], seconds: float) -> float:
    """Microseconds per call of ``fn``, best of 3 timed batches."""
    n, elapsed = 1, 0.0
    while elapsed < seconds / 10:
        n *= 2
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
    best = elapsed / n
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="approximate time per measurement")
    args = parser.parse_args()
    print(f"{'payload':26}{'bytes':>8}  {'decode us':>20}  {'encode us':>20}")
    print(f"{'':26}{'':>8}  {'ours':>6}{'e-py':>7}{'ratio':>7}  {'ours':>6}{'e-py':>7}{'ratio':>7}")
    for name, data in payloads().items():
        ours_term = etf.decode(data)
        their_term = erlang.binary_to_term(data)
        assert etf.decode(etf.encode(ours_term)) == ours_term
        d_ours = per_op(lambda data=data: etf.decode(data), args.seconds)  # type: ignore[misc]
        d_them = per_op(lambda data=data: erlang.binary_to_term(data), args.seconds)  # type: ignore[misc]
        e_ours = per_op(lambda t=ours_term: etf.encode(t), args.seconds)  # type: ignore[misc]
        e_them = per_op(lambda t=their_term: erlang.term_to_binary(t), args.seconds)  # type: ignore[misc]
        print(
            f"{name:26}{len(data):8}  {d_ours:6.1f}{d_them:7.1f}{d_them / d_ours:6.2f}x"
            f"  {e_ours:6.1f}{e_them:7.1f}{e_them / e_ours:6.2f}x"
        )
    print("ratio = erlang-py time / ours (above 1: ours is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
