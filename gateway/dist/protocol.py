"""The connected state of a distribution connection, without I/O.

After the handshake every packet has a 4-byte big-endian length. A zero
length is a tick (keep-alive). beamgate does not negotiate the distribution
header (no ``DFLAG_DIST_HDR_ATOM_CACHE``, no ``DFLAG_FRAGMENTS``), so every
packet is in the pass-through format::

    Length:4  112  ControlMessage  [Message]

where both terms carry their own version byte (131).

:class:`DistProtocol` buffers incoming bytes and yields :class:`Tick` and
parsed control messages; :meth:`DistProtocol.encode` builds outgoing packets.
Incoming packets larger than ``max_packet`` close the connection with a
:class:`RemoteProtocolError` before any of their body is buffered beyond the
header, so a hostile or broken peer cannot exhaust the gateway's memory.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import control, etf
from .errors import LocalProtocolError, RemoteProtocolError

PASS_THROUGH = 112
TICK_PACKET = b"\x00\x00\x00\x00"
DEFAULT_MAX_PACKET = 64 * 1024 * 1024

_LEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A message payload the decoder refused; ``head`` is its first tuple element if readable."""

    reason: str
    size: int
    head: Any = None


@dataclass(frozen=True, slots=True)
class Tick:
    pass


TICK = Tick()


class DistProtocol:
    def __init__(self, *, max_packet: int = DEFAULT_MAX_PACKET, max_depth: int = etf.DEFAULT_MAX_DEPTH) -> None:
        self.max_packet = max_packet
        self.max_depth = max_depth
        self._buffer = bytearray()
        self.bytes_received = 0
        self.packets_received = 0
        #: Payloads refused by the decoder (each delivered as an :class:`Undecodable`).
        self.undecodable = 0

    def receive_data(self, data: bytes) -> None:
        self._buffer += data
        self.bytes_received += len(data)

    def events(self) -> Iterator[Tick | control.ControlMessage]:
        """Yield every complete packet in the buffer, parsed."""
        buf = self._buffer
        pos = 0
        end = len(buf)
        try:
            while end - pos >= 4:
                (length,) = _LEN.unpack_from(buf, pos)
                if length > self.max_packet:
                    raise RemoteProtocolError(
                        f"peer sent a packet of {length} bytes, over the limit of {self.max_packet} "
                        "(clusters.*.max_packet)"
                    )
                if end - pos - 4 < length:
                    break
                packet = bytes(buf[pos + 4 : pos + 4 + length])
                pos += 4 + length
                self.packets_received += 1
                if not packet:
                    yield TICK
                else:
                    yield self.parse_packet(packet)
        finally:
            del buf[:pos]

    def parse_packet(self, packet: bytes) -> control.ControlMessage:
        """Parse one non-empty packet: ``112 ControlMessage [Message]``."""
        if packet[0] != PASS_THROUGH:
            raise RemoteProtocolError(
                f"packet type {packet[0]} (expected pass-through 112; distribution header not negotiated)"
            )
        decoder = etf.Decoder(packet, max_depth=self.max_depth, max_inflated=self.max_packet)
        try:
            ctrl, pos = decoder.versioned(1)
        except etf.DecodeError as exc:
            raise RemoteProtocolError(f"malformed control message from peer: {exc}") from None
        payload: Any = None
        if pos < len(packet):
            # Packets are length-framed, so a payload we refuse to decode (too
            # deep, too large when inflated, malformed) costs only this message;
            # the connection, shared by every session, stays in sync and up.
            try:
                payload, end = decoder.versioned(pos)
            except etf.DecodeError as exc:
                self.undecodable += 1
                payload = Undecodable(str(exc), len(packet) - pos, decoder.tuple_head(pos))
            else:
                if end != len(packet):
                    raise RemoteProtocolError(f"{len(packet) - end} stray bytes after a message")
        message = control.parse(ctrl, payload)
        if payload is None and ctrl[0] in control.WITH_PAYLOAD:
            raise RemoteProtocolError(f"control message {ctrl[0]} without its payload")
        return message

    @staticmethod
    def encode(ctrl: Any, payload: Any = None, *, with_payload: bool = False) -> bytes:
        """One outgoing packet: length, 112, control term and optional payload term."""
        parts: list[bytes] = [b"p"]
        try:
            etf.encode_into(ctrl, parts)
            if with_payload or payload is not None:
                etf.encode_into(payload, parts)
        except etf.EncodeError as exc:
            raise LocalProtocolError(str(exc)) from None
        body = b"".join(parts)
        return _LEN.pack(len(body)) + body
