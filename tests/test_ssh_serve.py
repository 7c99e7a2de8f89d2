"""``beamgate serve --config FILE`` as a real process: host key, fingerprint, a session, a clean shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from tests.support.erlang import ErlangNode
from tests.support.ssh import Client, KeyPair, Listening, keygen, write_gateway_config

ROOT = Path(__file__).resolve().parent.parent


def test_serve_creates_the_host_key_prints_its_fingerprint_and_shuts_down_cleanly(
    target: ErlangNode, tmp_path: Path
) -> None:
    key = keygen(tmp_path, "alice")
    config = write_gateway_config(
        tmp_path, cookie_file=target.cookie_file, nodes=[target.name], users={"alice": ([key], ["sre"])}
    )
    serve = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None
        listening = serve.stdout.readline()
        m = re.fullmatch(r"beamgate listening on 127\.0\.0\.1:(\d+)\n", listening)
        assert m, listening + (serve.stderr.read() if serve.stderr else "")
        host_key = tmp_path / "state" / "host_key"
        assert stat.S_IMODE(host_key.stat().st_mode) == 0o600
        public = subprocess.run(["ssh-keygen", "-y", "-f", str(host_key)], capture_output=True, text=True).stdout
        (tmp_path / "host_key.pub").write_text(public)
        fingerprint = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(tmp_path / "host_key.pub")], capture_output=True, text=True
        ).stdout.split()[1]
        assert serve.stdout.readline() == f"host key {fingerprint} ({host_key})\n"

        alice = Client(Listening("127.0.0.1", int(m.group(1)), public.strip()), key, tmp_path)
        r = alice.run("info", "--json")
        assert r.returncode == 0 and target.name in r.stdout, r.stderr

        shell = alice.shell()
        try:
            shell.wait_for("signed in as alice")
            serve.send_signal(signal.SIGTERM)
            shell.wait_for("beamgate: the gateway is shutting down")
            shell.wait_exit()
        finally:
            shell.close()
        out, err = serve.communicate(timeout=30)
        assert serve.returncode == 0, err
        assert target.cookie not in out + err
        events = [line for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
        assert '"event":"server_stop"' in events[-1]
        assert any('"reason":"the gateway is shutting down"' in e for e in events)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()


def test_serve_refuses_a_host_key_others_can_read(tmp_path: Path) -> None:
    key = keygen(tmp_path, "alice")
    cookie = tmp_path / "cookie"
    cookie.write_text("c\n")
    cookie.chmod(0o600)
    config = write_gateway_config(
        tmp_path, cookie_file=cookie, nodes=["a@localhost"], users={"alice": ([key], ["sre"])}
    )
    (tmp_path / "state").mkdir()
    host_key = tmp_path / "state" / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    host_key.chmod(0o644)
    r = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.strip().endswith(
        f"error: host key {host_key} has mode 0644; it must be private to its owner (chmod 600 {host_key})"
    )


def test_sighup_reloads_users_keys_and_roles(target: ErlangNode, tmp_path: Path) -> None:
    alice, bob, carol = keygen(tmp_path, "alice"), keygen(tmp_path, "bob"), keygen(tmp_path, "carol")
    roles = (
        '[roles.sre]\ncommands = ["*"]\nnodes = ["*"]\n[roles.reader]\ncommands = ["help", "whoami"]\nnodes = ["*"]\n'
    )
    users: dict[str, tuple[list[KeyPair], list[str]]] = {"alice": ([alice], ["reader"]), "carol": ([carol], ["sre"])}
    config = write_gateway_config(
        tmp_path, cookie_file=target.cookie_file, nodes=[target.name], users=users, roles=roles
    )
    serve = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None
        listening = serve.stdout.readline()
        assert listening.startswith("beamgate listening on"), listening + (serve.stderr.read() if serve.stderr else "")
        port = int(listening.rsplit(":", 1)[1])
        serve.stdout.readline()
        public = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(tmp_path / "state" / "host_key")], capture_output=True, text=True
        ).stdout.strip()
        endpoint = Listening("127.0.0.1", port, public)
        as_alice, as_bob = Client(endpoint, alice, tmp_path), Client(endpoint, bob, tmp_path)
        assert as_alice.run("info").returncode == 3  # reader: info not granted
        assert as_bob.run("whoami").returncode == 255  # bob is not configured

        users = {"alice": ([alice], ["sre"]), "bob": ([bob], ["reader"]), "carol": ([carol], ["sre"])}
        write_gateway_config(tmp_path, cookie_file=target.cookie_file, nodes=[target.name], users=users, roles=roles)
        serve.send_signal(signal.SIGHUP)
        audit = tmp_path / "state" / "audit.jsonl"
        deadline = time.monotonic() + 10
        while '"event":"config_reload"' not in audit.read_text():
            assert time.monotonic() < deadline, "no config_reload event"
            time.sleep(0.05)
        reload = json.loads(next(line for line in audit.read_text().splitlines() if "config_reload" in line))
        assert (reload["ok"], reload["generation"]) == (True, 2)

        r = as_alice.run("info", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["node"] == target.name
        r = as_bob.run("whoami", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["roles"] == ["reader"]
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.communicate(timeout=30)
