"""Audit lines forwarded to real local syslog listeners (RFC 5424 over UDP and TCP)."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest

from gateway.config import SyslogConfig
from gateway.syslog import SyslogForwarder, format_message
from tests.support.recordings import CANARY, load, open_audit, write_config

RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\d+) (?P<msgid>\S+) - (?P<msg>.*)$", re.S
)


class TcpCollector:
    """A syslog-over-TCP receiver that splits octet-counted frames (RFC 6587)."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.port = self.server.getsockname()[1]
        self.messages: list[bytes] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while chunk := conn.recv(65536):
                buf += chunk
                while b" " in buf:
                    size, rest = buf.split(b" ", 1)
                    if len(rest) < int(size):
                        break
                    self.messages.append(rest[: int(size)])
                    buf = rest[int(size) :]

    def wait_for(self, n: int, timeout: float = 10) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages

    def close(self) -> None:
        self.server.close()


def config_with_syslog(tmp_path: Path, protocol: str, port: int) -> Path:
    return write_config(
        tmp_path,
        extra=f'[audit.syslog]\naddress = "127.0.0.1:{port}"\nprotocol = "{protocol}"\napp_name = "bg-test"\n',
    )


def check_message(message: bytes, line: bytes, event: str, severity: int) -> None:
    m = RFC5424.match(message)
    assert m, message
    assert int(m["pri"]) == 10 * 8 + severity  # authpriv
    assert m["app"] == b"bg-test" and m["msgid"] == event.encode()
    assert m["ts"] == re.search(rb'"ts":"([^"]+)"', line)[1]  # type: ignore[index]
    assert m["msg"] == line  # the exact line of the file: the collector can check the chain
    assert CANARY.encode() not in message


def emit_three(tmp_path: Path, config_path: Path) -> list[bytes]:
    config = load(config_path)
    log = open_audit(config)
    log.emit("auth_ok", user="alice", client="127.0.0.1:4000")
    log.emit("auth_fail", user=f"x{CANARY}", client="127.0.0.1:4001", reason=f"bad key {CANARY}")
    log.emit("command", user="alice", line=f"state {CANARY}", node="app@h")
    log.close()  # flushes the forwarder
    return config.audit.path.read_bytes().splitlines()


def test_udp(tmp_path: Path) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    lines = emit_three(tmp_path, config_with_syslog(tmp_path, "udp", receiver.getsockname()[1]))
    messages = [receiver.recv(65536) for _ in range(3)]
    receiver.close()
    for message, line, (event, severity) in zip(
        messages, lines, [("auth_ok", 6), ("auth_fail", 4), ("command", 6)], strict=True
    ):
        check_message(message, line, event, severity)


def test_tcp(tmp_path: Path) -> None:
    collector = TcpCollector()
    lines = emit_three(tmp_path, config_with_syslog(tmp_path, "tcp", collector.port))
    messages = collector.wait_for(3)
    collector.close()
    assert len(messages) == 3
    for message, line, (event, severity) in zip(
        messages, lines, [("auth_ok", 6), ("auth_fail", 4), ("command", 6)], strict=True
    ):
        check_message(message, line, event, severity)


def test_tcp_collector_down_then_up(tmp_path: Path) -> None:
    """Events queue while the collector is down and arrive, in order, once it listens; nothing blocks."""
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    forwarder = SyslogForwarder(SyslogConfig("127.0.0.1", port, "tcp", "bg-test"))
    began = time.monotonic()
    for i in range(3):
        forwarder.send(f'{{"n":{i}}}', event="command", ts="2024-05-01T00:00:00Z")
    assert time.monotonic() - began < 0.1  # send never waits on the network
    assert not forwarder.flush(timeout=0.5)
    collector = TcpCollector(port)
    try:
        assert forwarder.flush(timeout=15)
        messages = collector.wait_for(3)
        assert [m.rsplit(b" ", 1)[1] for m in messages] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
        assert forwarder.sent == 3 and forwarder.dropped == 0
    finally:
        forwarder.close()
        collector.close()


def test_full_queue_drops_oldest() -> None:
    forwarder = SyslogForwarder(SyslogConfig("127.0.0.1", 9, "tcp", "x"), queue_size=2)
    for i in range(5):
        forwarder.send(str(i), event="command", ts="-")
    assert forwarder.dropped >= 3
    forwarder.close(timeout=0.2)


@pytest.mark.parametrize(
    ("event", "pri"), [("recording_failed", 83), ("denied", 84), ("refused_channel", 84), ("session_start", 86)]
)
def test_header_fields(event: str, pri: int) -> None:
    message = format_message("{}", event=event, ts="2024-05-01T00:00:00.5Z", app_name="my app", hostname="", procid=7)
    assert message == f"<{pri}>1 2024-05-01T00:00:00.5Z - my_app 7 {event} - {{}}".encode()
