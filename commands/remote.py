"""Running a command's snippet on its node: the one place remote failures become user errors.

Every diagnostic evaluates its snippet through :func:`evaluate`, which calls
the context's bounded target (:class:`gateway.target.BoundedTarget`: fresh
worker, ``max_heap_size``, deadline, reply cap, owner monitor) and turns what
can go wrong into a :class:`~commands.errors.CommandError` with one line a
person on call can act on:

* a ``throw({beamgate, Kind, Detail})`` from the snippet is phrased by the
  command (``explain``: kind -> message) when it knows the kind;
* a tripped bound (heap, time, reply size) keeps the target's own message,
  which already names the bound and its configuration key;
* a lost or unreachable node becomes ``NODE: reason``.

The original exception stays attached as ``__cause__`` for the dispatcher's
audit record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.dist.errors import DistError
from gateway.dist.rpc import Snippet
from gateway.target import TargetError

from .context import Context
from .errors import CommandError

#: How a command phrases the kinds its snippet throws: kind -> (detail -> message).
Explain = Mapping[str, Callable[[Any], str]]


async def evaluate(
    ctx: Context,
    snippet: Snippet,
    bindings: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = None,
    explain: Explain | None = None,
) -> Any:
    """Run ``snippet`` on the context's node, bounded; raise :class:`CommandError` on failure."""
    target = ctx.need_target()
    try:
        return await target.run(snippet, bindings, timeout=timeout)
    except TargetError as err:
        phrase = (explain or {}).get(err.kind)
        raise CommandError(phrase(err.detail) if phrase else str(err)) from err
    except DistError as err:
        text = str(err)  # distribution errors name the node already, almost always
        raise CommandError(text if target.name in text else f"{target.name}: {text}") from err


def run_timeout(ctx: Context, extra_seconds: float) -> float:
    """The deadline for a command that waits ``extra_seconds`` on purpose (windows, samples)."""
    return ctx.safety.eval_timeout + extra_seconds
