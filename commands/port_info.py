"""``port_info PORT``: one port in recon:port_info/1's groups, with socket details for inet ports."""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet
from gateway.dist.terms import Atom

from .context import Context
from .format import chars_text, human_bytes, human_count, key_values, name_text, safe_join, sanitize, term_text
from .netports import PORT_RESOLVE, address_text, port_binding
from .remote import evaluate
from .spec import Command, Invocation, Param

GROUPS = {
    "meta": ("registered_name", "id", "name", "os_pid"),
    "signals": ("connected", "links", "monitors"),
    "io": ("input", "output"),
    "memory_used": ("memory", "queue_size"),
}
SOCKET_OPTIONS = (
    "active buffer delay_send exit_on_close header high_watermark keepalive linger low_watermark mode "
    "nodelay packet packet_size priority recbuf reuseaddr send_timeout sndbuf"
).split()

PORT_INFO = Snippet(
    "port_info",
    PORT_RESOLVE
    + """
    Port = BgPort(Which),
    Items = [case erlang:port_info(Port, Key) of {_, Value} -> {Key, Value}; _ -> {Key, undefined} end
             || Key <- Keys],
    Inet = case proplists:get_value(name, Items) of
        Type when Type =:= "tcp_inet"; Type =:= "udp_inet"; Type =:= "sctp_inet" ->
            Ok = fun({ok, Value}) -> Value; (_) -> undefined end,
            [{statistics, Ok(inet:getstat(Port))}, {peername, Ok(inet:peername(Port))},
             {sockname, Ok(inet:sockname(Port))}, {options, Ok(inet:getopts(Port, Options))}];
        _ -> []
    end,
    {Port, Items, Inet}.
    """,
    ("Keys", "Options", "Which"),
)


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    text, node = inv.args["port"], ctx.need_target().name
    explain = {
        "no_such_port": lambda _d: f"no such port: {sanitize(text)} on {node}",
        "not_a_port": lambda _d: f"{sanitize(text)} is a process, not a port (try: info {sanitize(text)})",
    }
    bindings = {
        "Which": port_binding(text),
        "Keys": [Atom(k) for items in GROUPS.values() for k in items],
        "Options": [Atom(o) for o in SOCKET_OPTIONS],
    }
    port, items, inet = await evaluate(ctx, PORT_INFO, bindings, explain=explain)
    values = {str(k): v for k, v in items}
    out: dict[str, Any] = {"port": term_text(port, local_node=node)}
    for group, keys in GROUPS.items():
        out[group] = {k: _value(k, values.get(k), node) for k in keys}
    if inet:
        details = {str(k): v for k, v in inet}
        out["type"] = {
            "statistics": {str(k): v for k, v in details["statistics"] or []},
            "peername": address_text(details["peername"]),
            "sockname": address_text(details["sockname"]),
            "options": {str(k): term_text(v) for k, v in details["options"] or []},
        }
    return out


def _value(key: str, value: Any, node: str) -> Any:
    if value is None or value == "undefined" or (key == "registered_name" and value == []):
        return None
    if key == "registered_name" and isinstance(value, Atom):
        return name_text(value)
    if key == "name" and isinstance(value, list):
        return chars_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, list):
        return [term_text(v, local_node=node) for v in value]
    return term_text(value, local_node=node)


def render(result: dict[str, Any], inv: Invocation) -> str:
    lines = [f"port {result['port']}"]
    for group in (*GROUPS, "type"):
        if group not in result:
            continue
        lines.append(f"{group}:")
        pairs = [(k, _shown(k, v)) for k, v in result[group].items()]
        lines.extend("  " + line for line in key_values(pairs).splitlines())
    return "\n".join(lines)


def _shown(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return (
            safe_join(", ", (safe_join("=", (k, v if isinstance(v, str) else str(v))) for k, v in value.items())) or "-"
        )
    if isinstance(value, list):
        return safe_join(", ", value) or "none"
    if isinstance(value, int) and key in ("memory", "input", "output"):
        return human_bytes(value)
    if isinstance(value, int):
        return human_count(value)
    return value if isinstance(value, str) else str(value)


COMMAND = Command(
    name="port_info",
    summary="one port: owner, links, I/O, memory; address, counters and options for sockets",
    shows=(
        "recon:port_info/1 for one port, by group: meta (registered name, id, name, OS pid), signals "
        "(connected process, links, monitors), io (bytes in and out), memory_used (memory, queue size), "
        "and for TCP/UDP/SCTP sockets their statistics, peer and local addresses and socket options."
    ),
    when="After ports or inet_count pointed at a port: who owns it, where it connects, whether it is backed up.",
    cost="A handful of erlang:port_info/2 and inet calls on that port.",
    params=(Param("PORT", "port", "#Port<0.123>, 0.123, 123 or a registered port name"),),
    run=run,
    render=render,
    to_json=lambda result, inv: result,
    fanout=True,
    examples=("port_info #Port<0.8>", "port_info 8 --json"),
)
