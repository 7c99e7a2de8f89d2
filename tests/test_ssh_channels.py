"""Only session channels (SPEC safety rule 9), session limits and timeouts, end to end.

Port forwarding both ways, agent and X11 forwarding and the sftp subsystem
are refused and each leaves a ``refused_channel`` audit event; sessions are
capped per user and in total; idle and over-long sessions are ended with the
reason on the user's screen, and so is a channel that stays idle before it
asks for a shell (it cannot start one later, outside the limits); a session
that cannot be recorded is refused.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from tests.support.ssh import Client, GatewayThread, KeyPair, free_port, keygen, write_gateway_config


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("channels")


@pytest.fixture(scope="module")
def keys(d: Path) -> dict[str, KeyPair]:
    return {name: keygen(d, name) for name in ("alice", "bob")}


def start(directory: Path, keys: dict[str, KeyPair], server: str = "") -> GatewayThread:
    directory.mkdir(exist_ok=True)
    cookie = directory / "cookie"
    cookie.write_text("notused\n")
    cookie.chmod(0o600)
    config = write_gateway_config(
        directory,
        cookie_file=cookie,
        nodes=["absent@localhost"],
        users={"alice": ([keys["alice"]], ["sre"]), "bob": ([keys["bob"]], ["sre"])},
        server=server,
    )
    return GatewayThread(config).start()


@pytest.fixture(scope="module")
def gw(d: Path, keys: dict[str, KeyPair]) -> Iterator[GatewayThread]:
    g = start(d / "main", keys)
    yield g
    g.stop()


@pytest.fixture
def alice(gw: GatewayThread, keys: dict[str, KeyPair], d: Path) -> Client:
    return Client(gw, keys["alice"], d)


def refused_channel(gw: GatewayThread, kind: str, since: int) -> dict[str, object]:
    event = gw.wait_audit("refused_channel", lambda e: e["kind"] == kind, since=since)
    assert event["user"] == "alice"
    return event


# -- forwarding and subsystems ---------------------------------------------------------


def test_local_forwarding_is_refused(gw: GatewayThread, alice: Client) -> None:
    mark = gw.mark()
    port = free_port()
    argv = alice.argv(options=["-N", "-L", f"{port}:127.0.0.1:22", "-o", "LogLevel=INFO"])
    ssh = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "ssh -L never listened"
                time.sleep(0.1)
        with conn:
            assert conn.recv(100) == b""  # the gateway refused the channel: the forward closes at once
        event = refused_channel(gw, "direct-tcpip", mark)
        assert event["detail"] == "127.0.0.1:22"
    finally:
        ssh.terminate()
        try:
            _, err = ssh.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            ssh.kill()
            _, err = ssh.communicate(timeout=10)
    assert "administratively prohibited: direct-tcpip is not available on this gateway" in err


def test_remote_forwarding_is_refused(gw: GatewayThread, alice: Client) -> None:
    mark = gw.mark()
    r = alice.run(options=["-N", "-R", "0:127.0.0.1:22", "-o", "ExitOnForwardFailure=yes"])
    assert r.returncode == 255
    assert "remote port forwarding failed" in r.stderr
    refused_channel(gw, "tcpip-forward", mark)


def test_agent_forwarding_is_refused(gw: GatewayThread, alice: Client, tmp_path: Path) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        mark = gw.mark()
        argv = alice.argv("whoami", options=["-A", "-o", f"IdentityAgent={sock}"])
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        r = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        assert r.returncode == 0, r.stderr  # the session itself goes on, without an agent
        refused_channel(gw, "auth-agent", mark)
    finally:
        agent.terminate()
        agent.wait(10)


def test_x11_forwarding_is_refused(gw: GatewayThread, alice: Client, tmp_path: Path) -> None:
    mark = gw.mark()
    argv = alice.argv("whoami", options=["-X", "-o", "LogLevel=INFO"])
    env = {**os.environ, "DISPLAY": "127.0.0.1:99", "XAUTHORITY": str(tmp_path / "xauth")}
    r = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "X11 forwarding request failed" in r.stderr
    refused_channel(gw, "x11", mark)


def test_sftp_is_refused(gw: GatewayThread, alice: Client) -> None:
    mark = gw.mark()
    argv = ["sftp", *alice.options(), "-P", str(gw.port), "-b", "-", f"diag@{gw.host}"]
    r = subprocess.run(argv, input="ls\n", capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "subsystem request failed" in r.stderr
    assert refused_channel(gw, "subsystem", mark)["detail"] == "sftp"
    assert not gw.audit("session_start", since=mark)


# -- limits ---------------------------------------------------------------------------------


def test_sessions_are_capped_per_user_and_in_total(d: Path, keys: dict[str, KeyPair]) -> None:
    gw = start(d / "limits", keys, "max_sessions_per_user = 1\nmax_sessions = 2\n")
    alice, bob = Client(gw, keys["alice"], d), Client(gw, keys["bob"], d)
    shells = []
    try:
        shells.append(alice.shell())
        shells[0].wait_for("signed in as alice")
        r = alice.run("whoami", options=["-o", "LogLevel=INFO"])
        assert r.returncode == 255
        assert "alice already has 1 open sessions, the limit (server.max_sessions_per_user)" in r.stderr
        assert bob.run("whoami").returncode == 0  # others are not affected
        shells.append(bob.shell())
        shells[1].wait_for("signed in as bob")
        r = bob.run("whoami", options=["-o", "LogLevel=INFO"])
        assert r.returncode == 255 and "at its limit of 2 sessions (server.max_sessions)" in r.stderr
        refusals = gw.audit("refused_channel")
        assert [e["user"] for e in refusals] == ["alice", "bob"] and {e["kind"] for e in refusals} == {"session"}
        shells[0].send("exit\r")
        assert shells[0].wait_exit() == 0
        deadline = time.monotonic() + 10
        while alice.run("whoami").returncode != 0:
            assert time.monotonic() < deadline, "the closed session still counts"
            time.sleep(0.2)
    finally:
        for s in shells:
            s.close()
        gw.stop()


def test_idle_sessions_and_long_sessions_are_ended_with_the_reason(d: Path, keys: dict[str, KeyPair]) -> None:
    gw = start(d / "timeouts", keys, 'idle_timeout = "2s"\nmax_session = "6s"\n')
    alice = Client(gw, keys["alice"], d)
    try:
        shell = alice.shell()
        shell.wait_for("signed in as alice")
        started = time.monotonic()
        for _ in range(4):  # typing keeps it alive past the idle timeout
            time.sleep(0.8)
            shell.send("x")
        shell.send("\x15")  # and erase it again
        shell.wait_for("disconnected after 2s without input (server.idle_timeout)", timeout=10)
        assert time.monotonic() - started >= 3.2
        assert shell.wait_exit() == 1
        end = gw.wait_audit("session_end", lambda e: "idle" in e["reason"])
        assert end["user"] == "alice"

        # A session with steady input still ends at max_session.
        shell = alice.shell()
        shell.wait_for("signed in as alice")
        started = time.monotonic()
        while "time limit" not in shell.text():
            assert time.monotonic() - started < 15, shell.text()
            shell.send(" \x15")
            shell.pump(0.5)
        assert "disconnected: the session reached its time limit of 6s (server.max_session)" in shell.text()
        shell.wait_exit()

        # A connection that opens no session at all (ssh -N) is closed after idle_timeout too.
        r = alice.run(options=["-N", "-o", "LogLevel=INFO"])
        assert "no session opened for 2s (server.idle_timeout)" in r.stderr
    finally:
        gw.stop()


def test_a_session_that_cannot_be_recorded_is_refused(d: Path, keys: dict[str, KeyPair]) -> None:
    gw = start(d / "norecording", keys)
    try:
        shutil.rmtree(gw.config.recording.dir)
        gw.config.recording.dir.write_text("not a directory\n")
        r = Client(gw, keys["alice"], d).run("whoami")
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.startswith("error: this session cannot be recorded or audited (cannot create recording")
        assert not gw.audit("command")
    finally:
        gw.stop()


class _SlowToAsk(asyncssh.SSHClientSession[str]):
    """asyncssh sends a session's shell request once ``connection_made`` returns: this holds it back."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.output = ""

    def connection_made(self, chan: asyncssh.SSHClientChannel[str]) -> None:
        time.sleep(self.hold)  # this client's own event loop (the gateway runs on another)

    def data_received(self, data: str, datatype: asyncssh.DataType) -> None:
        self.output += data


def test_a_channel_idle_before_asking_for_a_shell_is_closed_and_starts_nothing(
    d: Path, keys: dict[str, KeyPair]
) -> None:
    gw = start(d / "unasked", keys, 'idle_timeout = "1s"\nmax_sessions_per_user = 1\n')

    async def open_late() -> str:
        host_key = asyncssh.import_public_key(gw.host_key_line)
        async with asyncssh.connect(
            gw.host,
            gw.port,
            username="diag",
            client_keys=[str(keys["alice"].private)],
            known_hosts=([host_key], [], []),
            agent_path=None,
        ) as conn:
            # Past the channel's idle timeout, before the connection's own (1s more once no session is left).
            try:
                chan, session = await conn.create_session(lambda: _SlowToAsk(1.6))
            except (asyncssh.Error, OSError) as exc:
                return f"refused: {exc!r}"
            await asyncio.wait_for(chan.wait_closed(), 10)
            return f"opened: {session.output!r}"

    try:
        mark = gw.mark()
        outcome = asyncio.run(open_late())
        assert outcome.startswith("refused"), outcome  # the gateway closed the channel: the request fails
        time.sleep(0.5)
        assert gw.audit("session_start", since=mark) == []
        assert gw.call(_sessions(gw)) == 0
        # nothing holds alice's one session: a normal login works at once
        assert Client(gw, keys["alice"], d).run("whoami").returncode == 0
    finally:
        gw.stop()


async def _sessions(gw: GatewayThread) -> int:
    assert gw.gateway is not None
    return len(gw.gateway.sessions)
