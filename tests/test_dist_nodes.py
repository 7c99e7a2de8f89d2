"""The distribution client against real target nodes (OTP 25 and OTP 28)."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest

from gateway.dist.errors import (
    CallTimeout,
    CookieRejected,
    EpmdUnreachable,
    NodeDown,
    NodeNotRegistered,
    RemoteError,
)
from gateway.dist.node import LocalNode, NodeOptions
from gateway.dist.rpc import RemoteNode, RpcClient, Snippet
from gateway.dist.terms import Atom, Pid
from gateway.secret import Cookie
from tests.support.erlang import ErlangNode, short_host, wait_until


def gateway_for(node: ErlangNode, *, cookie: str | None = None, **options: object) -> tuple[LocalNode, RemoteNode]:
    local = LocalNode(
        f"beamgate_{secrets.token_hex(3)}@{short_host()}",
        Cookie((cookie or node.cookie).encode()),
        NodeOptions(**options),  # type: ignore[arg-type]
    )
    return local, RemoteNode(local, node.name, RpcClient(local), call_timeout=5.0)


def test_call_and_release(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = gateway_for(target)
        assert await remote.otp_release() == target.runtime.release
        assert await remote.call("erlang", "node") == Atom(target.name)
        assert await remote.call("lists", "reverse", [[1, 2, 3]]) == [3, 2, 1]
        local.close()

    asyncio.run(main())


def test_gateway_is_hidden(target: ErlangNode) -> None:
    async def main() -> str:
        local, remote = gateway_for(target)
        await remote.connect()
        seen = target.eval("{nodes(), nodes(hidden)}.")
        local.close()
        return seen

    seen = asyncio.run(main())
    visible, hidden = seen[1:-1].split("],[")
    assert visible == "[", seen  # nodes() is empty
    assert "beamgate_" in hidden


def test_wrong_cookie_is_diagnosed(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = gateway_for(target, cookie="not-the-cookie")
        with pytest.raises(CookieRejected, match="rejected our cookie"):
            await remote.connect()
        local.close()

    asyncio.run(main())


def test_node_not_running(target: ErlangNode) -> None:
    async def main() -> None:
        local = LocalNode(f"beamgate@{short_host()}", Cookie(b"x"))
        remote = RemoteNode(local, f"nosuchnode_{secrets.token_hex(3)}@{short_host()}", RpcClient(local))
        with pytest.raises(NodeNotRegistered, match=f"registered there: .*{target.alive}"):
            await remote.connect()

    asyncio.run(main())


def test_epmd_not_running() -> None:
    async def main() -> None:
        local = LocalNode(f"beamgate@{short_host()}", Cookie(b"x"), NodeOptions(epmd_port=1))
        remote = RemoteNode(local, f"app@{short_host()}", RpcClient(local))
        with pytest.raises(EpmdUnreachable, match="connection refused"):
            await remote.connect()

    asyncio.run(main())


def test_remote_exception_is_an_error(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = gateway_for(target)
        with pytest.raises(RemoteError, match="badarg"):
            await remote.call(
                "erlang", "binary_to_existing_atom", [b"no_such_atom_" + secrets.token_hex(8).encode(), Atom("utf8")]
            )
        local.close()

    asyncio.run(main())


def test_timeout_then_late_reply_dropped(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = gateway_for(target)
        with pytest.raises(CallTimeout, match=r"timer:sleep within 0\.2s"):
            await remote.call("timer", "sleep", [600], timeout=0.2)
        assert remote.rpc._waiting == {}
        await asyncio.sleep(0.8)
        assert remote.rpc.late_replies == 1
        assert await remote.call("erlang", "node") == Atom(target.name)
        local.close()

    asyncio.run(main())


def test_node_killed_mid_call_then_reconnect(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = gateway_for(target)
        await remote.connect()
        call = asyncio.ensure_future(remote.call("timer", "sleep", [10_000], timeout=8))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await asyncio.to_thread(target.kill)
        with pytest.raises(NodeDown):
            await call
        assert time.monotonic() - started < 3, "node loss must be noticed well before the call timeout"
        with pytest.raises((NodeDown, NodeNotRegistered)):
            await remote.call("erlang", "node", timeout=2)
        await asyncio.to_thread(target.restart)
        assert await remote.call("erlang", "node") == Atom(target.name)
        local.close()

    asyncio.run(main())


def test_thousand_concurrent_calls_one_connection(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = gateway_for(target)
        results = await asyncio.gather(*(remote.call("erlang", "+", [i, 1]) for i in range(1000)))
        assert results == [i + 1 for i in range(1000)]
        assert len(local._peers) == 1
        local.close()

    asyncio.run(main())


def test_eval_snippet_with_bindings(target: ErlangNode) -> None:
    snippet = Snippet("sum_len", "lists:sum(Numbers) + byte_size(Name).", ("Name", "Numbers"))

    async def main() -> None:
        local, remote = gateway_for(target)
        assert await remote.eval(snippet, {"Numbers": [1, 2, 3], "Name": "héllo"}) == 6 + len("héllo".encode())
        assert await remote.eval(snippet, {"Numbers": [], "Name": b""}) == 0
        with pytest.raises(ValueError, match="missing"):
            await remote.eval(snippet, {"Numbers": []})
        local.close()

    asyncio.run(main())


def test_snippet_source_is_scanned_as_characters(target: ErlangNode) -> None:
    """Non-ASCII text in a snippet means what it says: one character, not its UTF-8 bytes."""
    snippet = Snippet("chars", 'Word = "h\u00e9", {length(Word), unicode:characters_to_binary(Word)}.')

    async def main() -> None:
        local, remote = gateway_for(target)
        assert await remote.eval(snippet) == (2, "h\u00e9".encode())
        local.close()

    asyncio.run(main())


def test_atom_count_does_not_grow_with_user_names(target: ErlangNode) -> None:
    """10,000 calls carrying random user-supplied names create no atom on the target."""
    resolve = Snippet(
        "resolve",
        "try binary_to_existing_atom(Name, utf8) of A -> whereis(A) catch error:badarg -> no_such_name end.",
        ("Name",),
    )

    async def main() -> None:
        local, remote = gateway_for(target)
        await remote.eval(resolve, {"Name": "warmup"})
        before = await remote.call("erlang", "system_info", [Atom("atom_count")])
        names = [f"user_{secrets.token_hex(6)}" for _ in range(10_000)]
        for chunk in range(0, len(names), 500):
            results = await asyncio.gather(*(remote.eval(resolve, {"Name": n}) for n in names[chunk : chunk + 500]))
            assert set(results) == {Atom("no_such_name")}
        after = await remote.call("erlang", "system_info", [Atom("atom_count")])
        assert after == before
        local.close()

    asyncio.run(main())
    # and the node agrees, seen independently of beamgate
    assert target.eval("[N || N <- [user_x], false].") == "[]"


def test_echo_roundtrip_preserves_pid(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = gateway_for(target)
        await remote.connect()
        proc = local.spawn()
        ref = local.make_ref()
        proc.send((Atom("bg_echo"), target.name), (proc.pid, ref, proc.pid))
        reply = await proc.receive(timeout=5)
        assert reply == (ref, proc.pid)
        assert isinstance(reply[1], Pid)
        local.close()

    asyncio.run(main())


def test_remote_monitor_and_link_fire_on_close(target: ErlangNode) -> None:
    watcher = Snippet(
        "watch",
        """
        W = spawn(fun() ->
                R = erlang:monitor(process, Gw),
                receive {'DOWN', R, process, _, Why} -> ets:insert(Tab, {down, Why}) end
            end),
        L = spawn(fun() ->
                process_flag(trap_exit, true),
                link(Gw),
                receive {'EXIT', _, Why} -> ets:insert(Tab, {exit, Why}) end
            end),
        {W, L}.
        """,
        ("Gw", "Tab"),
    )

    async def main() -> None:
        local, remote = gateway_for(target)
        target.eval("T = ets:new(gw_watch, [public, named_table]).")
        proc = local.spawn()
        await remote.eval(watcher, {"Gw": proc.pid, "Tab": Atom("gw_watch")})
        await asyncio.sleep(0.3)
        assert target.eval("ets:tab2list(gw_watch).") == "[]"
        proc.close(Atom("session_closed"))
        assert await asyncio.to_thread(
            wait_until,
            lambda: (
                target.eval("lists:sort(ets:tab2list(gw_watch)).") == "[{down,session_closed},{exit,session_closed}]"
            ),
            5,
        ), target.eval("ets:tab2list(gw_watch).")
        local.close()

    asyncio.run(main())


def test_connection_loss_fires_target_monitors(target: ErlangNode) -> None:
    watcher = Snippet(
        "watch_noconn",
        "spawn(fun() -> R = erlang:monitor(process, Gw),"
        " receive {'DOWN', R, process, _, Why} -> ets:insert(gw_conn, {down, Why}) end end).",
        ("Gw",),
    )

    async def main() -> None:
        local, remote = gateway_for(target)
        target.eval("ets:new(gw_conn, [public, named_table]).")
        proc = local.spawn()
        await remote.eval(watcher, {"Gw": proc.pid})
        await asyncio.sleep(0.2)
        local.connection_for(target.name).close()
        assert await asyncio.to_thread(
            wait_until, lambda: target.eval("ets:tab2list(gw_conn).") == "[{down,noconnection}]", 5
        )

    asyncio.run(main())


def test_monitor_remote_process_down(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = gateway_for(target)
        pid = await remote.call("erlang", "spawn", [Atom("timer"), Atom("sleep"), [200]])
        proc = local.spawn()
        ref = proc.monitor(pid)
        assert await proc.receive(timeout=5) == (Atom("DOWN"), ref, Atom("process"), pid, Atom("normal"))
        ref2 = proc.monitor(pid)
        assert await proc.receive(timeout=5) == (Atom("DOWN"), ref2, Atom("process"), pid, Atom("noproc"))
        local.close()

    asyncio.run(main())


def test_unexpected_messages_are_dropped_and_counted(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = gateway_for(target)
        await remote.connect()
        before = local.dropped
        # The node tries to use us as an rpc server and sends to a dead pid of ours.
        target.eval(f"{{rex, '{local.name}'}} ! {{self(), {{call, os, cmd, [\"touch /tmp/pwned\"], user}}}}.")
        target.eval(f"{{some_name, '{local.name}'}} ! hello.")
        await asyncio.sleep(0.3)
        assert local.dropped >= before + 2
        local.close()

    asyncio.run(main())
    assert not Path("/tmp/pwned").exists()


def test_eval_reply_carries_only_the_value(target: ErlangNode) -> None:
    """The answer to an evaluation is its value, not the bindings (which hold the forms)."""
    snippet = Snippet("big_binding", "byte_size(Blob).", ("Blob",))

    async def main() -> None:
        local, remote = gateway_for(target)
        await remote.eval(snippet, {"Blob": b""})
        conn = local.connection_for(target.name)
        before = conn._protocol.bytes_received
        assert await remote.eval(snippet, {"Blob": b"x" * 200_000}) == 200_000
        assert conn._protocol.bytes_received - before < 1_000
        local.close()

    asyncio.run(main())


def test_undecodable_reply_fails_only_its_call(target: ErlangNode) -> None:
    """A reply nested deeper than the decoder allows fails that call; the shared connection stays up."""
    deep = Snippet("deep", "lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, Depth)).", ("Depth",))

    async def main() -> None:
        local, remote = gateway_for(target)
        await remote.connect()
        conn = local.connection_for(target.name)
        with pytest.raises(RemoteError, match="nested deeper"):
            await remote.eval(deep, {"Depth": 5000})
        assert local.connection_for(target.name) is conn
        assert await remote.eval(deep, {"Depth": 3}) == [[[[]]]]
        local.close()

    asyncio.run(main())
