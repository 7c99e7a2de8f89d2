"""asyncio adapter for one distribution connection (handshake, then packets).

All protocol decisions live in :mod:`.handshake` and :mod:`.protocol`; this
module only moves bytes, keeps time (ticks both ways), and reports
connection loss to its owner, the :class:`~gateway.dist.node.LocalNode`.

Ticks: the peer expects to hear from us at least every ``net_ticktime`` and
sends a tick itself every ``net_ticktime / 4`` when idle. We send a tick
whenever we have been silent for ``tick_interval``, and declare the peer
lost when nothing at all has arrived for ``tick_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import control
from .errors import DistError, NodeDown, ProtocolError
from .handshake import ClientHandshake, PeerInfo
from .protocol import TICK_PACKET, DistProtocol, Tick

if TYPE_CHECKING:
    from .node import LocalNode

log = logging.getLogger("beamgate.dist")

#: Close the connection if this much outgoing data is queued (peer not reading).
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
    ) -> None:
        self.owner = owner
        self.peer_name = handshake.expected_peer
        self._handshake: ClientHandshake | None = handshake
        self._protocol = DistProtocol(max_packet=max_packet)
        self._transport: asyncio.Transport | None = None
        self._tick_interval = tick_interval
        self._tick_timeout = tick_timeout
        self._tick_handle: asyncio.TimerHandle | None = None
        self._last_received = time.monotonic()
        self._last_sent = time.monotonic()
        loop = asyncio.get_running_loop()
        #: Resolves with the peer's info when the handshake completes.
        self.ready: asyncio.Future[PeerInfo] = loop.create_future()
        #: Resolves (never fails) with the reason when the connection is gone.
        self.closed: asyncio.Future[DistError] = loop.create_future()
        self.peer: PeerInfo | None = None
        self.connected_at = 0.0
        self._on_ready: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        state = "up" if self.is_up else "down" if self.closed.done() else "handshaking"
        return f"<Connection to {self.peer_name} {state}>"

    @property
    def is_up(self) -> bool:
        return self.peer is not None and not self.closed.done()

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
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

    def send(self, ctrl: tuple[Any, ...], payload: Any = None, *, with_payload: bool = False) -> None:
        """Send one control message (and payload). Raises :class:`NodeDown` if gone."""
        if not self.is_up:
            raise NodeDown(f"not connected to {self.peer_name}")
        self._write(DistProtocol.encode(ctrl, payload, with_payload=with_payload))

    def send_message(self, msg: tuple[tuple[Any, ...], Any]) -> None:
        """Send an ``(control, payload)`` pair as built by :mod:`.control`."""
        ctrl, payload = msg
        self.send(ctrl, payload, with_payload=ctrl[0] in control.WITH_PAYLOAD)

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise NodeDown(f"not connected to {self.peer_name}")
        transport.write(data)
        self._last_sent = time.monotonic()
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self._abort(NodeDown(f"{self.peer_name} is not reading; {MAX_WRITE_BUFFER} bytes queued"))

    def close(self, reason: DistError | None = None) -> None:
        self._abort(reason or NodeDown(f"connection to {self.peer_name} closed by the gateway"))

    # -- internals ---------------------------------------------------------------

    def _on_handshake_done(self, peer: PeerInfo) -> None:
        self._handshake = None
        self.peer = peer
        self.connected_at = time.monotonic()
        self._schedule_tick()
        if not self.ready.done():
            self.ready.set_result(peer)

    def _schedule_tick(self) -> None:
        loop = asyncio.get_running_loop()
        self._tick_handle = loop.call_later(self._tick_interval / 2, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_received > self._tick_timeout:
            self._abort(
                NodeDown(
                    f"{self.peer_name} silent for {now - self._last_received:.0f}s "
                    f"(tick timeout {self._tick_timeout:g}s): network or node hung"
                )
            )
            return
        if now - self._last_sent >= self._tick_interval / 2:
            try:
                self._write(TICK_PACKET)
            except DistError:
                return
        self._schedule_tick()

    def _abort(self, error: DistError) -> None:
        if isinstance(error, ProtocolError):
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
