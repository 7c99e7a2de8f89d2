"""The session recorder: asciicast v2 that asciinema plays, signed, private, redacted, loud on failure."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from gateway.recording import RecordingError
from gateway.recording_chain import fingerprint
from gateway.recording_verify import OK, UNTERMINATED, verify_file
from gateway.replay import frames
from tests.support.recordings import (
    CANARY,
    asciinema_cat,
    cookie_of,
    load,
    open_audit,
    open_store,
    sample_session,
    start,
    write_config,
)


def lines_of(path: Path) -> list[object]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_header_events_and_asciinema_plays_it(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    store = open_store(config)
    r = sample_session(store)
    header, *events = lines_of(r.path)
    assert isinstance(header, dict)
    assert header["version"] == 2 and header["width"] == 100 and header["height"] == 30
    assert isinstance(header["timestamp"], int) and abs(header["timestamp"] - time.time()) < 60
    assert header["env"] == {"TERM": "xterm-256color", "SHELL": "beamgate"}
    meta = header["beamgate"]
    assert meta["user"] == "alice" and meta["session"] == "s1"
    assert meta["client"] == "127.0.0.1:50000" and meta["key_fingerprint"] == "SHA256:userkey"
    assert meta["recording_key"] == store.key_id
    kinds = [e[1] for e in events]  # type: ignore[index]
    assert kinds == ["o", "i", "i", "i", "i", "i", "o", "c", "o", "o", "r", "o", "c", "i", "o", "c"]
    assert events[10][2] == "120x40"  # type: ignore[index]
    times = [e[0] for e in events]  # type: ignore[index]
    assert times == sorted(times)

    played = asciinema_cat(r.path)
    assert played.returncode == 0, played.stderr
    assert played.stdout.decode() == "alice@app> info\r\nnode app@localhost\r\nprocs 42\r\nalice@app> bye\r\n"
    assert verify_file(r.path, [store.public_key]).status == OK


def test_asciinema_play_accepts_it(tmp_path: Path) -> None:
    """``asciinema play`` (not only ``cat``) reads the checkpoint records without complaint."""
    import subprocess
    import sys

    r = sample_session(open_store(load(write_config(tmp_path))))
    out = subprocess.run(
        [sys.executable, "-m", "asciinema", "play", "-s", "50", str(r.path)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert b"procs 42" in out.stdout and b"canary" not in out.stdout


def test_modes_and_key(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    store = open_store(config)
    r = sample_session(store)
    assert stat.S_IMODE(r.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.dir.stat().st_mode) == 0o700
    key = config.recording.signing_key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert store.public_key_line().startswith("ssh-ed25519 ")
    # the same key is used again, not replaced
    again = open_store(config)
    assert again.key_id == store.key_id == fingerprint(store.public_key)


def test_loose_directory_is_tightened_and_loose_key_refused(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    config.recording.dir.mkdir(parents=True, mode=0o755)
    config.recording.dir.chmod(0o755)
    store = open_store(config)
    assert stat.S_IMODE(store.dir.stat().st_mode) == 0o700
    config.recording.signing_key.chmod(0o644)
    with pytest.raises(RecordingError, match=r"mode 0644; it must be 0600"):
        open_store(config)


def test_cookie_never_reaches_the_file(tmp_path: Path) -> None:
    """Whole, split across writes, typed one key at a time, in the header and markers: always redacted."""
    config = load(write_config(tmp_path))
    store = open_store(config)
    r = start(store, command=f"state {CANARY}")
    r.output(f'state: #{{cookie => <<"{CANARY}">>}}\r\n')
    half = len(CANARY) // 2
    r.output("value " + CANARY[:half])
    r.output(CANARY[half:] + " end\r\n")
    for ch in f"info {CANARY}\r":
        r.input(ch)
    r.marker(f"command: info {CANARY}")
    r.input(CANARY[:-1])  # a prefix only, then the session ends: it is not the cookie
    r.close()
    raw = r.path.read_bytes()
    escaped = json.dumps(CANARY)[1:-1].encode()
    assert CANARY.encode() not in raw and escaped not in raw
    assert b"canary" in raw  # the lone prefix at the end was flushed: it is not the secret
    played = asciinema_cat(r.path).stdout.decode()
    assert played == 'state: #{cookie => <<"[REDACTED]">>}\r\nvalue [REDACTED] end\r\n'
    typed = "".join(e[2] for e in lines_of(r.path)[1:] if e[1] == "i")  # type: ignore[index]
    assert typed == "info [REDACTED]\r" + CANARY[:-1]
    assert json.loads(raw.splitlines()[0])["command"] == "state [REDACTED]"


def test_ordinary_typing_is_not_held_back(tmp_path: Path) -> None:
    """Only a tail that could begin the cookie waits for the next key; other keys are written at once."""
    store = open_store(load(write_config(tmp_path)))
    r = start(store)
    r.input("x")
    before = r.offset
    r.input("c")  # "c" begins the canary: held
    assert r.offset == before
    r.input("z")  # "cz" does not: both written now
    assert r.offset > before
    r.close()
    typed = [e[2] for e in lines_of(r.path)[1:] if e[1] == "i"]  # type: ignore[index]
    assert typed == ["x", "cz"]


def test_held_text_is_written_before_a_marker(tmp_path: Path) -> None:
    """A command's offset starts at its own output: what was held back before the command is released first."""
    store = open_store(load(write_config(tmp_path)))
    r = start(store)
    r.output("prompt> c")  # "c" begins the canary: held
    r.marker("info")
    offset = r.offset
    r.output("node app@localhost\r\n")
    r.close()
    events = [e[1:] for e in lines_of(r.path)[1:] if e[1] in "om"]  # type: ignore[index]
    assert events == [["o", "prompt> "], ["o", "c"], ["m", "info"], ["o", "node app@localhost\r\n"]]
    assert [f.data for f in frames(r.path, offset)] == [b"node app@localhost\r\n"]


def test_timer_checkpoint_inside_event_loop(tmp_path: Path) -> None:
    """In a running loop a checkpoint is signed within the interval, without further events."""
    store = open_store(load(write_config(tmp_path, interval="0.2s")))

    async def main() -> None:
        r = start(store)
        r.output("one\r\n")
        r.output("two\r\n")
        await asyncio.sleep(0.8)
        assert [e[1] for e in lines_of(r.path)[1:]] == ["o", "o", "c"]  # type: ignore[index]
        verdict = verify_file(r.path, [store.public_key])  # still open: no final checkpoint yet
        assert verdict.status == UNTERMINATED and verdict.unsigned == 0 and verdict.checkpoints == 1
        r.close()

    asyncio.run(main())


def test_lazy_checkpoint_without_loop(tmp_path: Path) -> None:
    store = open_store(load(write_config(tmp_path, interval="0.1s")))
    r = start(store)
    r.output("a")
    time.sleep(0.15)
    r.output("b")  # the interval has passed: signed right after this record
    assert [e[1] for e in lines_of(r.path)[1:]] == ["o", "o", "c"]  # type: ignore[index]
    r.close()


def test_directory_removed_fails_loudly(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    audit = open_audit(config)
    store = open_store(config, audit)
    r = start(store)
    r.output("before\r\n")
    shutil.rmtree(store.dir)
    with pytest.raises(RecordingError, match="deleted"):
        r.output("after\r\n")
    with pytest.raises(RecordingError):
        r.input("x")  # and every later call
    summary = r.close()
    assert not summary.complete and summary.error and "deleted" in summary.error
    with pytest.raises(RecordingError, match=r"unusable|cannot create"):
        start(store, session="s2")
    events = [json.loads(line) for line in config.audit.path.read_text().splitlines()]
    failed = [(e["session"], e["user"], e["stage"]) for e in events if e["event"] == "recording_failed"]
    assert failed == [("s1", "alice", "write"), ("s2", "alice", "start")]


def test_timer_failure_reaches_on_error(tmp_path: Path) -> None:
    """A checkpoint that fails on the timer (no session call on the stack) is reported to ``on_error``."""
    store = open_store(load(write_config(tmp_path, interval="0.1s")))
    errors: list[RecordingError] = []

    async def main() -> None:
        r = start(store, on_error=errors.append)
        r.output("x")
        shutil.rmtree(store.dir)
        await asyncio.sleep(0.5)
        assert r.failed is not None

    asyncio.run(main())
    assert len(errors) == 1 and "deleted" in str(errors[0])


def test_close_is_idempotent_and_calls_after_close_fail(tmp_path: Path) -> None:
    store = open_store(load(write_config(tmp_path)))
    r = start(store)
    r.output("x")
    first = r.close()
    assert r.close() is first and first.complete and first.checkpoints == 1
    with pytest.raises(RecordingError, match="closed"):
        r.output("y")


def test_low_free_space_refuses_new_sessions(tmp_path: Path) -> None:
    store = open_store(load(write_config(tmp_path, min_free="1000000GiB")))
    with pytest.raises(RecordingError, match=r"bytes free, less than recording.min_free_space"):
        start(store)
    assert list(store.dir.iterdir()) == []


def test_retention_removes_old_recordings_and_audits(tmp_path: Path) -> None:
    config = load(write_config(tmp_path, retention_days=30))
    audit = open_audit(config)
    store = open_store(config, audit)
    old = start(store, session="old", user="bob")
    old.output("x")
    old.close()
    recent = start(store, session="recent")
    recent.close()
    running = start(store, session="running")
    other = store.dir / "notes.txt"
    other.write_text("not a recording")
    long_ago = time.time() - 31 * 86400
    for p in (old.path, running.path, other):
        os.utime(p, (long_ago, long_ago))
    removed = store.sweep_retention()
    assert removed == [old.path]
    assert not old.path.exists() and recent.path.exists() and running.path.exists() and other.exists()
    events = [json.loads(line) for line in config.audit.path.read_text().splitlines()]
    (event,) = [e for e in events if e["event"] == "retention"]
    assert event["recording"] == old.file_name and event["user"] == "bob" and event["session"] == "old"
    assert event["retention_days"] == 30
    running.close()


def test_retention_task_sweeps_until_cancelled(tmp_path: Path) -> None:
    config = load(write_config(tmp_path, retention_days=1))
    store = open_store(config, open_audit(config))
    r = start(store)
    r.close()
    long_ago = time.time() - 2 * 86400
    os.utime(r.path, (long_ago, long_ago))

    async def main() -> None:
        task = asyncio.create_task(store.keep_retention(every=0.05))
        await asyncio.sleep(0.2)
        assert not r.path.exists()
        task.cancel()

    asyncio.run(main())


def test_redaction_holds_for_any_split(tmp_path: Path) -> None:
    """However a stream containing the cookie is cut into writes, the file holds exactly the redacted whole."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    config = load(write_config(tmp_path))
    store = open_store(config)
    redact = cookie_of(config).redact
    pieces = st.sampled_from([CANARY, CANARY[:5], CANARY[3:], "ca", "c", "x", "\r\n", " ", "é"])

    @settings(max_examples=150, deadline=None)
    @given(st.lists(pieces, max_size=12), st.lists(st.integers(0, 200), max_size=8))
    def check(parts: list[str], cuts: list[int]) -> None:
        whole = "".join(parts)
        bounds = sorted({min(c, len(whole)) for c in cuts} | {0, len(whole)})
        r = start(store, session=f"h{time.monotonic_ns()}")
        for a, b in itertools.pairwise(bounds):
            r.output(whole[a:b])
            r.input(whole[a:b])
        r.close()
        events = lines_of(r.path)[1:]
        for kind in ("o", "i"):
            recorded = "".join(e[2] for e in events if e[1] == kind)  # type: ignore[index]
            assert recorded == redact(whole)
        assert CANARY.encode() not in r.path.read_bytes()
        r.path.unlink()

    check()
