"""Helpers for the recording, verify, replay, audit and syslog tests: a gateway config and its parts.

The canary cookie holds a double quote and a backslash, which JSON escapes:
redacting after encoding would miss it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.audit import AuditLog
from gateway.config import Config, load_config
from gateway.recording import Recorder, RecordingStore
from gateway.secret import Cookie

ROOT = Path(__file__).resolve().parents[2]
CANARY = 'canary"Cookie\\Q7x9'


def write_config(
    tmp_path: Path,
    *,
    recording_dir: str = "state/recordings",
    interval: str = "5s",
    retention_days: int = 365,
    min_free: str = "0",
    extra: str = "",
) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cookie = tmp_path / "test.cookie"
    cookie.write_text(CANARY + "\n")
    cookie.chmod(0o600)
    path = tmp_path / "beamgate.toml"
    path.write_text(
        f"""
[clusters.test]
cookie_file = "{cookie}"
nodes = ["app@localhost"]

[recording]
dir = "{recording_dir}"
signing_key = "state/recording_key"
checkpoint_interval = "{interval}"
retention_days = {retention_days}
min_free_space = "{min_free}"

[audit]
path = "state/audit.jsonl"
{extra}
"""
    )
    return path


def cookie_of(config: Config) -> Cookie:
    return config.clusters["test"].load_cookie()


def open_store(config: Config, audit: AuditLog | None = None) -> RecordingStore:
    cookie = cookie_of(config)
    return RecordingStore(config.recording, cookie.redact, pending=cookie.pending_prefix, audit=audit)


def open_audit(config: Config) -> AuditLog:
    return AuditLog(config.audit, cookie_of(config).redact)


def load(path: Path) -> Config:
    return load_config(path)


def start(store: RecordingStore, session: str = "s1", user: str = "alice", **kwargs: object) -> Recorder:
    return store.start(
        session_id=session,
        user=user,
        client="127.0.0.1:50000",
        key_fingerprint="SHA256:userkey",
        width=100,
        height=30,
        term="xterm-256color",
        **kwargs,  # type: ignore[arg-type]
    )


def sample_session(store: RecordingStore) -> Recorder:
    """A closed recording with a known layout (line numbers are 1-based)::

    1 header            6 i "o"            11 o "procs 42"     16 o "bye"
    2 o prompt          7 i "\\r"          12 r 120x40         17 final checkpoint
    3 i "i"             8 o "info"         13 o prompt
    4 i "n"             9 checkpoint 1     14 checkpoint 2
    5 i "f"            10 o "node ..."     15 i "exit\\r"
    """
    r = start(store)
    r.output("alice@app> ")
    for ch in "info\r":
        r.input(ch)
    r.output("info\r\n")
    r.checkpoint()
    r.output("node app@localhost\r\n")
    r.output("procs 42\r\n")
    r.resize(120, 40)
    r.output("alice@app> ")
    r.checkpoint()
    r.input("exit\r")
    r.output("bye\r\n")
    r.close()
    return r


def beamgate(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run the real ``beamgate`` CLI (``python -m gateway``) in a child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, timeout=timeout, env=env, cwd=ROOT, check=False
    )


def asciinema_cat(path: Path) -> subprocess.CompletedProcess[bytes]:
    """``asciinema cat`` from the asciinema 2.x package (stdin is not a terminal here)."""
    return subprocess.run(
        [sys.executable, "-m", "asciinema", "cat", str(path)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` (``"64k"``) mounted at ``path``, mode 0700: a disk that really fills up.

    Skips the test where mounting is not allowed (it needs root, or CAP_SYS_ADMIN).
    """
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
