"""Ports on the target: resolving a PORT argument, inet sockets, their counters and rows.

:data:`PORT_RESOLVE` defines ``BgPort(Which)`` for ``port_info``: ``Which``
is ``{number, N}`` (``#Port<0.N>``, ``0.N`` or ``N``) or ``{name, <<"...">>}``
(a registered port, looked up with ``binary_to_existing_atom/2``); it returns
an open local port or throws ``{beamgate, no_such_port | not_a_port, ...}``.

:data:`INET` defines, for ``inet_count``/``inet_window`` (recon's
``inet_attrs``):

``BgInetPorts()``
    every ``tcp_inet``, ``udp_inet`` and ``sctp_inet`` port, selected with
    ``proplists:lookup_all/2`` over ``{{name, Type}, Port}`` pairs (compiled);
``BgInetValues(Keys)``
    the per-chunk measurement for :mod:`commands.sampling`: the sum of
    ``inet:getstat(Port, Keys)`` per port, 0 for a port closed meanwhile;
``BgInetRows(Best, Keys, N)``
    ``{Port, Value, Type, Stats, Peer, Local, Owner, OwnerName}`` for the
    kept ports that are still open.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.dist.terms import Atom

from .errors import CommandError
from .format import chars_text, human_bytes, human_count, table, term_text
from .procs import optional_name, pid_shown
from .refs import atom_name

PORT_RESOLVE = """
    BgPort = fun(BgWhich) ->
        BgFound = case BgWhich of
            {number, BgNum} ->
                try erlang:list_to_port(lists:flatten(["#Port<0.", integer_to_list(BgNum), ">"]))
                catch error:badarg -> undefined end;
            {name, BgName} ->
                try erlang:whereis(erlang:binary_to_existing_atom(BgName, utf8))
                catch error:badarg -> undefined end
        end,
        case BgFound of
            BgP when is_port(BgP) ->
                case erlang:port_info(BgP, id) of
                    undefined -> throw({beamgate, no_such_port, BgWhich});
                    _ -> BgP
                end;
            BgP when is_pid(BgP) -> throw({beamgate, not_a_port, BgWhich});
            _ -> throw({beamgate, no_such_port, BgWhich})
        end
    end,
"""

INET = """
    BgInetPorts = fun() ->
        BgAll = erlang:ports(),
        BgPairs = lists:zip(lists:zipwith(fun erlang:port_info/2, BgAll, lists:duplicate(length(BgAll), name)), BgAll),
        BgInet = lists:append([proplists:lookup_all({name, BgType}, BgPairs)
                               || BgType <- ["tcp_inet", "udp_inet", "sctp_inet"]]),
        element(2, lists:unzip(BgInet))
    end,
    BgInetValues = fun(BgKeys) ->
        fun(BgPorts) ->
            BgLen = length(BgPorts),
            BgTwos = lists:duplicate(BgLen, 2),
            BgStats = lists:zipwith(fun erlang:element/2, BgTwos, lists:zipwith(fun erlang:max/2,
                lists:zipwith(fun inet:getstat/2, BgPorts, lists:duplicate(BgLen, BgKeys)),
                lists:duplicate(BgLen, {ok, []}))),
            BgSplit = lists:zipwith(fun erlang:element/2, BgTwos, lists:map(fun lists:unzip/1, BgStats)),
            lists:map(fun lists:sum/1, BgSplit)
        end
    end,
    BgOk = fun({ok, BgValue}) -> BgValue; (_) -> undefined end,
    BgInetRow = fun(BgKeys) ->
        fun({BgValue, BgP}) ->
            case {erlang:port_info(BgP, name), erlang:port_info(BgP, connected)} of
                {{name, BgType}, {connected, BgOwner}} ->
                    BgOwnerName = case erlang:process_info(BgOwner, registered_name) of
                                      {registered_name, BgReg} -> BgReg;
                                      _ -> []
                                  end,
                    [{BgP, BgValue, BgType, BgOk(inet:getstat(BgP, BgKeys)), BgOk(inet:peername(BgP)),
                      BgOk(inet:sockname(BgP)), BgOwner, BgOwnerName}];
                _ -> []
            end
        end
    end,
    BgInetRows = fun(BgBest, BgKeys, BgN) ->
        lists:sublist(lists:append(lists:map(BgInetRow(BgKeys), BgBest)), BgN)
    end,
"""

#: recon's inet attributes: what each one sums.
INET_ATTRS: Mapping[str, tuple[str, ...]] = {
    "recv_cnt": ("recv_cnt",),
    "recv_oct": ("recv_oct",),
    "send_cnt": ("send_cnt",),
    "send_oct": ("send_oct",),
    "cnt": ("recv_cnt", "send_cnt"),
    "oct": ("recv_oct", "send_oct"),
}

INET_HELP = """Attributes (inet:getstat/2 counters of TCP, UDP and SCTP sockets):
  recv_oct, send_oct, oct   bytes received, sent, both
  recv_cnt, send_cnt, cnt   packets received, sent, both"""


def port_binding(text: str) -> tuple[Any, ...]:
    """A PORT argument (already checked by the grammar) as data for ``BgPort``."""
    if text.startswith("#Port<"):
        text = text[len("#Port<") : -1]
    node, dot, number = text.partition(".")
    if dot:
        if node != "0":
            raise CommandError(f"{text} is a port of another node; run on that node (--node) and give it as 0.{number}")
        return (Atom("number"), int(number))
    if text.isdigit():
        return (Atom("number"), int(text))
    return (Atom("name"), atom_name(text).encode())


def address_text(address: Any) -> str | None:
    """``{{127,0,0,1}, 4369}`` as ``127.0.0.1:4369`` (IPv6 in brackets), else term text."""
    if address is None or address == "undefined":
        return None
    if isinstance(address, tuple) and len(address) == 2 and isinstance(address[1], int):
        ip, port = address
        if isinstance(ip, tuple) and len(ip) == 4 and all(isinstance(b, int) for b in ip):
            return f"{ipaddress.IPv4Address(bytes(ip))}:{port}"
        if isinstance(ip, tuple) and len(ip) == 8 and all(isinstance(w, int) for w in ip):
            packed = b"".join(w.to_bytes(2, "big") for w in ip)
            return f"[{ipaddress.IPv6Address(packed)}]:{port}"
    return term_text(address)


def inet_rows(raw: Iterable[Sequence[Any]], node: str) -> list[dict[str, Any]]:
    """``BgInetRows`` tuples as JSON rows."""
    rows = []
    for port, value, kind, stats, peer, local, owner, owner_name in raw:
        rows.append(
            {
                "port": term_text(port, local_node=node),
                "value": value,
                "type": chars_text(kind),
                "stats": {str(k): v for k, v in stats} if isinstance(stats, list) else {},
                "peer": address_text(peer),
                "local": address_text(local),
                "owner": pid_shown(owner, node),
                "owner_name": optional_name(owner_name),
            }
        )
    return rows


def inet_table(rows: Sequence[Mapping[str, Any]], attr: str, header: str) -> str:
    unit = human_bytes if attr.endswith("oct") else human_count
    return table(
        ["PORT", header, "TYPE", "LOCAL", "PEER", "OWNER", "OWNER NAME"],
        [
            [
                r["port"],
                unit(r["value"]),
                r["type"],
                r["local"] or "-",
                r["peer"] or "-",
                r["owner"],
                r["owner_name"] or "-",
            ]
            for r in rows
        ],
        right=(1,),
    )
