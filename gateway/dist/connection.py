"""asyncio adapter for one distribution connection (handshake, then packets).

All protocol decisions live in :mod:`.handshake` and :mod:`.protocol`; this
module only moves bytes, keeps time (ticks both ways), and reports the
connection's life to its owner, the :class:`~gateway.dist.node.LocalNode`:
``connection_up`` when the handshake completes (before any packet that
arrived with the ack is dispatched), ``dispatch`` for each message, and
``connection_closed`` once when it ends, whatever ended it.

Ticks: the peer expects to hear from us at least every ``net_ticktime`` and
sends a tick itself every ``net_ticktime / 4`` when idle. We send a tick
when we have sent nothing for ``tick_interval``, and declare the peer lost
when nothing at all has arrived for ``tick_timeout``.

Memory: incoming packets are bounded by ``max_packet`` (see
:mod:`.protocol`); outgoing data queued for a peer that does not read is
bounded by ``max_write_buffer``. Past it the connection is closed with a
logged error; a single message larger than the limit is refused to its
sender, and the connection stays up.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any, cast

from . import control
from .errors import DistError, HandshakeFailed, LocalProtocolError, NodeDown, ProtocolError
from .handshake import ClientHandshake, PeerInfo
from .protocol import TICK_PACKET, DistProtocol, Tick

if TYPE_CHECKING:
    from .node import LocalNode

log = logging.getLogger("beamgate.dist")

#: Default bound on outgoing data queued for one peer.
MAX_WRITE_BUFFER = 32 * 1024 * 1024


class Connection(asyncio.Protocol):
    def __init__(
        self,
        owner: LocalNode,
        handshake: ClientHandshake,
        *,
        tick_interval: float,
        tick_timeout: float,
        max_packet: int,
        max_write_buffer: int = MAX_WRITE_BUFFER,
    ) -> None:
        self.owner = owner
        self.peer_name = handshake.expected_peer
        self._handshake: ClientHandshake | None = handshake
        self._protocol = DistProtocol(max_packet=max_packet)
        self._transport: asyncio.Transport | None = None
        self._tick_interval = tick_interval
        self._tick_timeout = tick_timeout
        self._max_write_buffer = max_write_buffer
        self._tick_handle: asyncio.TimerHandle | None = None
        self._last_received = time.monotonic()
        self._last_sent = time.monotonic()
        #: Writes made after the first one in the current loop iteration (see _write).
        self._batch: list[bytes] | None = None
        self._batched = 0
        loop = asyncio.get_running_loop()
        #: Resolves with the peer's info when the handshake completes.
        self.ready: asyncio.Future[PeerInfo] = loop.create_future()
        #: Resolves (never fails) with the reason when the connection is gone.
        self.closed: asyncio.Future[DistError] = loop.create_future()
        self.peer: PeerInfo | None = None
        self.connected_at = 0.0
        self.ticks_sent = 0

    def __repr__(self) -> str:
        state = "up" if self.is_up else "down" if self.closed.done() else "handshaking"
        return f"<Connection to {self.peer_name} {state}>"

    @property
    def is_up(self) -> bool:
        return self.peer is not None and not self.closed.done()

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any event loop's stream transport (uvloop's is not an asyncio.Transport subclass).
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        assert self._handshake is not None
        transport.write(self._handshake.start())

    def data_received(self, data: bytes) -> None:
        self._last_received = time.monotonic()
        try:
            if self._handshake is not None:
                reply = self._handshake.receive_data(data)
                if reply:
                    self._write(reply)
                if self._handshake.peer is None:
                    return
                data = self._handshake.leftover
                self._on_handshake_done(self._handshake.peer)
                if not data:
                    return
            self._protocol.receive_data(data)
            dispatch = self.owner.dispatch
            for event in self._protocol.events():
                if type(event) is not Tick:
                    dispatch(self, event)  # type: ignore[arg-type]
        except DistError as exc:
            self._abort(exc)

    def eof_received(self) -> bool | None:
        return None  # let connection_lost run

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, ssl.SSLError) and not self.ready.done():
            self._finish(tls_failure(self.peer_name, exc))
            return
        if self._handshake is not None and not self.ready.done():
            try:
                self._handshake.connection_lost()
                error: DistError = NodeDown(f"connection to {self.peer_name} closed during the handshake")
            except DistError as diagnosis:
                error = diagnosis
            self._finish(error)
            return
        detail = f": {exc}" if exc else ""
        self._finish(NodeDown(f"connection to {self.peer_name} lost{detail}"))

    # -- sending -----------------------------------------------------------------

    def send(self, ctrl: Any, payload: Any = None, *, with_payload: bool = False) -> None:
        """Send one control message (and payload). Raises :class:`NodeDown` if gone.

        ``ctrl`` is a control tuple, or an :class:`~gateway.dist.etf.Raw` of
        one that the caller sends often.
        """
        if not self.is_up:
            raise NodeDown(f"not connected to {self.peer_name}")
        packet = DistProtocol.encode(ctrl, payload, with_payload=with_payload)
        if len(packet) > self._max_write_buffer:
            raise LocalProtocolError(
                f"message of {len(packet)} bytes for {self.peer_name} exceeds the write buffer limit "
                f"({self._max_write_buffer} bytes); not sent"
            )
        self._write(packet)

    def send_message(self, msg: tuple[tuple[Any, ...], Any]) -> None:
        """Send an ``(control, payload)`` pair as built by :mod:`.control`."""
        ctrl, payload = msg
        self.send(ctrl, payload, with_payload=ctrl[0] in control.WITH_PAYLOAD)

    def _write(self, data: bytes) -> None:
        """Write now if this is the first write of this loop iteration, else batch it.

        Under load many calls resume in one iteration and each sends a
        request; batching them costs one system call instead of one each. A
        lone call still goes out at once.
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            raise NodeDown(f"not connected to {self.peer_name}")
        self._last_sent = time.monotonic()
        batch = self._batch
        if batch is None:
            transport.write(data)
            self._batch = []
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            batch.append(data)
            self._batched += len(data)
            if self._batched < self._max_write_buffer:
                return
            self._flush(keep_batching=True)
        self._check_write_buffer()

    def _flush(self, *, keep_batching: bool = False) -> None:
        batch, self._batch, self._batched = self._batch, [] if keep_batching else None, 0
        transport = self._transport
        if batch and transport is not None and not transport.is_closing():
            transport.write(b"".join(batch))
            self._check_write_buffer()

    def _check_write_buffer(self) -> None:
        assert self._transport is not None
        if self._transport.get_write_buffer_size() > self._max_write_buffer:
            self._abort(
                NodeDown(f"{self.peer_name} is not reading: over {self._max_write_buffer} bytes queued for it"),
                warn=True,
            )

    def close(self, reason: DistError | None = None) -> None:
        self._abort(reason or NodeDown(f"connection to {self.peer_name} closed by the gateway"))

    # -- internals ---------------------------------------------------------------

    def _on_handshake_done(self, peer: PeerInfo) -> None:
        self._handshake = None
        self.peer = peer
        self.connected_at = time.monotonic()
        self.owner.connection_up(self)
        self._schedule_tick(self._tick_interval)
        self.ready.set_result(peer)

    def _schedule_tick(self, delay: float) -> None:
        self._tick_handle = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        silent = now - self._last_received
        if silent >= self._tick_timeout:
            self._abort(
                NodeDown(
                    f"{self.peer_name} silent for {silent:.1f}s (tick timeout {self._tick_timeout:g}s): "
                    "network or node hung"
                ),
                warn=True,
            )
            return
        if now - self._last_sent >= self._tick_interval:
            try:
                self._write(TICK_PACKET)
            except DistError:
                return
            self.ticks_sent += 1
        if self.closed.done():
            return
        next_send = self._last_sent + self._tick_interval - now
        deadline = self._last_received + self._tick_timeout - now
        self._schedule_tick(max(0.001, min(next_send, deadline)))

    def _abort(self, error: DistError, *, warn: bool = False) -> None:
        if warn or isinstance(error, ProtocolError):
            log.warning("closing connection to %s: %s", self.peer_name, error)
        if self._transport is not None:
            self._transport.abort()
        self._finish(error)

    def _finish(self, error: DistError) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # mark retrieved: connect() reports it
        if not self.closed.done():
            self.closed.set_result(error)
            if self.peer is not None:
                self.owner.connection_closed(self, error)


def tls_failure(peer: str, exc: ssl.SSLError) -> HandshakeFailed:
    """One clear error for a failed TLS handshake: the OpenSSL reason and what it usually means."""
    reason = exc.reason or str(exc)
    hints = {
        "CERTIFICATE_VERIFY_FAILED": "the node's certificate is not signed by the cluster's cafile, or names another host",
        "TLSV1_ALERT_UNKNOWN_CA": "the node does not trust our certificate; certfile is not signed by its CA",
        "SSLV3_ALERT_BAD_CERTIFICATE": "the node rejected our certificate",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the node requires a client certificate",
        "WRONG_VERSION_NUMBER": "the node does not speak TLS on its distribution port; is it an inet_tls_dist node?",
    }
    hint = hints.get(reason)
    return HandshakeFailed(f"TLS with {peer} failed ({reason}): {hint}" if hint else f"TLS with {peer} failed: {reason}")
