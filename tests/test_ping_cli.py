"""``beamgate ping`` as users run it: the real CLI in a subprocess, against real EPMD and nodes.

Failures are staged for real: a closed EPMD port, a name EPMD does not
know, a name registered in the real EPMD (``ALIVE2_REQ`` from a socket this
test keeps open) that points at a closed port or at a listener that never
answers, a wrong cookie file, and an impostor registered in EPMD that
answers the handshake with a wrong digest. The impostor is a fake peer at
the socket edge on purpose: what is under test is our mutual
authentication.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gateway.dist import flags
from tests.support.erlang import ErlangNode, random_cookie, random_name, short_host
from tests.support.fake_peer import registered

ROOT = Path(__file__).resolve().parent.parent


def ping(config: Path, *nodes: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "ping", "--config", str(config), *nodes],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )


def config_for(tmp_path: Path, nodes: list[str], cookie_file: Path, **cluster: str) -> Path:
    settings = {"connect_timeout": '"2s"', "call_timeout": '"5s"', **cluster}
    extra = "".join(f"{key} = {value}\n" for key, value in settings.items())
    names = ", ".join(f'"{n}"' for n in nodes)
    path = tmp_path / "beamgate.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:2222"  # never bound by ping
host_key = "state/host_key"

[clusters.test]
cookie_file = "{cookie_file}"
nodes = [{names}]
{extra}
[recording]
dir = "state/recordings"
signing_key = "state/recording_key"

[audit]
path = "state/audit.jsonl"
"""
    )
    return path


def a_cookie_file(tmp_path: Path, value: str | None = None) -> Path:
    path = tmp_path / f"{secrets.token_hex(4)}.cookie"
    path.write_text((value or random_cookie()) + "\n")
    path.chmod(0o600)
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_epmd() -> None:
    subprocess.run(["epmd", "-daemon"], check=True)


def assert_one_line(result: subprocess.CompletedProcess[str], pattern: str) -> str:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    assert re.fullmatch(pattern, lines[0]), lines[0]
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    return lines[0]


def test_ok(target: ErlangNode, tmp_path: Path) -> None:
    result = ping(config_for(tmp_path, [target.name], target.cookie_file))
    assert result.returncode == 0, result.stdout + result.stderr
    release = target.runtime.release
    assert re.fullmatch(rf"ok {re.escape(target.name)} otp={release} rtt=\d+\.\dms\n", result.stdout)
    assert target.cookie not in result.stdout + result.stderr


def test_named_nodes_only_and_unknown_node(target: ErlangNode, tmp_path: Path) -> None:
    config = config_for(tmp_path, [target.name], target.cookie_file)
    result = ping(config, target.name, "ghost@nowhere")
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"ok {target.name} ")
    assert lines[1] == "unknown_node ghost@nowhere: not in any configured cluster"
    assert result.returncode == 1


def test_epmd_unreachable(tmp_path: Path) -> None:
    node = f"app@{short_host()}"
    result = ping(config_for(tmp_path, [node], a_cookie_file(tmp_path), epmd_port=str(closed_port())))
    assert_one_line(
        result,
        rf"epmd_unreachable {node}: epmd unreachable on {short_host()}:\d+ \(connection refused\): "
        "no Erlang node is running there, or epmd listens on another port",
    )


def test_not_registered(tmp_path: Path) -> None:
    ensure_epmd()
    node = f"{random_name('nosuch')}@{short_host()}"
    result = ping(config_for(tmp_path, [node], a_cookie_file(tmp_path)))
    assert_one_line(
        result,
        rf"not_registered {node}: node {node} is not registered in epmd on {short_host()} "
        r"\(registered there: .*\): the node is not running, or its name differs",
    )


def test_connection_refused(tmp_path: Path) -> None:
    alive = random_name("refusing")
    node = f"{alive}@{short_host()}"
    port = closed_port()
    with registered(alive, port):
        result = ping(config_for(tmp_path, [node], a_cookie_file(tmp_path)))
    assert_one_line(
        result,
        rf"connection_refused {node}: connection refused by {node} on port {port}: epmd lists the node "
        r"but nothing listens there \(the node is stopping or hung, or a firewall rejects the port\)",
    )


def test_cookie_rejected(target: ErlangNode, tmp_path: Path) -> None:
    wrong = a_cookie_file(tmp_path, "not-" + target.cookie)
    result = ping(config_for(tmp_path, [target.name], wrong))
    assert_one_line(
        result,
        rf"cookie_rejected {target.name}: {target.name} rejected our cookie \(handshake failed after our digest\): "
        "the cluster's cookie_file does not hold this node's cookie",
    )
    assert target.cookie not in result.stdout + result.stderr


def test_timed_out(tmp_path: Path) -> None:
    alive = random_name("silent")
    node = f"{alive}@{short_host()}"
    with socket.socket() as listener:  # the kernel accepts connections; nobody ever answers
        listener.bind(("0.0.0.0", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        with registered(alive, port):
            result = ping(config_for(tmp_path, [node], a_cookie_file(tmp_path), connect_timeout='"1s"'))
    assert_one_line(
        result,
        rf"timeout {node}: timed out after 1s connecting to {node} on port {port} "
        r"\(the node or a firewall is not answering\)",
    )


def impostor(listener: socket.socket, name: str) -> None:
    """Answers one handshake as ``name`` without knowing the cookie: its final digest is made up."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)

        def read_packet() -> bytes:
            (length,) = struct.unpack(">H", conn.recv(2, socket.MSG_WAITALL))
            return conn.recv(length, socket.MSG_WAITALL)

        assert read_packet()[:1] == b"N"
        conn.sendall(struct.pack(">H", 3) + b"sok")
        raw = name.encode()
        challenge = b"N" + struct.pack(">QIIH", flags.MANDATORY | flags.PUBLISHED, 42, 1, len(raw)) + raw
        conn.sendall(struct.pack(">H", len(challenge)) + challenge)
        reply = read_packet()
        assert reply[:1] == b"r" and len(reply) == 21
        conn.sendall(struct.pack(">H", 17) + b"a" + hashlib.md5(b"guess" + reply[1:5]).digest())
        conn.recv(1)  # until the gateway hangs up


def test_peer_auth_failed(tmp_path: Path) -> None:
    alive = random_name("impostor")
    node = f"{alive}@{short_host()}"
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen(1)
        thread = threading.Thread(target=impostor, args=(listener, node), daemon=True)
        thread.start()
        with registered(alive, listener.getsockname()[1]):
            result = ping(config_for(tmp_path, [node], a_cookie_file(tmp_path)))
        thread.join(10)
    assert_one_line(
        result,
        rf"peer_auth_failed {node}: {node} answered our challenge with a wrong digest: "
        r"it does not hold the cluster cookie \(impostor or misconfiguration\)",
    )


def test_several_nodes_one_line_each(target: ErlangNode, tmp_path: Path) -> None:
    ghost = f"{random_name('gone')}@{short_host()}"
    result = ping(config_for(tmp_path, [target.name, ghost], target.cookie_file))
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"ok {target.name} otp=")
    assert lines[1].startswith(f"not_registered {ghost}: ")
    assert result.returncode == 1


@pytest.mark.parametrize("mode", [0o644])
def test_cookie_file_mode_refused(tmp_path: Path, mode: int) -> None:
    cookie = a_cookie_file(tmp_path)
    cookie.chmod(mode)
    result = ping(config_for(tmp_path, [f"app@{short_host()}"], cookie))
    assert result.returncode == 1
    assert f"has mode 0644; it must be 0400 or 0600 (run: chmod 600 {cookie})" in result.stderr
    assert cookie.read_text().strip() not in result.stdout + result.stderr
