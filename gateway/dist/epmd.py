"""EPMD client: find the distribution port of a node (``PORT_PLEASE2_REQ``).

The byte layouts are pure functions (:func:`port_please2_request`,
:func:`parse_port2_response`, :func:`parse_names_response`); :func:`lookup`
and :func:`names` do the I/O. The gateway never registers itself in EPMD
(``ALIVE2_REQ``): it is a hidden node that only ever connects out.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass

from .errors import (
    ConnectTimeout,
    EpmdUnreachable,
    HostResolutionError,
    NodeNotRegistered,
    RemoteProtocolError,
)

EPMD_PORT = 4369
PORT_PLEASE2_REQ = 122
PORT2_RESP = 119
NAMES_REQ = 110
NODE_TYPE_NORMAL = 77
NODE_TYPE_HIDDEN = 72
_MAX_REPLY = 64 * 1024


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """``PORT2_RESP`` with ``Result = 0``."""

    port: int
    node_type: int
    protocol: int
    highest_version: int
    lowest_version: int
    name: str


def port_please2_request(alive: str) -> bytes:
    body = bytes((PORT_PLEASE2_REQ,)) + alive.encode("utf-8")
    return struct.pack(">H", len(body)) + body


def parse_port2_response(data: bytes) -> NodeInfo | None:
    """Decode a complete ``PORT2_RESP``; ``None`` when the node is not registered."""
    if len(data) < 2 or data[0] != PORT2_RESP:
        raise RemoteProtocolError("epmd sent something that is not a PORT2_RESP")
    if data[1] != 0:
        return None
    if len(data) < 12:
        raise RemoteProtocolError("epmd sent a truncated PORT2_RESP")
    port, node_type, protocol, high, low, nlen = struct.unpack_from(">HBBHHH", data, 2)
    name = data[12 : 12 + nlen].decode("utf-8", "replace")
    return NodeInfo(port, node_type, protocol, high, low, name)


def names_request() -> bytes:
    return struct.pack(">HB", 1, NAMES_REQ)


def parse_names_response(data: bytes) -> list[tuple[str, int]]:
    """``NAMES_RESP``: the EPMD port then lines ``name NAME at port PORT``."""
    result = []
    for line in data[4:].decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == "name" and parts[2] == "at" and parts[4].isdigit():
            result.append((parts[1], int(parts[4])))
    return result


async def _exchange(host: str, port: int, request: bytes, timeout: float) -> bytes:
    """Send one request to EPMD and read until it closes the socket."""
    try:
        async with asyncio.timeout(timeout):
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                if isinstance(exc, socket.gaierror):
                    raise HostResolutionError(f"cannot resolve host {host!r}: {exc.strerror}") from None
                if isinstance(exc, ConnectionRefusedError):
                    raise EpmdUnreachable(
                        f"epmd unreachable on {host}:{port} (connection refused): "
                        "no Erlang node is running there, or epmd listens on another port"
                    ) from None
                raise EpmdUnreachable(f"epmd unreachable on {host}:{port}: {exc.strerror or exc}") from None
            try:
                writer.write(request)
                await writer.drain()
                data = b""
                while chunk := await reader.read(_MAX_REPLY):
                    data += chunk
                    if len(data) > _MAX_REPLY:
                        raise RemoteProtocolError(f"epmd on {host}:{port} sent more than {_MAX_REPLY} bytes")
                return data
            finally:
                writer.close()
    except TimeoutError:
        raise ConnectTimeout(f"timed out after {timeout:g}s talking to epmd on {host}:{port}") from None


async def lookup(host: str, alive: str, *, port: int = EPMD_PORT, timeout: float = 5.0) -> NodeInfo:
    """Ask EPMD on ``host`` for the distribution port of node ``alive``."""
    data = await _exchange(host, port, port_please2_request(alive), timeout)
    if not data:
        raise RemoteProtocolError(
            f"epmd on {host}:{port} closed the connection without answering (is that port really epmd's?)"
        )
    info = parse_port2_response(data)
    if info is None:
        try:
            registered = [name for name, _ in await names(host, port=port, timeout=timeout)]
        except Exception:  # best effort: the diagnosis is still right without the list
            registered = []
        listing = ", ".join(registered) if registered else "none"
        raise NodeNotRegistered(
            f"node {alive}@{host} is not registered in epmd on {host} "
            f"(registered there: {listing}): the node is not running, or its name differs"
        )
    return info


async def names(host: str, *, port: int = EPMD_PORT, timeout: float = 5.0) -> list[tuple[str, int]]:
    """The ``(name, port)`` pairs EPMD on ``host`` knows."""
    return parse_names_response(await _exchange(host, port, names_request(), timeout))
