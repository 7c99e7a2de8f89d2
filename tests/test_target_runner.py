"""Bounded evaluation on real nodes: every bound trips cleanly and the node stays healthy."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from gateway.config import SafetyConfig
from gateway.dist.node import LocalNode
from gateway.dist.rpc import RemoteNode, RpcClient, Snippet
from gateway.dist.terms import Atom
from gateway.secret import Cookie
from gateway.target import BoundedTarget, TargetError
from tests.support.erlang import ErlangNode, short_host, wait_until

SAFETY = SafetyConfig(max_heap=8 * 1024 * 1024, eval_timeout=2.0, max_reply=64 * 1024)


def connect(node: ErlangNode) -> tuple[LocalNode, RemoteNode]:
    local = LocalNode(f"beamgate_{secrets.token_hex(3)}@{short_host()}", Cookie(node.cookie.encode()))
    return local, RemoteNode(local, node.name, RpcClient(local))


def test_value_and_bindings(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = connect(target)
        t = BoundedTarget(remote, local.spawn(), SAFETY)
        assert await t.run(Snippet("len", "length(L) * K.", ("K", "L")), {"L": [1, 2, 3], "K": 2}) == 6
        local.close()

    asyncio.run(main())


def test_thrown_error_has_kind(target: ErlangNode) -> None:
    snippet = Snippet(
        "lookup",
        "case whereis(binary_to_existing_atom(N, utf8)) of undefined -> throw({beamgate, no_such_process, N});"
        " P -> P end.",
        ("N",),
    )

    async def main() -> None:
        local, remote = connect(target)
        t = BoundedTarget(remote, local.spawn(), SAFETY)
        with pytest.raises(TargetError, match="badarg") as err:
            await t.run(snippet, {"N": f"never_an_atom_{secrets.token_hex(6)}"})
        assert err.value.kind == "raised"
        with pytest.raises(TargetError) as err2:
            await t.run(snippet, {"N": b"kernel"})  # an existing atom, not registered
        assert err2.value.kind == "no_such_process"
        assert err2.value.detail == b"kernel"
        local.close()

    asyncio.run(main())


def test_exception_is_reported(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = connect(target)
        t = BoundedTarget(remote, local.spawn(), SAFETY)
        with pytest.raises(TargetError, match="badarith") as err:
            await t.run(Snippet("boom", "1 / Zero.", ("Zero",)), {"Zero": 0})
        assert err.value.kind == "raised"
        local.close()

    asyncio.run(main())


def test_unicode_atoms_in_errors_are_one_line_messages(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = connect(target)
        t = BoundedTarget(remote, local.spawn(), SAFETY)
        with pytest.raises(TargetError) as raised:
            await t.run(Snippet("euro", 'erlang:error({bad_name, list_to_atom([8364 | "uro"])}).'))
        assert raised.value.kind == "raised"
        assert str(raised.value).startswith(f"failed on {target.name}: {{error,{{bad_name,'€uro'}},")
        # A thrown detail too large to send as it is travels formatted (depth-limited).
        with pytest.raises(TargetError) as thrown:
            await t.run(Snippet("big", "throw({beamgate, odd, {list_to_atom([8364]), lists:seq(1, 3000)}})."))
        assert thrown.value.kind == "odd"
        assert thrown.value.detail.decode() == "{'€',[1,2,3,4,5,6,7,8,9|...]}"
        local.close()

    asyncio.run(main())


def test_heap_limit_kills_worker_node_healthy(target: ErlangNode) -> None:
    hog = Snippet("hog", "lists:seq(1, 50000000).")

    async def main() -> None:
        local, remote = connect(target)
        t = BoundedTarget(remote, local.spawn(), SAFETY)
        with pytest.raises(TargetError, match="more than 8 MiB of heap") as err:
            await t.run(hog)
        assert err.value.kind == "heap_limit"
        assert await t.run(Snippet("ok", "ok.")) == Atom("ok")
        local.close()

    asyncio.run(main())
    assert target.eval_int("length(processes()) > 0, 1.") == 1


def test_timeout_kills_worker(target: ErlangNode) -> None:
    sleeper = Snippet("sleeper", "register(bg_sleeper, self()), timer:sleep(60000).")

    async def main() -> None:
        local, remote = connect(target)
        t = BoundedTarget(remote, local.spawn(), SAFETY)
        with pytest.raises(TargetError, match=r"time limit of 0\.5s") as err:
            await t.run(sleeper, timeout=0.5)
        assert err.value.kind == "timeout"
        local.close()

    asyncio.run(main())
    assert wait_until(lambda: target.eval("whereis(bg_sleeper).") == "undefined", 3)


def test_reply_cap(target: ErlangNode) -> None:
    async def main() -> None:
        local, remote = connect(target)
        t = BoundedTarget(remote, local.spawn(), SAFETY)
        with pytest.raises(TargetError, match="exceeds the reply cap") as err:
            await t.run(Snippet("big", "binary:copy(<<0>>, 100000)."))
        assert err.value.kind == "reply_too_large"
        local.close()

    asyncio.run(main())


def test_owner_end_kills_worker(target: ErlangNode) -> None:
    """Ctrl-C / session end: closing the owner process kills the remote work at once."""
    sleeper = Snippet("sleeper2", "register(bg_sleeper2, self()), timer:sleep(60000).")

    async def main() -> None:
        local, remote = connect(target)
        owner = local.spawn()
        t = BoundedTarget(remote, owner, SAFETY)
        task = asyncio.ensure_future(t.run(sleeper, timeout=30))
        assert await asyncio.to_thread(wait_until, lambda: target.eval("is_pid(whereis(bg_sleeper2)).") == "true", 5)
        owner.close()
        task.cancel()
        assert await asyncio.to_thread(wait_until, lambda: target.eval("whereis(bg_sleeper2).") == "undefined", 3)
        local.close()

    asyncio.run(main())


def test_connection_loss_kills_worker(target: ErlangNode) -> None:
    sleeper = Snippet("sleeper3", "register(bg_sleeper3, self()), timer:sleep(60000).")

    async def main() -> None:
        local, remote = connect(target)
        t = BoundedTarget(remote, local.spawn(), SAFETY)
        task = asyncio.ensure_future(t.run(sleeper, timeout=30))
        assert await asyncio.to_thread(wait_until, lambda: target.eval("is_pid(whereis(bg_sleeper3)).") == "true", 5)
        local.connection_for(target.name).close()
        with pytest.raises(Exception, match=r"lost|closed"):
            await task
        assert await asyncio.to_thread(wait_until, lambda: target.eval("whereis(bg_sleeper3).") == "undefined", 3)

    asyncio.run(main())
