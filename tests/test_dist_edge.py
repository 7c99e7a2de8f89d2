"""Safety and bookkeeping at the socket edge: the real client against a scripted peer.

The peer (``tests/support/fake_peer.py``) completes an honest handshake with
the test cookie, then misbehaves on purpose: oversized or malformed packets,
silence, no reading. Each case checks that the gateway closes that one
connection with a clear logged error and stays bounded, and that its
process bookkeeping (monitors, links, pending calls) ends up consistent.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.cluster import Cluster
from gateway.config import ClusterConfig
from gateway.dist import control
from gateway.dist.connection import Connection
from gateway.dist.errors import CallTimeout, ConnectTimeout, LocalProtocolError, NodeDown, RemoteProtocolError
from gateway.dist.node import LocalNode, NodeOptions
from gateway.dist.rpc import RemoteNode, RpcClient
from gateway.dist.terms import Atom, Pid, Reference
from gateway.secret import Cookie
from tests.support.erlang import random_name, short_host
from tests.support.fake_peer import FakePeer, decode_packet, packet, read_packets, registered

COOKIE = b"edge-test-cookie"


@dataclass
class Setup:
    peer: FakePeer
    local: LocalNode
    remote: RemoteNode
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    conn: Connection

    @property
    def them(self) -> Pid:
        return Pid(Atom(self.peer.name), 77, 0, self.peer.creation)


@asynccontextmanager
async def connected(extra: bytes = b"", **options: Any) -> AsyncIterator[Setup]:
    alive = random_name("edge")
    name = f"{alive}@{short_host()}"
    async with FakePeer(name, COOKIE) as peer:
        with registered(alive, peer.port):
            local = LocalNode(f"gw_{secrets.token_hex(3)}@{short_host()}", Cookie(COOKIE), NodeOptions(**options))
            remote = RemoteNode(local, name, RpcClient(local), call_timeout=5)
            connecting = asyncio.ensure_future(local.connect(name))
            reader, writer = await peer.accept(extra=extra)
            conn = await connecting
            try:
                yield Setup(peer, local, remote, reader, writer, conn)
            finally:
                local.close()


async def closed_reason(conn: Connection, within: float) -> Any:
    return await asyncio.wait_for(asyncio.shield(conn.closed), within)


def test_oversized_packet_closes_before_its_body_arrives(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with connected(max_packet=64 * 1024) as s:
            call = asyncio.ensure_future(s.remote.call("erlang", "node", timeout=5))
            await asyncio.sleep(0.05)
            s.writer.write(struct.pack(">I", 10 * 1024 * 1024) + b"p\x83")  # the header, and no body at all
            reason = await closed_reason(s.conn, 2)
            assert isinstance(reason, RemoteProtocolError)
            assert str(reason) == (
                f"peer sent a packet of {10 * 1024 * 1024} bytes, over the limit of 65536 (clusters.*.max_packet)"
            )
            with pytest.raises(NodeDown, match="during a call"):
                await call
            assert s.local.connection_or_none(s.peer.name) is None
            await asyncio.wait_for(s.reader.read(), 2)  # returns at the end of the stream: the gateway hung up

    with caplog.at_level(logging.WARNING, "beamgate.dist"):
        asyncio.run(main())
    assert "closing connection to" in caplog.text and "over the limit of 65536" in caplog.text


def test_max_packet_is_wired_from_the_config(tmp_path: Path) -> None:
    cookie_file = tmp_path / "c.cookie"
    cookie_file.write_bytes(COOKIE)
    cookie_file.chmod(0o600)

    async def main() -> None:
        alive = random_name("edgecfg")
        name = f"{alive}@{short_host()}"
        config = ClusterConfig(name="t", cookie_file=cookie_file, nodes=(name,), max_packet=2000)
        cluster = Cluster(config)
        assert cluster.local.options.max_packet == 2000
        async with FakePeer(name, COOKIE) as peer:
            with registered(alive, peer.port):
                connecting = asyncio.ensure_future(cluster.nodes[name].connect())
                _, writer = await peer.accept()
                await connecting
                conn = cluster.local.connection_for(name)
                writer.write(packet((control.SEND, Atom(""), cluster.rpc.process.pid), b"x" * 1900))
                await asyncio.sleep(0.2)
                assert conn.is_up  # 1900 bytes of payload: under the limit
                writer.write(packet((control.SEND, Atom(""), cluster.rpc.process.pid), b"x" * 2100))
                reason = await closed_reason(conn, 2)
                assert "over the limit of 2000" in str(reason)
        cluster.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        (b"p\x83\xff", "malformed control message from peer: unknown term tag 255"),
        (b"p\x83h\x02a\x02", "malformed control message from peer: term truncated"),
        (b"\x44\x00\x00", "packet type 68"),
        (b"p" + b"\x83" + b"l\x00\x00\x00\x01" * 1000 + b"j" * 1001, "nested deeper than"),
    ],
)
def test_malformed_packet_closes_the_connection(caplog: pytest.LogCaptureFixture, garbage: bytes, message: str) -> None:
    async def main() -> None:
        async with connected() as s:
            s.writer.write(struct.pack(">I", len(garbage)) + garbage)
            reason = await closed_reason(s.conn, 2)
            assert isinstance(reason, RemoteProtocolError)
            assert message in str(reason)

    with caplog.at_level(logging.WARNING, "beamgate.dist"):
        asyncio.run(main())
    assert message in caplog.text


def test_silent_peer_is_declared_down_within_tick_timeout(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with connected(tick_interval=0.25, tick_timeout=1.0) as s:
            started = time.monotonic()
            reason = await closed_reason(s.conn, 5)
            elapsed = time.monotonic() - started
            assert isinstance(reason, NodeDown)
            assert "silent for" in str(reason) and "tick timeout 1s" in str(reason)
            assert 0.9 <= elapsed <= 2.0, elapsed

    with caplog.at_level(logging.WARNING, "beamgate.dist"):
        asyncio.run(main())
    assert "network or node hung" in caplog.text


def test_idle_gateway_sends_ticks_and_a_ticking_peer_stays_up() -> None:
    async def main() -> None:
        async with connected(tick_interval=0.2, tick_timeout=1.0) as s:

            async def peer_ticks() -> None:
                for _ in range(12):
                    s.writer.write(b"\x00\x00\x00\x00")
                    await asyncio.sleep(0.1)

            ticking = asyncio.ensure_future(peer_ticks())
            seen = await read_packets(s.reader, 1.2)
            await ticking
            assert len(seen) >= 4 and set(seen) == {b""}, seen
            assert s.conn.is_up  # 1.2 s > tick_timeout, but the peer kept ticking

    asyncio.run(main())


def test_connect_timeout_leaves_no_half_open_connection() -> None:
    async def main() -> None:
        alive = random_name("edgeslow")
        name = f"{alive}@{short_host()}"
        async with FakePeer(name, COOKIE) as peer:
            with registered(alive, peer.port):
                local = LocalNode(
                    f"gw_{secrets.token_hex(3)}@{short_host()}", Cookie(COOKIE), NodeOptions(connect_timeout=0.5)
                )
                connecting = asyncio.ensure_future(local.connect(name))
                reader, _ = await peer.accept(handshake=False)
                with pytest.raises(ConnectTimeout, match=r"timed out after 0\.5s connecting to"):
                    await connecting
                # The gateway gave up and closed its socket: the peer sees the end of the stream.
                await asyncio.wait_for(reader.read(), 2)

    asyncio.run(main())


def test_messages_arriving_with_the_ack_are_dispatched_after_registration() -> None:
    """A MONITOR_P in the same segment as the ack is recorded, so closing our process answers it."""
    ref = Reference(Atom("peer"), 1, (9, 9, 9))

    async def main() -> None:
        local_pid = Pid(Atom("placeholder"), 0, 0, 0)
        alive = random_name("edgeack")
        name = f"{alive}@{short_host()}"
        async with FakePeer(name, COOKIE) as peer:
            with registered(alive, peer.port):
                local = LocalNode(f"gw_{secrets.token_hex(3)}@{short_host()}", Cookie(COOKIE))
                proc = local.spawn()
                local_pid = proc.pid
                them = Pid(Atom(name), 5, 0, peer.creation)
                monitor = packet((control.MONITOR_P, them, local_pid, ref))
                connecting = asyncio.ensure_future(local.connect(name))
                reader, _ = await peer.accept(extra=monitor)
                await connecting
                await asyncio.sleep(0.1)
                proc.close(Atom("bye"))
                sent = [decode_packet(p) for p in await read_packets(reader, 0.5) if p]
                assert ((control.MONITOR_P_EXIT, local_pid, them, ref, Atom("bye")), None) in sent
                local.close()

    asyncio.run(main())


def test_links_monitors_and_exit_signals() -> None:
    async def main() -> None:
        async with connected() as s:
            proc = s.local.spawn()
            them, other = s.them, Pid(Atom(s.peer.name), 78, 0, s.peer.creation)
            # A link EXIT from a process we are not linked to is ignored, as erts does.
            s.writer.write(packet((control.EXIT, other, proc.pid, Atom("boom"))))
            # LINK then EXIT: delivered as {'EXIT', From, Reason} and the link is gone.
            s.writer.write(packet((control.LINK, them, proc.pid)))
            s.writer.write(packet((control.EXIT, them, proc.pid, Atom("crash"))))
            assert await proc.receive(timeout=2) == (Atom("EXIT"), them, Atom("crash"))
            assert proc.links == set()
            # exit/2 from anyone reaches a gateway process (they trap exits).
            s.writer.write(packet((control.EXIT2, other, proc.pid, Atom("kill"))))
            assert await proc.receive(timeout=2) == (Atom("EXIT"), other, Atom("kill"))
            assert proc.pending() == 0
            # A remote monitor, then its demonitor: nothing left behind, nothing sent on close.
            ref = Reference(Atom(s.peer.name), 1, (1, 2, 3))
            s.writer.write(packet((control.MONITOR_P, them, proc.pid, ref)))
            s.writer.write(packet((control.DEMONITOR_P, them, proc.pid, ref)))
            await asyncio.sleep(0.1)
            assert s.local._peers[s.peer.name].monitored_by == {}
            # LINK to a process of ours that is gone: answered with EXIT noproc.
            gone = s.local.spawn()
            gone.close()
            s.writer.write(packet((control.LINK, them, gone.pid)))
            sent = [decode_packet(p) for p in await read_packets(s.reader, 0.3) if p]
            assert ((control.EXIT, gone.pid, them, Atom("noproc")), None) in sent
            proc.close()
            assert [p for p in await read_packets(s.reader, 0.3) if p] == []

    asyncio.run(main())


def test_connection_loss_fires_down_and_exit_on_gateway_processes() -> None:
    async def main() -> None:
        async with connected() as s:
            proc = s.local.spawn()
            ref = proc.monitor(s.them)
            proc.link(s.them)
            s.writer.close()
            first, second = await proc.receive(timeout=2), await proc.receive(timeout=2)
            assert {first, second} == {
                (Atom("DOWN"), ref, Atom("process"), s.them, Atom("noconnection")),
                (Atom("EXIT"), s.them, Atom("noconnection")),
            }
            assert proc.monitors == {} and proc.links == set()

    asyncio.run(main())


def test_a_failing_message_handler_does_not_take_the_connection_down(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with connected() as s:
            seen: list[Any] = []

            def handler(message: Any) -> None:
                if message == Atom("bad"):
                    raise ValueError("handler bug")
                seen.append(message)

            proc = s.local.spawn(handler)
            for message in (Atom("bad"), Atom("good")):
                s.writer.write(packet((control.SEND, Atom(""), proc.pid), message))
            await asyncio.sleep(0.2)
            assert seen == [Atom("good")]
            assert s.conn.is_up

    with caplog.at_level(logging.ERROR, "beamgate.dist"):
        asyncio.run(main())
    assert "message handler failed" in caplog.text


def test_one_receiver_at_a_time() -> None:
    async def main() -> None:
        local = LocalNode(f"gw_{secrets.token_hex(3)}@{short_host()}", Cookie(COOKIE))
        proc = local.spawn()
        first = asyncio.ensure_future(proc.receive(timeout=1))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already has a receiver"):
            await proc.receive(timeout=1)
        proc.deliver(1)
        assert await first == 1

    asyncio.run(main())


def test_oversized_outgoing_message_is_refused_and_the_connection_stays() -> None:
    async def main() -> None:
        async with connected(max_write_buffer=64 * 1024) as s:
            proc = s.local.spawn()
            with pytest.raises(LocalProtocolError, match="exceeds the write buffer limit"):
                proc.send(s.them, b"x" * 100_000)
            assert s.conn.is_up
            proc.send(s.them, b"small")
            sent = [decode_packet(p) for p in await read_packets(s.reader, 0.3) if p]
            assert sent == [((control.SEND, Atom(""), s.them), b"small")]

    asyncio.run(main())


def test_peer_that_stops_reading_is_disconnected(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with connected(max_write_buffer=256 * 1024, tick_timeout=60) as s:
            proc = s.local.spawn()
            chunk = b"x" * 60_000
            with pytest.raises(NodeDown):
                for _ in range(2000):  # 120 MB: far more than the kernel buffers hold
                    proc.send(s.them, chunk)
                    await asyncio.sleep(0)
            reason = await closed_reason(s.conn, 1)
            assert "is not reading: over 262144 bytes queued for it" in str(reason)

    with caplog.at_level(logging.WARNING, "beamgate.dist"):
        asyncio.run(main())
    assert "is not reading" in caplog.text


def test_late_reply_after_timeout_is_dropped_and_counted() -> None:
    async def main() -> None:
        async with connected() as s:
            call = asyncio.ensure_future(s.remote.call("erlang", "node", timeout=0.2))
            (request,) = [decode_packet(p) for p in await read_packets(s.reader, 0.1) if p]
            (_, sender, _, rex), (_, (_, ref), _) = request
            assert rex == Atom("rex")
            with pytest.raises(CallTimeout, match=r"did not answer erlang:node within 0\.2s"):
                await call
            assert s.remote.rpc._waiting == {}
            s.writer.write(packet((control.SEND, Atom(""), sender), (ref, Atom("late"))))
            await asyncio.sleep(0.1)
            assert s.remote.rpc.late_replies == 1
            assert s.conn.is_up

    asyncio.run(main())
