"""``beamgate demo``: from nothing to a working ssh line, and a clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ssh import free_port

ROOT = Path(__file__).resolve().parent.parent


def beamgate(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env={**(env or os.environ), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def pids_of(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.slow
def test_demo_prints_a_working_ssh_line_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    demo = beamgate("demo", "--port", str(port), "--dir", "demo-state", cwd=tmp_path)
    try:
        assert demo.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any(line.strip().startswith("ssh ") for line in lines):
            line = demo.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines) + (demo.stderr.read() if demo.stderr else "")
            lines.append(line)
        ssh = shlex.split(next(line for line in lines if line.strip().startswith("ssh ")))
        assert ssh[-1] == "diag@127.0.0.1" and str(port) in ssh

        r = subprocess.run([*ssh, "info", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["node"].startswith("beamgate_demo@")
        assert info["memory"]["binary"] > 8 * 1024 * 1024  # the demo's large binary
        assert info["ets_count"] > 0
        r = subprocess.run([*ssh, "whoami", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert json.loads(r.stdout)["user"] == "demo"

        state = tmp_path / "demo-state"
        cookie_file = state / "node" / ".erlang.cookie"
        cookie = cookie_file.read_bytes()
        assert stat.S_IMODE(cookie_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((state / "ssh_host_ed25519_key").stat().st_mode) == 0o600
        node_pids = pids_of("sname beamgate_demo")
        assert node_pids
        for pid in [demo.pid, *node_pids]:  # the cookie is in no command line and no environment
            assert cookie not in Path(f"/proc/{pid}/cmdline").read_bytes()
            assert cookie not in Path(f"/proc/{pid}/environ").read_bytes()
        assert cookie not in (state / "audit.jsonl").read_bytes()

        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=30)
        assert demo.returncode == 0, err
        assert "demo stopped" in out
        assert not pids_of("sname beamgate_demo")
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in pids_of("sname beamgate_demo"):
            os.killpg(pid, signal.SIGKILL)


def test_demo_without_erlang_says_how_to_install_it(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    demo = beamgate("demo", "--dir", "demo-state", cwd=tmp_path, env=env)
    _, err = demo.communicate(timeout=60)
    assert demo.returncode == 1
    assert err.startswith("error: Erlang/OTP is not installed (no `erl` on PATH)")
    assert "sudo apt-get install erlang-base" in err
    assert not (tmp_path / "demo-state").exists()
