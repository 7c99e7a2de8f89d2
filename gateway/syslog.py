"""Forwarding audit lines to a syslog collector: RFC 5424 over UDP or TCP, best effort.

Each audit line becomes one message::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG

with facility ``authpriv`` (10) and severity ``err`` for ``recording_failed``,
``warning`` for ``auth_fail``/``denied``/``refused_channel`` and ``info``
otherwise; TIMESTAMP is the line's ``ts``, MSGID its ``event``, no
structured data, and MSG the audit line exactly as written to the file
(ASCII JSON, so RFC 5424's MSG-ANY without a BOM). Because the line carries
``seq`` and ``prev``, the collector can re-check the hash chain and notice
lost or forged messages. UDP sends one datagram per message (RFC 5426); TCP
uses octet-counting framing, ``LEN SP MSG`` (RFC 6587 section 3.4.1).

Theory of operation: :meth:`SyslogForwarder.send` only queues (bounded; when
full the oldest message is dropped and counted) and a daemon thread sends, so
a slow or dead collector never blocks a session. TCP reconnects with
exponential backoff and resends the message that failed; a UDP send error
drops that message. The local audit file remains the record of truth.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import socket
import threading
import time

from .config import SyslogConfig

log = logging.getLogger(__name__)

FACILITY_AUTHPRIV = 10
SEVERITY = {"recording_failed": 3, "auth_fail": 4, "denied": 4, "refused_channel": 4}
SEVERITY_INFO = 6
MAX_UDP_PAYLOAD = 65000


def _field(value: str, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, at most ``limit`` long, ``-`` if empty."""
    clean = re.sub(r"[^\x21-\x7e]", "_", value)[:limit]
    return clean or "-"


def format_message(line: str, *, event: str, ts: str, app_name: str, hostname: str, procid: int) -> bytes:
    """The RFC 5424 message for one audit line."""
    pri = FACILITY_AUTHPRIV * 8 + SEVERITY.get(event, SEVERITY_INFO)
    head = f"<{pri}>1 {_field(ts, 64)} {_field(hostname, 255)} {_field(app_name, 48)} {procid} {_field(event, 32)} -"
    return f"{head} {line}".encode("ascii", "backslashreplace")


class SyslogForwarder:
    """Queues messages and sends them from a background thread."""

    def __init__(self, config: SyslogConfig, *, queue_size: int = 10_000) -> None:
        self.config = config
        self.sent = 0
        self.dropped = 0
        self._hostname = socket.gethostname()
        self._queue: collections.deque[bytes] = collections.deque()
        self._queue_size = queue_size
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="beamgate-syslog", daemon=True)
        self._thread.start()

    def send(self, line: str, *, event: str, ts: str) -> None:
        """Queue one audit line; never blocks."""
        message = format_message(
            line, event=event, ts=ts, app_name=self.config.app_name, hostname=self._hostname, procid=os.getpid()
        )
        with self._cond:
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(message)
            self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued was sent (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (up to ``timeout``), then stop."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self.dropped += len(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(timeout)
        self._disconnect()

    # -- the sending thread -------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.5
        failing = False
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                message = self._queue[0]
                self._busy = True
            try:
                self._transmit(message)
                delivered = True
            except OSError as exc:
                self._disconnect()
                delivered = self.config.protocol == "udp"  # a datagram is not retried
                if delivered:
                    self.dropped += 1
                if not failing:
                    log.warning("syslog %s:%d unreachable: %s", self.config.host, self.config.port, exc)
                    failing = True
            else:
                if failing:
                    log.info("syslog %s:%d reachable again", self.config.host, self.config.port)
                failing, backoff = False, 0.5
                self.sent += 1
            with self._cond:
                if delivered and self._queue and self._queue[0] is message:
                    self._queue.popleft()
                self._busy = False
                self._cond.notify_all()
                if not delivered:
                    self._cond.wait(backoff)
                    backoff = min(backoff * 2, 30.0)

    def _transmit(self, message: bytes) -> None:
        if self.config.protocol == "udp":
            if self._sock is None:
                family, kind, proto, _, addr = socket.getaddrinfo(
                    self.config.host, self.config.port, type=socket.SOCK_DGRAM
                )[0]
                self._sock = socket.socket(family, kind, proto)
                self._sock.connect(addr)
            self._sock.send(message[:MAX_UDP_PAYLOAD])
        else:
            if self._sock is None:
                self._sock = socket.create_connection((self.config.host, self.config.port), timeout=5.0)
            self._sock.sendall(f"{len(message)} ".encode("ascii") + message)

    def _disconnect(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
