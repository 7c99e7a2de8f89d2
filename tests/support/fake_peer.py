"""A distribution peer at the socket edge, for the gateway's safety tests.

Real nodes never send oversized or malformed packets, never go silent on
demand, and never answer a handshake with a wrong digest; these tests need
a peer that does. :class:`FakePeer` is a listener registered in the real
EPMD (:func:`registered`) that does the accepting side of the version 6
handshake honestly (it knows the test cookie and checks ours), then hands
the connected socket to the test, which scripts what the peer sends and
reads what the gateway sent. Only the edge is fake: the gateway side under
test is the real client.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gateway.dist import etf, flags
from gateway.dist.protocol import DistProtocol

EPMD_PORT = 4369


@contextmanager
def registered(alive: str, port: int) -> Iterator[None]:
    """Register ``alive`` in the real EPMD (ALIVE2_REQ); it stays registered while the socket is open."""
    subprocess.run(["epmd", "-daemon"], check=True)
    name = alive.encode()
    body = struct.pack(">BHBBHHH", 120, port, 77, 0, 6, 5, len(name)) + name + b"\x00\x00"
    sock = socket.create_connection(("127.0.0.1", EPMD_PORT))
    try:
        sock.sendall(struct.pack(">H", len(body)) + body)
        reply = sock.recv(16)
        assert reply[:1] in (b"y", b"v") and reply[1] == 0, f"EPMD refused the registration: {reply!r}"
        yield
    finally:
        sock.close()


def digest(cookie: bytes, challenge: int) -> bytes:
    return hashlib.md5(cookie + str(challenge).encode()).digest()


class FakePeer:
    """Accepts one gateway connection as node ``name`` and completes the handshake."""

    def __init__(self, name: str, cookie: bytes) -> None:
        self.name = name
        self.cookie = cookie
        self.connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None
        self.server: asyncio.Server | None = None
        self.port = 0
        self.creation = 4711

    async def __aenter__(self) -> FakePeer:
        loop = asyncio.get_running_loop()
        self.connected = loop.create_future()
        self.server = await asyncio.start_server(self._accept, "0.0.0.0", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        if self.connected is not None and self.connected.done() and not self.connected.exception():
            self.connected.result()[1].close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.connected is not None
        if not self.connected.done():
            self.connected.set_result((reader, writer))

    async def accept(
        self, *, handshake: bool = True, extra: bytes = b""
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The gateway's connection; with ``handshake``, after an honest handshake (``extra`` sent with the ack)."""
        assert self.connected is not None
        reader, writer = await asyncio.wait_for(self.connected, 10)
        if handshake:
            await self._handshake(reader, writer, extra)
        return reader, writer

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, extra: bytes) -> None:
        async def packet() -> bytes:
            (length,) = struct.unpack(">H", await reader.readexactly(2))
            return await reader.readexactly(length)

        def send(body: bytes) -> None:
            writer.write(struct.pack(">H", len(body)) + body)

        name_packet = await packet()
        assert name_packet[:1] == b"N"
        (gateway_flags,) = struct.unpack(">Q", name_packet[1:9])
        assert not gateway_flags & flags.PUBLISHED
        send(b"sok")
        ours = 0x5EED5EED
        raw = self.name.encode()
        send(b"N" + struct.pack(">QIIH", flags.MANDATORY | flags.DIST_MONITOR, ours, self.creation, len(raw)) + raw)
        reply = await packet()
        assert reply[:1] == b"r"
        (theirs,) = struct.unpack(">I", reply[1:5])
        assert reply[5:] == digest(self.cookie, ours), "the gateway's digest is wrong"
        writer.write(struct.pack(">H", 17) + b"a" + digest(self.cookie, theirs) + extra)
        await writer.drain()


def packet(ctrl: Any, *payload: Any) -> bytes:
    """A pass-through packet as a peer sends it."""
    return DistProtocol.encode(ctrl, *payload, with_payload=bool(payload))


async def read_packets(reader: asyncio.StreamReader, timeout: float) -> list[bytes]:
    """Every packet the gateway sends within ``timeout`` seconds (ticks are b'')."""
    packets: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            header = await asyncio.wait_for(reader.readexactly(4), max(0.0, deadline - loop.time()))
            (length,) = struct.unpack(">I", header)
            packets.append(await reader.readexactly(length))
    except (TimeoutError, asyncio.IncompleteReadError):
        return packets


def decode_packet(data: bytes) -> tuple[Any, Any]:
    """``(control, payload or None)`` of a pass-through packet body."""
    assert data[:1] == b"p"
    ctrl, pos = etf.decode_prefix(data, 1)
    payload = etf.decode_prefix(data, pos)[0] if pos < len(data) else None
    return ctrl, payload
