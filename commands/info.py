"""``info``: the node overview (SPEC JSON shape: node, otp_release, counts and limits, memory)."""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet

from .context import Context
from .format import human_bytes, human_count, key_values, percent, term_text
from .spec import Command, Invocation

NODE_OVERVIEW = Snippet(
    "info_node",
    """
    {UptimeMs, _} = erlang:statistics(wall_clock),
    #{node => node(),
      otp_release => list_to_binary(erlang:system_info(otp_release)),
      erts_version => list_to_binary(erlang:system_info(version)),
      uptime_ms => UptimeMs,
      process_count => erlang:system_info(process_count),
      process_limit => erlang:system_info(process_limit),
      port_count => erlang:system_info(port_count),
      port_limit => erlang:system_info(port_limit),
      atom_count => erlang:system_info(atom_count),
      atom_limit => erlang:system_info(atom_limit),
      ets_count => erlang:system_info(ets_count),
      ets_limit => erlang:system_info(ets_limit),
      run_queue => erlang:statistics(run_queue),
      schedulers => erlang:system_info(schedulers),
      schedulers_online => erlang:system_info(schedulers_online),
      memory => maps:from_list(erlang:memory())}.
    """,
)

MEMORY_KEYS = ("total", "processes", "system", "atom", "binary", "code", "ets")


def node_json(raw: dict[Any, Any]) -> dict[str, Any]:
    """The stable JSON shape of the node overview (SPEC "JSON shapes")."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif key == "memory":
            value = {str(k): v for k, v in value.items()}
        out[str(key)] = str(value) if key == "node" else value
    return out


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    raw = await ctx.need_target().run(NODE_OVERVIEW)
    return node_json(raw)


def _uptime(ms: int) -> str:
    seconds = ms // 1000
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"


def render(info: dict[str, Any], inv: Invocation) -> str:
    mem = info["memory"]

    def used(count: str, limit: str) -> str:
        return f"{human_count(info[count])} / {human_count(info[limit])} ({percent(info[count], info[limit])})"

    pairs = [
        ("node", term_text(info["node"])),
        ("otp", f"{info['otp_release']} (erts {info['erts_version']})"),
        ("uptime", _uptime(info["uptime_ms"])),
        ("processes", used("process_count", "process_limit")),
        ("ports", used("port_count", "port_limit")),
        ("atoms", used("atom_count", "atom_limit")),
        ("ets tables", used("ets_count", "ets_limit")),
        ("run queue", human_count(info["run_queue"])),
        ("schedulers", f"{info['schedulers_online']} online of {info['schedulers']}"),
    ]
    pairs += [(f"memory {k}", human_bytes(mem[k])) for k in MEMORY_KEYS if k in mem]
    return key_values(pairs)


COMMAND = Command(
    name="info",
    summary="node overview: release, uptime, counts against limits, memory, run queue",
    shows=(
        "The node's OTP release and uptime; process, port, atom and ETS table counts against their "
        "limits; the total run queue and schedulers online; memory by category (erlang:memory/0)."
    ),
    when=(
        "First thing on an unfamiliar or sick node: a count close to its limit (atoms never shrink), "
        "a long run queue (CPU saturation), or one memory category dominating tells you where to look next."
    ),
    cost="Negligible: a handful of constant-time system_info calls and erlang:memory/0.",
    run=run,
    render=render,
    to_json=lambda result, inv: result,
    fanout=True,
    examples=("info", "info --json", "info --nodes 'app@*'"),
)
