"""EPMD: the byte layouts (pure), and the client against a scripted EPMD at the socket edge."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from gateway.dist import epmd
from gateway.dist.errors import ConnectTimeout, NodeNotRegistered, RemoteProtocolError


def port2_resp(port: int = 40123, name: bytes = b"app", result: int = 0) -> bytes:
    if result:
        return bytes((epmd.PORT2_RESP, result))
    return (
        bytes((epmd.PORT2_RESP, 0))
        + struct.pack(">HBBHHH", port, epmd.NODE_TYPE_NORMAL, 0, 6, 5, len(name))
        + name
        + b"\x00\x00"
    )


def test_port_please2_request() -> None:
    assert epmd.port_please2_request("app") == b"\x00\x04zapp"
    assert epmd.port_please2_request("n\u00e9") == b"\x00\x04zn\xc3\xa9"


def test_names_request() -> None:
    assert epmd.names_request() == b"\x00\x01n"


def test_parse_port2_response() -> None:
    info = epmd.parse_port2_response(port2_resp())
    assert info == epmd.NodeInfo(40123, epmd.NODE_TYPE_NORMAL, 0, 6, 5, "app")


def test_parse_port2_not_registered() -> None:
    assert epmd.parse_port2_response(port2_resp(result=1)) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"w", "not a PORT2_RESP"),
        (b"x\x00", "not a PORT2_RESP"),
        (b"w\x00\x9c\x7b", "truncated PORT2_RESP"),
    ],
)
def test_parse_port2_malformed(data: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        epmd.parse_port2_response(data)


def test_parse_names_response() -> None:
    data = struct.pack(">I", 4369) + b"name app at port 40123\nname other_1 at port 1234\ngarbage line\n"
    assert epmd.parse_names_response(data) == [("app", 40123), ("other_1", 1234)]
    assert epmd.parse_names_response(struct.pack(">I", 4369)) == []


# -- the client, against a scripted EPMD ----------------------------------------


@asynccontextmanager
async def scripted_epmd(answer: Callable[[bytes], bytes | None]) -> AsyncIterator[int]:
    """An EPMD stand-in: reads one request, writes ``answer(request)`` and closes (None: stays silent)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        (length,) = struct.unpack(">H", await reader.readexactly(2))
        reply = answer(await reader.readexactly(length))
        if reply is None:
            await asyncio.sleep(10)
        else:
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def test_lookup_found() -> None:
    async def main() -> None:
        async with scripted_epmd(lambda req: port2_resp() if req == b"zapp" else None) as port:
            info = await epmd.lookup("127.0.0.1", "app", port=port, timeout=2)
            assert info.port == 40123

    asyncio.run(main())


def test_lookup_not_registered_lists_what_is() -> None:
    def answer(req: bytes) -> bytes:
        if req[:1] == b"n":
            return struct.pack(">I", 4369) + b"name web at port 1\nname db at port 2\n"
        return port2_resp(result=1)

    async def main() -> None:
        async with scripted_epmd(answer) as port:
            with pytest.raises(
                NodeNotRegistered, match=r"app@127.0.0.1 is not registered .*\(registered there: web, db\)"
            ):
                await epmd.lookup("127.0.0.1", "app", port=port, timeout=2)

    asyncio.run(main())


def test_lookup_empty_answer() -> None:
    async def main() -> None:
        async with scripted_epmd(lambda req: b"") as port:
            with pytest.raises(RemoteProtocolError, match="closed the connection without answering"):
                await epmd.lookup("127.0.0.1", "app", port=port, timeout=2)

    asyncio.run(main())


def test_lookup_oversized_answer() -> None:
    async def main() -> None:
        async with scripted_epmd(lambda req: port2_resp() + bytes(200_000)) as port:
            with pytest.raises(RemoteProtocolError, match="more than 65536 bytes"):
                await epmd.lookup("127.0.0.1", "app", port=port, timeout=2)

    asyncio.run(main())


def test_lookup_silent_epmd_times_out() -> None:
    async def main() -> None:
        async with scripted_epmd(lambda req: None) as port:
            with pytest.raises(ConnectTimeout, match=r"timed out after 0\.3s talking to epmd"):
                await epmd.lookup("127.0.0.1", "app", port=port, timeout=0.3)

    asyncio.run(main())
