"""``beamgate check-config FILE``: each kind of mistake is reported with its key path and a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from tests.support.ssh import keygen


def write(tmp_path: Path, body: str, *, cookie_mode: int = 0o600) -> Path:
    cookie = tmp_path / "prod.cookie"
    cookie.write_text("secretcookie\n")
    cookie.chmod(cookie_mode)
    key = keygen(tmp_path, "alice").line
    path = tmp_path / "beamgate.toml"
    path.write_text(
        f"""
[clusters.prod]
cookie_file = "{cookie}"
nodes = ["app@host1"]

[users.alice]
keys = ["{key}"]
roles = ["sre"]

[roles.sre]
commands = ["*"]
nodes = ["*"]
{body}
"""
    )
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(["check-config", str(path)])
    out = capsys.readouterr().out
    return status, out.splitlines()


def test_a_good_config_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = check(write(tmp_path, ""), capsys)
    assert (status, lines) == (0, ["ok: 1 cluster(s), 1 node(s), 1 user(s), 1 role(s)"])


@pytest.mark.parametrize(
    "body, expected",
    [
        ('[server]\nlisten_on = "0.0.0.0:22"\n', "error: server.listen_on: unknown key"),
        ('[audit]\npath = "a.jsonl"\nrotate = true\n', "error: audit.rotate: unknown key"),
        ('[server]\nidle_timeout = "soon"\n', "error: server.idle_timeout: 'soon' is not a duration"),
        ('[server]\nmax_session = "8 hours"\n', "error: server.max_session: '8 hours' is not a duration"),
        (
            '[server]\ntrusted_user_ca_keys = ["ssh-ed25519 AAAAnotakey ca"]\n',
            "error: server.trusted_user_ca_keys[0]: not an OpenSSH public key",
        ),
        (
            '[users.bob]\nkeys = ["ssh-rsa AAAA... bob@contractor"]\nroles = ["sre"]\n',
            "error: users.bob.keys[0]: not an OpenSSH public key",
        ),
        (
            '[roles.contractor]\ncommands = ["info", "frobnicate"]\nnodes = ["*"]\n',
            "error: roles.contractor.commands[1]: unknown command 'frobnicate'",
        ),
    ],
)
def test_each_mistake_names_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str
) -> None:
    status, lines = check(write(tmp_path, body), capsys)
    assert status == 1
    assert any(line.startswith(expected) for line in lines), lines


def test_cookie_file_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "", cookie_mode=0o644)
    status, lines = check(path, capsys)
    cookie = tmp_path / "prod.cookie"
    assert status == 1
    assert lines == [
        f"error: clusters.prod.cookie_file: cookie file {cookie} has mode 0644; it must be 0400 or 0600 "
        f"(run: chmod 600 {cookie})"
    ]
    cookie.unlink()
    status, lines = check(path, capsys)
    assert (status, lines) == (1, [f"error: clusters.prod.cookie_file: cookie file {cookie} does not exist"])
    cookie.mkdir()
    status, lines = check(path, capsys)
    assert (status, lines) == (1, [f"error: clusters.prod.cookie_file: cookie file {cookie} is not a regular file"])


def test_all_problems_are_listed_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[server]\nidle_timeout = "soon"\nbogus = 1\n', cookie_mode=0o666)
    status, lines = check(path, capsys)
    assert status == 1
    assert [line.split(":")[1].strip() for line in lines] == [
        "server.idle_timeout",
        "server.bogus",
        "clusters.prod.cookie_file",
    ]


def with_alice(tmp_path: Path, body: str) -> Path:
    """``write``'s config, then ``body`` with ``{alice}`` replaced by the key ``write`` gave alice."""
    path = write(tmp_path, "")
    alice = (tmp_path / "alice.pub").read_text().strip()
    path.write_text(path.read_text() + body.replace("{alice}", alice))
    return path


def test_a_key_listed_under_two_users_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The key decides who you are: one key under two users would always log in as the first one."""
    bob = keygen(tmp_path, "bob").line
    # the same key with another comment: still the same key
    body = '[users.bob]\nkeys = ["' + bob + '", "{alice}-laptop"]\nroles = ["sre"]\n'
    status, lines = check(with_alice(tmp_path, body), capsys)
    assert (status, lines) == (
        1,
        ["error: users.bob.keys[1]: same key as users.alice.keys[0]: a key must identify exactly one user"],
    )


def test_a_user_key_that_is_also_a_trusted_ca_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = with_alice(tmp_path, "")
    alice = (tmp_path / "alice.pub").read_text().strip()
    path.write_text(f'[server]\ntrusted_user_ca_keys = ["{alice}"]\n' + path.read_text())
    status, lines = check(path, capsys)
    assert (status, lines) == (
        1,
        [
            "error: users.alice.keys[0]: same key as server.trusted_user_ca_keys[0]: "
            "whoever holds it could sign certificates for any user"
        ],
    )


def test_a_key_listed_twice_for_the_same_user_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = with_alice(tmp_path, "")
    alice = (tmp_path / "alice.pub").read_text().strip()
    path.write_text(path.read_text().replace(f'keys = ["{alice}"]', f'keys = ["{alice}", "{alice}"]'))
    status, lines = check(path, capsys)
    assert (status, lines) == (0, ["ok: 1 cluster(s), 1 node(s), 1 user(s), 1 role(s)"])
