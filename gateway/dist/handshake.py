"""The distribution handshake, initiator side (node ``A``), as a pure state machine.

Quoted from OTP's ``erl_dist_protocol``, *The Handshake in Detail*: every
handshake message is preceded by a 2-byte big-endian length, and

1. ``send_name``: ``'N' Flags:8 Creation:4 Nlen:2 Name``
2. ``recv_status``: ``'s' Status`` with status ``ok``, ``ok_simultaneous``,
   ``nok``, ``not_allowed`` or ``alive`` (then we answer ``'s' true``)
3. ``recv_challenge``: ``'N' Flags:8 Challenge:4 Creation:4 Nlen:2 Name``
4. ``send_challenge_reply``: ``'r' Challenge:4 Digest:16`` where the digest is
   ``md5(Cookie ++ integer_to_list(ChallengeB))``
5. ``recv_challenge_ack``: ``'a' Digest:16``; we check it against our own
   challenge, so the peer proves it holds the cookie too (mutual
   authentication): an impostor that accepts anyone is refused.

After the ack the connection switches to 4-byte packet headers. Over TLS
(``inet_tls_dist``) the handshake itself already uses 4-byte headers: OTP
opens the TLS socket in ``{packet, 4}`` mode (observed on OTP 25: a 2-byte
header is read as the start of a 4-byte length and the node waits for a
packet of megabytes until its setup timer fires), hence ``header_size``.

Use::

    hs = ClientHandshake(name, flags, creation, cookie, expected_peer)
    transport.write(hs.start())
    ... on data:  transport.write(hs.receive_data(data)); if hs.peer: done
    ... on EOF:   hs.connection_lost() raises the diagnosis
"""

from __future__ import annotations

import enum
import secrets
import struct
from dataclasses import dataclass

from ..secret import Cookie
from . import flags as dflags
from .errors import CookieRejected, HandshakeFailed, PeerAuthFailed, RemoteProtocolError

MAX_HANDSHAKE_PACKET = 4096


class State(enum.Enum):
    SEND_NAME = "send_name"
    AWAIT_STATUS = "await_status"
    AWAIT_CHALLENGE = "await_challenge"
    AWAIT_ACK = "await_ack"
    CONNECTED = "connected"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What the handshake learned about the peer."""

    name: str
    flags: int
    creation: int


_HEADERS = {2: struct.Struct(">H"), 4: struct.Struct(">I")}
#: First bytes of a TLS alert or handshake record (content type, major version 3).
_TLS_RECORDS = (0x15, 0x16)


class ClientHandshake:
    def __init__(
        self,
        our_name: str,
        our_flags: int,
        creation: int,
        cookie: Cookie,
        expected_peer: str,
        *,
        challenge: int | None = None,
        header_size: int = 2,
    ) -> None:
        if our_flags & dflags.PUBLISHED:
            raise ValueError("beamgate is a hidden node: DFLAG_PUBLISHED must not be set")
        self.our_name = our_name
        self.our_flags = our_flags
        self.creation = creation
        self.expected_peer = expected_peer
        self._cookie = cookie
        self._our_challenge = secrets.randbits(32) if challenge is None else challenge
        self._header = _HEADERS[header_size]
        self._buffer = bytearray()
        self.state = State.SEND_NAME
        self.peer: PeerInfo | None = None
        self._pending_peer: PeerInfo | None = None
        #: Bytes that arrived after the ack: the first packets of the connection.
        self.leftover = b""

    def __repr__(self) -> str:
        return f"ClientHandshake({self.our_name!r} -> {self.expected_peer!r}, {self.state.value})"

    def start(self) -> bytes:
        """The ``send_name`` packet."""
        if self.state is not State.SEND_NAME:
            raise RuntimeError("handshake already started")
        self.state = State.AWAIT_STATUS
        name = self.our_name.encode("utf-8")
        return self._packet(b"N" + struct.pack(">QIH", self.our_flags, self.creation, len(name)) + name)

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes from the peer; return the bytes to send back (maybe empty)."""
        self._buffer += data
        out = bytearray()
        while self.state not in (State.CONNECTED, State.FAILED):
            packet = self._next_packet()
            if packet is None:
                break
            out += self._handle(packet)
        if self.state is State.CONNECTED:
            self.leftover = bytes(self._buffer)
            self._buffer.clear()
        return bytes(out)

    def connection_lost(self) -> None:
        """The peer closed the socket: raise the error that explains why."""
        state, self.state = self.state, State.FAILED
        peer = self.expected_peer
        if state is State.AWAIT_ACK:
            raise CookieRejected(
                f"{peer} rejected our cookie (handshake failed after our digest): "
                "the cluster's cookie_file does not hold this node's cookie"
            )
        if state is State.AWAIT_STATUS:
            raise HandshakeFailed(
                f"{peer} closed the connection before answering our name: it refuses "
                "connections from our node name (long vs short names mismatch, "
                "or net_kernel allow list)"
            )
        if state is State.AWAIT_CHALLENGE:
            raise HandshakeFailed(f"{peer} closed the connection after accepting our name")
        if state is not State.CONNECTED:
            raise HandshakeFailed(f"{peer} closed the connection during the handshake")

    # -- internals -----------------------------------------------------------

    def _packet(self, body: bytes) -> bytes:
        return self._header.pack(len(body)) + body

    def _next_packet(self) -> bytes | None:
        size = self._header.size
        if len(self._buffer) < size:
            return None
        (length,) = self._header.unpack_from(self._buffer)
        if self.state is State.AWAIT_STATUS and self._buffer[0] in _TLS_RECORDS and self._buffer[1] == 3:
            self._fail(
                HandshakeFailed(
                    f"{self.expected_peer} answered with TLS: it is an inet_tls_dist node "
                    "(configure tls for its cluster)"
                )
            )
        if length > MAX_HANDSHAKE_PACKET:
            self._fail(RemoteProtocolError(f"handshake packet of {length} bytes from {self.expected_peer}"))
        if len(self._buffer) < size + length:
            return None
        packet = bytes(self._buffer[size : size + length])
        del self._buffer[: size + length]
        if not packet:
            self._fail(RemoteProtocolError("empty handshake packet"))
        return packet

    def _fail(self, error: Exception) -> None:
        self.state = State.FAILED
        raise error

    def _handle(self, packet: bytes) -> bytes:
        tag = packet[:1]
        if self.state is State.AWAIT_STATUS:
            if tag != b"s":
                self._fail(RemoteProtocolError(f"expected a status message, got tag {tag!r}"))
            return self._on_status(packet[1:].decode("latin-1"))
        if self.state is State.AWAIT_CHALLENGE:
            if tag != b"N" or len(packet) < 19:
                self._fail(RemoteProtocolError("expected a version 6 challenge ('N')"))
            return self._on_challenge(packet)
        if self.state is State.AWAIT_ACK:
            if tag != b"a" or len(packet) != 17:
                self._fail(RemoteProtocolError("expected a challenge ack ('a')"))
            self._on_ack(packet[1:])
            return b""
        self._fail(RemoteProtocolError(f"unexpected handshake message in state {self.state.value}"))
        return b""  # pragma: no cover

    def _on_status(self, status: str) -> bytes:
        peer = self.expected_peer
        if status in ("ok", "ok_simultaneous"):
            self.state = State.AWAIT_CHALLENGE
            return b""
        if status == "alive":
            # A connection under our name is still up on the peer: it is a
            # previous incarnation of this gateway whose loss the peer has not
            # noticed yet. Take over (answer true), as net_kernel does.
            self.state = State.AWAIT_CHALLENGE
            return self._packet(b"strue")
        if status == "not_allowed":
            self._fail(HandshakeFailed(f"{peer} does not allow connections from {self.our_name}"))
        if status == "nok":
            self._fail(HandshakeFailed(f"{peer} is connecting to us at the same time (nok)"))
        self._fail(HandshakeFailed(f"{peer} refused the connection (status {status!r})"))
        return b""  # pragma: no cover

    def _on_challenge(self, packet: bytes) -> bytes:
        peer_flags, challenge, creation, nlen = struct.unpack_from(">QIIH", packet, 1)
        name = packet[19 : 19 + nlen].decode("utf-8", "replace")
        if name != self.expected_peer:
            self._fail(HandshakeFailed(f"asked for {self.expected_peer} but {name} answered"))
        missing = dflags.missing_mandatory(peer_flags)
        if missing:
            self._fail(HandshakeFailed(f"{name} lacks mandatory distribution flags: {', '.join(missing)}"))
        self._pending_peer = PeerInfo(name, peer_flags, creation)
        self.state = State.AWAIT_ACK
        digest = self._cookie.digest(challenge)
        return self._packet(b"r" + struct.pack(">I", self._our_challenge) + digest)

    def _on_ack(self, digest: bytes) -> None:
        if not self._cookie.verify(self._our_challenge, digest):
            self._fail(
                PeerAuthFailed(
                    f"{self.expected_peer} answered our challenge with a wrong digest: "
                    "it does not hold the cluster cookie (impostor or misconfiguration)"
                )
            )
        self.peer = self._pending_peer
        self.state = State.CONNECTED
