"""Login decisions and throttling as pure logic (no sockets), on keys and certificates made by ssh-keygen."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest

from gateway.auth import KeyDirectory, Login, LoginThrottle, Refusal
from tests.support.ssh import KeyPair, keygen, sign


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    d = tmp_path_factory.mktemp("keys")
    return {n: keygen(d, n) for n in ("alice", "bob", "stranger", "ca", "other_ca")}


@pytest.fixture(scope="module")
def directory(keys: dict[str, KeyPair]) -> KeyDirectory:
    return KeyDirectory("diag", {"alice": [keys["alice"].line], "bob": [keys["bob"].line]}, [keys["ca"].line])


def blob(path: Path) -> bytes:
    text = path.read_text()
    obj = asyncssh.import_certificate(text) if "-cert" in path.name else asyncssh.import_public_key(text)
    return bytes(obj.public_data)


def test_keys(directory: KeyDirectory, keys: dict[str, KeyPair]) -> None:
    login = directory.decide("diag", blob(keys["alice"].public), "127.0.0.1")
    assert isinstance(login, Login)
    assert (login.user, login.method, login.key_fingerprint) == ("alice", "publickey", keys["alice"].fingerprint())
    assert login.authorized_line.split()[:2] == keys["alice"].line.split()[:2]
    assert isinstance(directory.decide("alice", blob(keys["alice"].public), "127.0.0.1"), Login)
    assert directory.decide("bob", blob(keys["alice"].public), "127.0.0.1") == Refusal(
        "key of user alice offered for login bob", keys["alice"].fingerprint()
    )
    assert directory.decide("diag", blob(keys["stranger"].public), "127.0.0.1") == Refusal(
        "unknown key", keys["stranger"].fingerprint()
    )
    assert isinstance(directory.decide("diag", b"\x00\x00\x00\x03xyz", "127.0.0.1"), Refusal)


def test_certificates(directory: KeyDirectory, keys: dict[str, KeyPair]) -> None:
    stranger = keys["stranger"]
    cert = sign(keys["ca"], stranger, ["bob"], options=["force-command=info", "source-address=10.0.0.0/8"])
    login = directory.decide("diag", blob(cert), "10.1.2.3")
    assert isinstance(login, Login)
    assert (login.user, login.method, login.force_command) == ("bob", "certificate", "info")
    assert login.key_fingerprint == stranger.fingerprint()
    assert login.authorized_line.startswith('cert-authority,principals="bob" ssh-ed25519 ')
    assert directory.decide("diag", blob(cert), "192.168.1.1") == Refusal(
        "certificate source-address does not allow 192.168.1.1", stranger.fingerprint()
    )

    def reason(principals: list[str], login: str = "diag", **kw: object) -> str:
        decision = directory.decide(login, blob(sign(keys[str(kw.pop("ca", "ca"))], stranger, principals, **kw)), "::1")  # type: ignore[arg-type]
        assert isinstance(decision, Refusal)
        return decision.reason

    assert reason(["bob"], validity="-2d:-1d") == "certificate expired"
    assert reason(["bob"], validity="+1d:+2d") == "certificate not yet valid"
    assert reason(["bob"], ca="other_ca").startswith("certificate signed by an untrusted CA SHA256:")
    assert reason(["mallory"]) == "certificate principals ['mallory'] name no configured user"
    assert reason([]) == "certificate has no principals"
    assert (
        reason(["alice", "bob"]) == "certificate names several users ['alice', 'bob']: log in under one of those names"
    )
    assert reason(["bob"], login="alice") == "certificate principals ['bob'] do not include login alice"


def test_throttle_delays_grow_then_lock_out_and_expire() -> None:
    now = [1000.0]
    t = LoginThrottle(3, window=60, lockout=300, clock=lambda: now[0])
    assert t.state("a").delay == 0
    assert t.failure("a").delay == 0.5
    assert t.failure("a").delay == 1.0
    assert t.state("b").delay == 0  # per address
    locked = t.failure("a")
    assert locked.locked and locked.locked_for == 300
    now[0] += 299
    assert t.state("a").locked
    now[0] += 2
    assert t.state("a").delay == 0 and not t.state("a").locked  # the lockout ran out and the slate is clean


def test_throttle_window_and_success() -> None:
    now = [0.0]
    t = LoginThrottle(3, window=60, lockout=300, clock=lambda: now[0])
    t.failure("a")
    t.failure("a")
    now[0] += 61  # old failures fall out of the window
    assert t.state("a").delay == 0
    assert not t.failure("a").locked
    t.success("a")
    assert t.state("a").delay == 0


def test_throttle_memory_is_bounded() -> None:
    t = LoginThrottle(5, window=60, lockout=300, max_addresses=10)
    for i in range(100):
        t.failure(f"10.0.0.{i}")
    assert t.state("10.0.0.99").delay == 0.5
    assert t.state("10.0.0.0").delay == 0  # forgotten
