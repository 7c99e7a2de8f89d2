"""``ports``: port types with their counts (recon:port_types/0)."""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet

from .context import Context
from .format import human_count, sanitize_bytes, table
from .remote import evaluate
from .spec import Command, Invocation

PORTS = Snippet(
    "ports",
    """
    Ports = erlang:ports(),
    Len = length(Ports),
    Names = lists:zipwith(fun erlang:element/2, lists:duplicate(Len, 2), lists:zipwith(fun erlang:max/2,
        lists:zipwith(fun erlang:port_info/2, Ports, lists:duplicate(Len, name)),
        lists:duplicate(Len, {name, []}))),
    Groups = maps:groups_from_list(fun unicode:characters_to_binary/1, Names),
    {Len, [{Name, length(Same)} || {Name, Same} <- maps:to_list(Groups), Name =/= <<>>]}.
    """,
)


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    total, counts = await evaluate(ctx, PORTS)
    rows = [{"type": sanitize_bytes(name), "count": count} for name, count in counts]
    rows.sort(key=lambda r: (-r["count"], r["type"]))
    return {"node": ctx.need_target().name, "ports": total, "types": rows}


def render(result: dict[str, Any], inv: Invocation) -> str:
    body = table(["COUNT", "TYPE"], [[human_count(r["count"]), r["type"]] for r in result["types"]], right=(0,))
    return f"{human_count(result['ports'])} ports on {result['node']}\n{body}"


COMMAND = Command(
    name="ports",
    summary="port types with their counts (sockets, pipes, drivers)",
    shows=(
        "How many ports of each type are open (recon:port_types/0): tcp_inet, udp_inet, sctp_inet sockets, "
        "spawned external programs (named after their command), drivers. Most numerous first."
    ),
    when=(
        "The port count approaches its limit (info), file descriptors run out, or connections leak: see "
        "which kind of port piles up, then inet_count or port_info."
    ),
    cost="erlang:port_info(Port, name) for every port, compiled; only the counts cross the network.",
    run=run,
    render=render,
    to_json=lambda result, inv: result["types"],
    fanout=True,
    examples=("ports", "ports --json"),
)
