"""Every term type against real nodes (OTP 25 and 28), judged by Erlang itself.

For each case the gateway sends a Python value to the node twice:

* to a checker process (set up through the fixture's REPL, never through
  beamgate) that applies a predicate written here in Erlang, independently
  of our codec, usually ``T =:= Literal``, and answers ``true``/``false``;
* to ``bg_echo``, which sends it back: it must come back unchanged, with the
  same Python types all the way down (so ``1`` does not come back as ``1.0``,
  nor a binary as a list). The one intended change: a Python ``str`` is sent
  as a UTF-8 binary, so it comes back as ``bytes``.

Values the node makes (pids, references, ports, a closure) travel the other
way: the node sends them, the gateway echoes them, and the node checks that
what came back ``=:=`` what it sent.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from gateway.dist import etf
from gateway.dist.node import LocalNode, Process
from gateway.dist.rpc import RemoteNode, RpcClient
from gateway.dist.terms import (
    Atom,
    BitString,
    ExportFun,
    FrozenList,
    FrozenMap,
    ImproperList,
    OpaqueFun,
    Pid,
    Port,
    Reference,
)
from gateway.secret import Cookie
from tests.support.erlang import ErlangNode, short_host

GW_NAME = f"beamgate_rt_{secrets.token_hex(3)}@{short_host()}"
GW = Atom(GW_NAME)


def nested(depth: int) -> Any:
    term: Any = 1
    for _ in range(depth):
        term = [term]
    return term


MEGABYTE = b"0123456789abcdef" * 65536

# (id, Python value, Erlang predicate on the received term T)
CASES: list[tuple[str, Any, str]] = [
    ("small_int", 7, "T =:= 7"),
    ("int_255_256", [255, 256], "T =:= [255, 256]"),
    ("negative_int", -1, "T =:= -1"),
    ("int32_edges", [2**31 - 1, -(2**31)], "T =:= [2147483647, -2147483648]"),
    ("small_big", [2**31, -(2**31) - 1], "T =:= [2147483648, -2147483649]"),
    ("big_pos", 2**100, "T =:= 1 bsl 100"),
    ("big_neg", -(2**100), "T =:= -(1 bsl 100)"),
    ("large_big_pos", 2**2100, "T =:= 1 bsl 2100"),
    ("large_big_neg", -(2**2100) + 1, "T =:= -(1 bsl 2100) + 1"),
    ("float", 3.5, "T =:= 3.5"),
    ("float_extremes", [1.0e300, -2.5e-300, 5.0e-324], "T =:= [1.0e300, -2.5e-300, 5.0e-324]"),
    ("float_is_not_int", 1.0, "is_float(T) andalso T == 1"),
    ("atom", Atom("hello"), "T =:= hello"),
    ("quoted_atom", Atom("Hello World"), "T =:= 'Hello World'"),
    ("empty_atom", Atom(""), "T =:= ''"),
    ("booleans", [True, False], "T =:= [true, false]"),
    ("unicode_atom", Atom("h\u00e9llo"), "T =:= list_to_atom([104, 233, 108, 108, 111])"),
    ("cjk_atom", Atom("\u65e5\u672c"), "T =:= list_to_atom([26085, 26412])"),
    ("binary", b"abc", 'T =:= <<"abc">>'),
    ("empty_binary", b"", "T =:= <<>>"),
    ("megabyte_binary", MEGABYTE, 'T =:= binary:copy(<<"0123456789abcdef">>, 65536)'),
    ("text_is_utf8_binary", "h\u00e9", "T =:= <<104, 195, 169>>"),
    ("bitstring_3", BitString(b"\x20", 3), "T =:= <<1:3>>"),
    ("bitstring_12", BitString(b"\xff\x70", 4), "T =:= <<255, 7:4>>"),
    ("charlist", [97, 98, 99], 'T =:= "abc"'),
    ("empty_list", [], "T =:= []"),
    ("improper_list", ImproperList((1, 2), Atom("three")), "T =:= [1, 2 | three]"),
    ("improper_binary_tail", ImproperList((Atom("a"),), b"b"), 'T =:= [a | <<"b">>]'),
    ("empty_tuple", (), "T =:= {}"),
    ("tuple", (Atom("ok"), 1, b"x"), 'T =:= {ok, 1, <<"x">>}'),
    ("large_tuple", tuple(range(1, 301)), "T =:= list_to_tuple(lists:seq(1, 300))"),
    ("empty_map", {}, "T =:= #{}"),
    ("map", {Atom("a"): 1, b"b": [2], 3: {Atom("c"): 4.5}}, 'T =:= #{a => 1, <<"b">> => [2], 3 => #{c => 4.5}}'),
    (
        "map_keys_lists_and_maps",
        {FrozenList([1, 2]): Atom("list"), FrozenMap({Atom("k"): 1}): Atom("map"), (FrozenList([]),): 0},
        "T =:= #{[1, 2] => list, #{k => 1} => map, {[]} => 0}",
    ),
    ("large_map", {i: i * i for i in range(100)}, "T =:= maps:from_list([{I, I * I} || I <- lists:seq(0, 99)])"),
    ("export_fun", ExportFun(Atom("lists"), Atom("map"), 2), "T =:= fun lists:map/2"),
    ("deeply_nested", nested(300), "T =:= lists:foldl(fun(_, A) -> [A] end, 1, lists:seq(1, 300))"),
    (
        "mixed",
        (Atom("ok"), [{Atom("a"): (1, 2.5, b"x")}, ImproperList((1,), 2)]),
        'T =:= {ok, [#{a => {1, 2.5, <<"x">>}}, [1 | 2]]}',
    ),
    ("our_pid", Pid(GW, 1, 0, 7), f"is_pid(T) andalso node(T) =:= '{GW_NAME}'"),
    ("our_pid_big_id", Pid(GW, 2**20 + 5, 3, 7), f"is_pid(T) andalso node(T) =:= '{GW_NAME}'"),
    ("our_ref", Reference(GW, 7, (5, 6, 7)), f"is_reference(T) andalso node(T) =:= '{GW_NAME}'"),
    ("our_port", Port(GW, 9, 7), f"is_port(T) andalso node(T) =:= '{GW_NAME}'"),
]


def strictly_equal(a: Any, b: Any) -> bool:
    """Equal, and of the same Python type at every level (maps in any order)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (dict, FrozenMap)):
        return a.keys() == b.keys() and all(strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, ImproperList):
        return strictly_equal(a.items, b.items) and strictly_equal(a.tail, b.tail)
    return bool(a == b)


def setup_checker(target: ErlangNode) -> None:
    """Register ``bg_check``: ``{From, Ref, Id, Term}`` -> ``From ! {Ref, Id, Pred(Term)}``."""
    preds = ", ".join(f"fun(T) -> {pred} end" for _, _, pred in CASES)
    target.eval(
        f"Checks = {{{preds}}}, "
        "CheckLoop = fun Loop() -> receive {From, Ref, Id, Term} -> "
        "From ! {Ref, Id, (element(Id, Checks))(Term)}, Loop() end end, "
        "register(bg_check, spawn(CheckLoop))."
    )


def connect(target: ErlangNode) -> tuple[LocalNode, RemoteNode]:
    local = LocalNode(GW_NAME, Cookie(target.cookie.encode()), creation=7)
    return local, RemoteNode(local, target.name, RpcClient(local), call_timeout=10)


async def ask(proc: Process, to: tuple[Atom, str], *message: Any) -> Any:
    ref = proc.node.make_ref()
    proc.send(to, (proc.pid, ref, *message))
    reply = await proc.receive(timeout=10)
    assert reply[0] == ref
    return reply[1:]


def test_every_term_type_judged_by_erlang_and_echoed_unchanged(target: ErlangNode) -> None:
    setup_checker(target)

    async def main() -> list[str]:
        local, remote = connect(target)
        await remote.connect()
        proc = local.spawn()
        failures = []
        for index, (name, term, pred) in enumerate(CASES, start=1):
            (case_id, verdict) = await ask(proc, (Atom("bg_check"), target.name), index, term)
            assert case_id == index
            if verdict is not True:
                failures.append(f"{name}: the node says {pred} is {verdict}")
            (echoed,) = await ask(proc, (Atom("bg_echo"), target.name), term)
            expected = term.encode() if isinstance(term, str) and not isinstance(term, Atom) else term
            if not strictly_equal(echoed, expected):
                failures.append(f"{name}: echoed back as {echoed!r:.200}")
        local.close()
        return failures

    assert asyncio.run(main()) == []


def test_node_made_pids_refs_ports_and_closures_come_back_equal(target: ErlangNode) -> None:
    target.eval(
        "NodeMade = {self(), make_ref(), hd(erlang:ports()), fun() -> ok end, spawn(fun() -> ok end),"
        ' list_to_pid("<0.1.0>"), make_ref()},'
        " register(bg_src, spawn(fun() -> receive {From, Ref} -> From ! {Ref, NodeMade} end end)),"
        " register(bg_same, spawn(fun() -> receive {From, Ref, T} -> From ! {Ref, T =:= NodeMade} end end))."
    )

    async def main() -> None:
        local, remote = connect(target)
        await remote.connect()
        proc = local.spawn()
        (made,) = await ask(proc, (Atom("bg_src"), target.name))
        pid, ref, port, closure, *_ = made
        assert isinstance(pid, Pid) and pid.node == target.name
        assert isinstance(ref, Reference) and ref.node == target.name
        assert isinstance(port, Port) and port.node == target.name
        assert isinstance(closure, OpaqueFun) and closure.module == Atom("erl_eval")
        (echoed,) = await ask(proc, (Atom("bg_echo"), target.name), made)
        assert strictly_equal(echoed, made)
        assert etf.encode(echoed) == etf.encode(made)
        assert await ask(proc, (Atom("bg_same"), target.name), echoed) == (True,)
        local.close()

    asyncio.run(main())


def test_otp25_sends_latin1_atoms_we_read(node_factory: Any, otp25_runtime: Any) -> None:
    """OTP 25's term_to_binary uses Latin-1 ATOM_EXT; a binary made there decodes here."""
    node = node_factory(otp25_runtime)

    async def main() -> None:
        local, remote = connect(node)
        data = await remote.call("erlang", "term_to_binary", [Atom("caf\u00e9")])
        assert data[1] == etf.ATOM_EXT
        assert etf.decode(data) == Atom("caf\u00e9")
        local.close()

    asyncio.run(main())
