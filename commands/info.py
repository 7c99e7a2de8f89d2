"""``info`` and ``info PROC [KEY...]``.

Without PROC: the node overview (SPEC JSON shape: node, otp_release, counts
and limits, memory). With PROC: one process in recon:info/1's safe groups
(:mod:`commands.procinfo`).
"""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet

from .context import Context
from .format import human_bytes, human_count, key_values, percent, sanitize, sanitize_bytes
from .procinfo import GROUPS, KEYS, render_proc, run_proc
from .remote import evaluate
from .spec import Command, Invocation, Param

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
            value = sanitize_bytes(value)
        elif key == "memory":
            value = {str(k): v for k, v in value.items()}
        out[str(key)] = sanitize(value) if key == "node" else value
    return out


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    if inv.args.get("proc") is not None:
        return await run_proc(ctx, inv)
    raw = await evaluate(ctx, NODE_OVERVIEW)
    return node_json(raw)


def _uptime(ms: int) -> str:
    seconds = ms // 1000
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"


def render(info: dict[str, Any], inv: Invocation) -> str:
    if inv.args.get("proc") is not None:
        return render_proc(info, inv)
    mem = info["memory"]

    def used(count: str, limit: str) -> str:
        return f"{human_count(info[count])} / {human_count(info[limit])} ({percent(info[count], info[limit])})"

    pairs = [
        ("node", info["node"]),
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
    summary="node overview, or one process in recon:info's safe groups",
    shows=(
        "Without PROC: the node's OTP release and uptime; process, port, atom and ETS table counts against "
        "their limits; the total run queue and schedulers online; memory by category (erlang:memory/0). "
        "With PROC: recon:info/1 for that process, by group: meta (registered name, dictionary, group "
        "leader, status), signals (links, monitors, monitored by, trap_exit), location (initial call, "
        "current stacktrace), memory_used (memory, queue length, heap sizes, GC settings) and work "
        "(reductions). KEY picks groups or single items; binary (its refc binaries) and messages (the first "
        "10 in the mailbox) only when asked."
    ),
    when=(
        "First thing on an unfamiliar or sick node: a count close to its limit (atoms never shrink), "
        "a long run queue (CPU saturation), or one memory category dominating tells you where to look next. "
        "info PROC once proc_count or proc_window pointed at a process."
    ),
    cost=(
        "Node: negligible, a handful of constant-time system_info calls and erlang:memory/0. Process: one "
        "process_info/2 call; the dictionary, links and monitors are cut to their first 50 entries on the node. "
        "The mailbox is read only for KEY messages, as the messages command reads it: not for protected "
        "processes, and only when at most safety.messages_cap messages are queued."
    ),
    params=(
        Param("PROC", "proc", "a pid (<0.123.0>), registered name or global:NAME", required=False),
        Param(
            "KEY",
            "choice",
            "groups or items to show (default: every safe group)",
            choices=KEYS,
            required=False,
            many=True,
        ),
    ),
    run=run,
    render=render,
    to_json=lambda result, inv: result,
    fanout=True,
    notes="Groups: "
    + "; ".join(f"{g}: {', '.join(items)}" for g, items in GROUPS.items())
    + "; binary and messages on request.",
    examples=("info", "info --json", "info --nodes 'app@*'", "info my_server", "info <0.123.0> memory_used work"),
)
