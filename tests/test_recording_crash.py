"""A recording survives the gateway's death and a full disk: what was written stays valid and verifiable."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.recording import RecordingError
from gateway.recording_verify import UNTERMINATED, verify_file
from tests.support.recordings import (
    ROOT,
    asciinema_cat,
    beamgate,
    load,
    open_audit,
    open_store,
    start,
    tmpfs,
    write_config,
)

CHILD = """
import asyncio, sys
from pathlib import Path
from tests.support.recordings import load, open_store, start

store = open_store(load(Path(sys.argv[1])))
mode = sys.argv[2]

async def main():
    r = start(store)
    print(r.path, flush=True)
    for i in range(5):
        r.output(f"line {i}\\r\\n")
    if mode == "timer":
        await asyncio.sleep(1.0)  # the 0.2 s timer signs the five lines
    else:
        r.checkpoint()
        for i in range(5, 8):
            r.output(f"line {i}\\r\\n")
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def run_and_kill(tmp_path: Path, config_path: Path, mode: str) -> Path:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config_path), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    path = Path(child.stdout.readline().strip())
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    assert child.wait(30) == -signal.SIGKILL
    return path


@pytest.mark.parametrize("mode", ["explicit", "timer"])
def test_sigkill_leaves_a_verifiable_prefix(tmp_path: Path, mode: str) -> None:
    config_path = write_config(tmp_path, interval="0.2s" if mode == "timer" else "1h")
    config = load(config_path)
    path = run_and_kill(tmp_path, config_path, mode)

    played = asciinema_cat(path)
    assert played.returncode == 0, played.stderr
    written = 5 if mode == "timer" else 8
    assert played.stdout.decode() == "".join(f"line {i}\r\n" for i in range(written))

    verdict = verify_file(path, [open_store(config).public_key])
    assert verdict.status == UNTERMINATED and verdict.checkpoints == 1
    assert verdict.verified_lines == 7  # header, five lines, the checkpoint
    assert verdict.unsigned == (0 if mode == "timer" else 3)

    out = beamgate("verify", "--config", str(config_path), str(path))
    assert out.returncode == 3, out.stderr
    text = out.stdout.decode()
    assert text.startswith("UNTERMINATED ") and "intact up to line 7" in text
    assert "the gateway stopped without closing this recording" in text


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a disk that really fills up (where mounting is not allowed, the RLIMIT_FSIZE test remains)."""
    with tmpfs(tmp_path / "tiny", "64k") as mnt:
        yield mnt


def test_disk_full(tmp_path: Path, tiny_fs: Path) -> None:
    config = load(write_config(tmp_path, recording_dir=str(tiny_fs / "rec"), min_free="8KiB", interval="1h"))
    audit = open_audit(config)
    store = open_store(config, audit)
    r = start(store)
    chunk = "x" * 1000 + "\r\n"
    writes = 0
    with pytest.raises(RecordingError, match="No space left on device") as failure:
        while writes < 1000:
            r.output(chunk)
            writes += 1
            if writes % 10 == 0:
                r.checkpoint()
    assert 20 < writes < 64  # failed on the write that did not fit, not later
    with pytest.raises(RecordingError):
        r.output("more")
    summary = r.close()
    assert not summary.complete and summary.error == str(failure.value)

    # what was written is whole: asciinema plays it, verify vouches for the signed part
    played = asciinema_cat(r.path)
    assert played.returncode == 0 and played.stdout.decode() == chunk * writes
    verdict = verify_file(r.path, [store.public_key])
    assert verdict.status == UNTERMINATED and verdict.checkpoints == writes // 10

    # new sessions are refused, with a reason a person can act on
    with pytest.raises(RecordingError, match=r"No space left|min_free_space"):
        start(store, session="s2")
    events = [json.loads(line) for line in config.audit.path.read_text().splitlines()]
    failed = [(e["session"], e["stage"]) for e in events if e["event"] == "recording_failed"]
    assert failed == [("s1", "write"), ("s2", "start")]


RLIMIT_CHILD = """
import json, resource, signal, sys
from pathlib import Path
from gateway.recording import RecordingError
from tests.support.recordings import load, open_store, start

store = open_store(load(Path(sys.argv[1])))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
r = start(store)
writes = 0
try:
    while writes < 1000:
        r.output("y" * 999 + "\\r\\n")
        writes += 1
        if writes % 5 == 0:
            r.checkpoint()
except RecordingError as exc:
    error = str(exc)
print(json.dumps({"path": str(r.path), "writes": writes, "error": error, "summary": r.close().complete}))
"""


def test_file_size_limit(tmp_path: Path) -> None:
    """The same failure through RLIMIT_FSIZE (EFBIG), for machines where mounting is not allowed."""
    config_path = write_config(tmp_path, interval="1h")
    config = load(config_path)
    store = open_store(config)  # creates the key before the child limits file sizes
    out = subprocess.run(
        [sys.executable, "-c", RLIMIT_CHILD, str(config_path)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert "File too large" in result["error"] and result["summary"] is False
    path = Path(result["path"])
    assert path.stat().st_size <= 20000
    played = asciinema_cat(path)
    assert played.returncode == 0 and played.stdout.decode() == ("y" * 999 + "\r\n") * result["writes"]
    verdict = verify_file(path, [store.public_key])
    assert verdict.status == UNTERMINATED and verdict.checkpoints == result["writes"] // 5
