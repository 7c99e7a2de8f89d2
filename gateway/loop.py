"""The event loop beamgate's entry points run on.

uvloop when it is installed (it is a dependency on Linux), else asyncio's
own loop; ``BEAMGATE_EVENT_LOOP=asyncio`` forces the latter (to rule the loop
out when chasing a problem). Measured with ``bench/rpc.py`` (docs/decisions.md
D13): the p50 latency of a trivial RPC is 1.3x-1.9x that of Erlang's own
``rpc:call`` on uvloop against 1.9x-2.2x on asyncio's loop (throughput is
about the same on both); the SSH server, prompt_toolkit and the
distribution client run unchanged on either loop (the end-to-end tests run
``beamgate serve`` on uvloop, the in-process tests on asyncio's loop).
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

ENV = "BEAMGATE_EVENT_LOOP"


def _uvloop_run() -> Callable[[Coroutine[Any, Any, Any]], Any] | None:
    if os.environ.get(ENV, "").strip().lower() == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    runner: Callable[[Coroutine[Any, Any, Any]], Any] = uvloop.run
    return runner


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the fastest available event loop."""
    runner = _uvloop_run()
    result: T = asyncio.run(main) if runner is None else runner(main)
    return result


def name() -> str:
    """Which loop :func:`run` uses (for start-up logs and benchmarks)."""
    return "asyncio" if _uvloop_run() is None else "uvloop"
