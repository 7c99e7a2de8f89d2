"""Logins withdrawn while connected: a key removed by a reload (SIGHUP), a certificate that expires.

An OpenSSH ControlMaster keeps one authenticated connection and opens a new
channel for every ``ssh`` that goes through it, without logging in again.
So the gateway decides the connection's key or certificate again: on every
reload for every live connection (one now refused is cut off, its sessions
ended with the reason on screen), and on every new channel (a certificate
past its validity window opens nothing more). The real OpenSSH client
throughout, and a real ``beamgate serve`` for the SIGHUP.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ssh import (
    Client,
    GatewayThread,
    KeyPair,
    Served,
    keygen,
    sign,
    write_gateway_config,
)

REASON = "beamgate: disconnected: your login is no longer accepted after a configuration change (unknown key)"


def config(d: Path, users: dict[str, tuple[list[KeyPair], list[str]]], ca: KeyPair | None = None) -> Path:
    cookie = d / "cookie"
    cookie.write_text("notused\n")
    cookie.chmod(0o600)
    return write_gateway_config(
        d, cookie_file=cookie, nodes=["absent@localhost"], users=users, ca_keys=[ca] if ca else []
    )


class Master:
    """``ssh -M -N``: the connection that later ``ssh -S SOCKET`` commands open their channels on."""

    def __init__(self, client: Client, socket: Path) -> None:
        self.socket = socket
        argv = client.argv(options=["-M", "-N", "-S", str(socket), "-o", "ControlPersist=no", "-o", "LogLevel=INFO"])
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not socket.exists():
            assert self.proc.poll() is None, self.proc.communicate()[1]
            assert time.monotonic() < deadline, "the master never listened"
            time.sleep(0.05)

    @property
    def via(self) -> list[str]:
        return ["-S", str(self.socket), "-o", "ControlMaster=no"]

    def wait(self, timeout: float = 20.0) -> str:
        """Wait for the master to end (the gateway disconnected it); its stderr."""
        _, err = self.proc.communicate(timeout=timeout)
        return err.decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


@pytest.fixture
def d(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def keys(d: Path) -> dict[str, KeyPair]:
    return {name: keygen(d, name) for name in ("alice", "bob", "ca")}


def test_a_key_removed_by_a_reload_cuts_its_live_connection_off(d: Path, keys: dict[str, KeyPair]) -> None:
    alice, bob = keys["alice"], keys["bob"]
    served = Served(config(d, {"alice": ([alice], ["sre"]), "bob": ([bob], ["sre"])})).start()
    master: Master | None = None
    try:
        as_alice, as_bob = Client(served.endpoint, alice, d), Client(served.endpoint, bob, d)
        master = Master(as_alice, d / "ctl")
        shell = as_alice.shell(options=master.via)
        try:
            shell.wait_for_prompt()
            r = as_alice.run("whoami", options=master.via)  # a second channel on the same connection
            assert r.returncode == 0 and "user:    alice" in r.stdout, r.stderr
            starts = served.audit("session_start")
            assert len({e["session"].split(".")[0] for e in starts}) == 1  # one connection, two sessions

            config(d, {"bob": ([bob], ["sre"])})  # alice's key is gone
            mark = served.mark()
            assert served.proc is not None
            served.proc.send_signal(signal.SIGHUP)
            shell.wait_for(REASON)
            assert shell.wait_exit() == 1
        finally:
            shell.close()
        master.wait()  # the gateway disconnected the connection itself

        revoked = served.wait_audit("access_revoked", since=mark)
        assert (revoked["user"], revoked["reason"]) == ("alice", "unknown key")
        assert revoked["sessions"] == [starts[0]["session"]]
        end = served.wait_audit("session_end", since=mark)
        assert end["session"] == starts[0]["session"] and end["reason"] == REASON.removeprefix("beamgate: ")

        r = as_alice.run("whoami", options=master.via)  # no master any more, and a new login is refused
        assert r.returncode == 255 and "Permission denied" in r.stderr
        assert as_bob.run("whoami").returncode == 0  # bob is untouched
    finally:
        if master is not None:
            master.close()
        served.stop()


@pytest.fixture
def cert_gateway(d: Path, keys: dict[str, KeyPair]) -> Iterator[GatewayThread]:
    gw = GatewayThread(config(d, {"alice": ([keys["alice"]], ["sre"])}, ca=keys["ca"])).start()
    yield gw
    gw.stop()


def test_an_expired_certificate_opens_no_new_channel_on_its_connection(
    cert_gateway: GatewayThread, d: Path, keys: dict[str, KeyPair]
) -> None:
    gw = cert_gateway
    key = keygen(d, "certified")
    lifetime = 8
    sign(keys["ca"], key, ["alice"], validity=f"-1m:+{lifetime}s")
    signed = time.monotonic()
    client = Client(gw, key, d, cert=key.cert)
    master = Master(client, d / "ctl-cert")
    try:
        r = client.run("whoami", options=master.via)
        assert r.returncode == 0 and "user:    alice" in r.stdout, r.stderr
        time.sleep(max(lifetime + 1.5 - (time.monotonic() - signed), 0))
        mark = gw.mark()
        r = client.run("whoami", options=master.via)
        assert r.returncode == 255, r.stdout
        assert "Session open refused by peer" in r.stderr  # by the gateway, through the master
        refused = gw.wait_audit("refused_channel", lambda e: e["kind"] == "session", since=mark)
        assert refused["user"] == "alice"
        assert refused["reason"] == "your login is no longer accepted (certificate expired); log in again"
        assert gw.audit("session_start", since=mark) == []
        assert master.proc.poll() is None  # the connection itself stays: its open sessions may finish
    finally:
        master.close()
