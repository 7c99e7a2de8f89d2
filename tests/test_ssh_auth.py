"""Authentication end to end with the real OpenSSH client and ``ssh-keygen -s`` certificates.

Identity comes from the key: anyone logs in as ``diag`` and the key (or the
certificate's principal) decides the user. Every refusal is "Permission
denied" for the client and a reasoned ``auth_fail`` in the audit log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ssh import Client, GatewayThread, KeyPair, keygen, sign, write_gateway_config

DENIED = "Permission denied (publickey)"


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth")


@pytest.fixture(scope="module")
def keys(d: Path) -> dict[str, KeyPair]:
    return {name: keygen(d, name) for name in ("alice", "bob", "mallory", "certkey", "ca", "rogue_ca")}


def config_for(d: Path, keys: dict[str, KeyPair], throttle: tuple[int, str, str] = (1000, "1s", "1s")) -> Path:
    cookie = d / "cookie"
    if not cookie.exists():
        cookie.write_text("notused\n")
        cookie.chmod(0o600)
    return write_gateway_config(
        d,
        cookie_file=cookie,
        nodes=["absent@localhost"],
        users={"alice": ([keys["alice"]], ["sre"]), "bob": ([keys["bob"]], ["sre"])},
        ca_keys=[keys["ca"]],
        throttle=throttle,
    )


@pytest.fixture(scope="module")
def gw(d: Path, keys: dict[str, KeyPair]) -> Iterator[GatewayThread]:
    g = GatewayThread(config_for(d, keys)).start()
    yield g
    g.stop()


def whoami(c: Client, user: str = "diag") -> dict[str, object]:
    r = c.run("whoami", "--json", user=user)
    assert r.returncode == 0 and r.stdout.startswith("{"), (r.returncode, r.stdout, r.stderr)
    me: dict[str, object] = json.loads(r.stdout)
    return me


def refused(c: Client, user: str = "diag", options: tuple[str, ...] = ()) -> None:
    r = c.run("whoami", user=user, options=options)
    assert r.returncode == 255 and DENIED in r.stderr, (r.returncode, r.stdout, r.stderr)


def last_fail(gw: GatewayThread, since: int, login: str = "diag") -> dict[str, object]:
    return gw.wait_audit("auth_fail", lambda e: e["login"] == login, since=since)


def reasons(event: dict[str, object]) -> list[str]:
    return [a["reason"] for a in event["attempts"]]  # type: ignore[attr-defined,index]


# -- plain keys ----------------------------------------------------------------------------


def test_the_key_decides_the_user(gw: GatewayThread, keys: dict[str, KeyPair], d: Path) -> None:
    me = whoami(Client(gw, keys["bob"], d))
    assert me["user"] == "bob"
    assert me["key_fingerprint"] == keys["bob"].fingerprint()
    ok = gw.wait_audit("auth_ok", lambda e: e["user"] == "bob")
    assert (ok["login"], ok["method"], ok["key_fingerprint"]) == ("diag", "publickey", keys["bob"].fingerprint())


def test_own_name_login_must_match_the_key(gw: GatewayThread, keys: dict[str, KeyPair], d: Path) -> None:
    alice = Client(gw, keys["alice"], d)
    assert whoami(alice, user="alice")["user"] == "alice"
    mark = gw.mark()
    refused(alice, user="bob")
    assert reasons(last_fail(gw, mark, "bob")) == ["key of user alice offered for login bob"]
    refused(alice, user="root")
    assert reasons(last_fail(gw, mark, "root")) == ["key of user alice offered for login root"]


def test_unknown_key_is_refused_and_audited(gw: GatewayThread, keys: dict[str, KeyPair], d: Path) -> None:
    mark = gw.mark()
    refused(Client(gw, keys["mallory"], d))
    event = last_fail(gw, mark)
    assert event["key_fingerprint"] == keys["mallory"].fingerprint()
    assert event["reason"] == "unknown key"
    assert event["user"] is None and event["client"].startswith("127.0.0.1:")


def test_a_connection_may_offer_six_keys_at_most(gw: GatewayThread, keys: dict[str, KeyPair], d: Path) -> None:
    strangers = [keygen(d, f"stranger{i}") for i in range(7)]
    identities = [arg for k in strangers for arg in ("-i", str(k.private))]
    mark = gw.mark()
    r = Client(gw, keys["alice"], d).run("whoami", options=[*identities, "-o", "LogLevel=INFO"])
    assert r.returncode == 255 and "too many authentication failures" in r.stderr, r.stderr
    assert len(last_fail(gw, mark)["attempts"]) == 6


@pytest.mark.parametrize("method", ["password", "keyboard-interactive", "none"])
def test_other_auth_methods_are_refused(gw: GatewayThread, keys: dict[str, KeyPair], d: Path, method: str) -> None:
    mark = gw.mark()
    refused(Client(gw, keys["alice"], d), options=("-o", f"PreferredAuthentications={method}"))
    assert last_fail(gw, mark)["reason"] == "no public key offered"
    assert not gw.audit("auth_ok", since=mark)


# -- certificates --------------------------------------------------------------------------


def cert_client(gw: GatewayThread, keys: dict[str, KeyPair], d: Path, principals: list[str], **kw: object) -> Client:
    ca = keys[str(kw.pop("ca", "ca"))]
    cert = sign(ca, keys["certkey"], principals, **kw)  # type: ignore[arg-type]
    return Client(gw, keys["certkey"], d, cert=cert)


def test_certificate_principal_names_the_user(gw: GatewayThread, keys: dict[str, KeyPair], d: Path) -> None:
    c = cert_client(gw, keys, d, ["alice"])
    me = whoami(c)
    assert me["user"] == "alice"
    assert me["key_fingerprint"] == keys["certkey"].fingerprint(c.cert)
    assert me["login"] == {"method": "certificate", "ca_fingerprint": keys["ca"].fingerprint(), "as": "diag"}
    assert whoami(c, user="alice")["user"] == "alice"
    mark = gw.mark()
    refused(c, user="bob")
    assert "certificate principals ['alice'] do not include login bob" in reasons(last_fail(gw, mark, "bob"))


@pytest.mark.parametrize(
    "principals, validity, ca, reason",
    [
        (["alice"], "-2h:-1h", "ca", "certificate expired"),
        (["alice"], "+1h:+2h", "ca", "certificate not yet valid"),
        (["eve"], "-5m:+1h", "ca", "certificate principals ['eve'] name no configured user"),
        (["alice"], "-5m:+1h", "rogue_ca", "certificate signed by an untrusted CA"),
        (["alice", "bob"], "-5m:+1h", "ca", "certificate names several users ['alice', 'bob']"),
    ],
)
def test_bad_certificates_are_refused(
    gw: GatewayThread, keys: dict[str, KeyPair], d: Path, principals: list[str], validity: str, ca: str, reason: str
) -> None:
    c = cert_client(gw, keys, d, principals, validity=validity, ca=ca)
    fp = keys["certkey"].fingerprint()
    mark = gw.mark()
    refused(c)
    event = last_fail(gw, mark)
    cert_reasons = [r for a, r in zip(event["attempts"], reasons(event), strict=True) if a["key_fingerprint"] == fp]
    assert any(r.startswith(reason) for r in cert_reasons), reasons(event)


def test_a_certificate_naming_several_users_works_under_one_of_their_names(
    gw: GatewayThread, keys: dict[str, KeyPair], d: Path
) -> None:
    c = cert_client(gw, keys, d, ["alice", "bob"])
    assert whoami(c, user="bob")["user"] == "bob"


def test_force_command_replaces_what_is_asked(gw: GatewayThread, keys: dict[str, KeyPair], d: Path) -> None:
    c = cert_client(gw, keys, d, ["alice"], options=["force-command=whoami --json"])
    r = c.run("help")
    assert r.returncode == 0, r.stderr
    me = json.loads(r.stdout)
    assert me["user"] == "alice" and me["login"]["force_command"] == "whoami --json"
    r = c.run(options=("-T",))  # a shell request runs the forced command too
    assert r.returncode == 0 and json.loads(r.stdout)["user"] == "alice"
    start = gw.wait_audit("session_start", lambda e: e["forced"])
    assert start["command"] == "whoami --json"


def test_source_address_is_honoured(gw: GatewayThread, keys: dict[str, KeyPair], d: Path) -> None:
    assert whoami(cert_client(gw, keys, d, ["alice"], options=["source-address=127.0.0.0/8"]))["user"] == "alice"
    mark = gw.mark()
    refused(cert_client(gw, keys, d, ["alice"], options=["source-address=10.9.9.0/24"]))
    event = last_fail(gw, mark)
    assert any("source-address does not allow 127.0.0.1" in r for r in reasons(event))


# -- throttling ----------------------------------------------------------------------------


def test_failed_logins_are_delayed_then_locked_out(tmp_path: Path, keys: dict[str, KeyPair], d: Path) -> None:
    gw = GatewayThread(config_for(tmp_path, keys, (3, "60s", "30s"))).start()
    try:
        mallory, alice = Client(gw, keys["mallory"], tmp_path), Client(gw, keys["alice"], tmp_path)
        took = []
        for _ in range(3):
            started = time.monotonic()
            refused(mallory)
            took.append(time.monotonic() - started)
        assert took[1] >= took[0] + 0.4 and took[2] >= took[0] + 0.9, took  # 0.5 s, then 1 s more
        assert gw.wait_audit("auth_fail", lambda e: e["locked_out"])["reason"] == "unknown key"
        # Locked out: even a good key is turned away, with the reason.
        r = alice.run("whoami", options=("-o", "LogLevel=INFO"))
        assert r.returncode == 255
        assert "too many failed logins from 127.0.0.1; try again in 30s" in r.stderr, r.stderr
        locked = gw.wait_audit("auth_fail", lambda e: "locked out" in e["reason"])
        assert locked["login"] == "diag"
        assert not gw.audit("auth_ok")
    finally:
        gw.stop()
