"""The audit log: a hash chain that shows tampering, safe with several writers, redacted, searchable."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import audit as audit_module
from gateway.audit import GENESIS, AuditError, AuditLog, line_hash
from gateway.audit_read import check_log
from gateway.config import AuditConfig
from tests.support.recordings import CANARY, ROOT, beamgate, load, open_audit, tmpfs, write_config


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.emit("command", user="alice", session="s1", node="app@h", line=f"info {i}", command="info")


def test_lines_are_chained(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    log = open_audit(config)
    fill(log, 3)
    lines = config.audit.path.read_bytes().splitlines()
    recs = [json.loads(line) for line in lines]
    assert [r["seq"] for r in recs] == [1, 2, 3]
    assert recs[0]["prev"] == GENESIS
    assert recs[1]["prev"] == line_hash(lines[0]) and recs[2]["prev"] == line_hash(lines[1])
    for r in recs:
        assert set(r) >= {"ts", "event", "user", "session", "client", "key_fingerprint"}
        assert str(r["ts"]).endswith("Z")
    assert all(b < 0x80 for b in config.audit.path.read_bytes())  # ASCII JSON
    assert config.audit.path.stat().st_mode & 0o777 == 0o600
    config.audit.path.chmod(0o644)
    open_audit(config).emit("server_stop")
    assert config.audit.path.stat().st_mode & 0o777 == 0o600
    out = beamgate("audit", "--config", str(write_config(tmp_path)), "--verify")
    assert out.returncode == 0 and out.stdout.decode().startswith(f"OK {config.audit.path}: 4 lines")


TAMPERING = [
    ("line changed", lambda ls: [ls[0], ls[1].replace(b"info 1", b"info 9"), *ls[2:]], 3, "previous line was changed"),
    ("line removed", lambda ls: [ls[0], *ls[2:]], 2, "1 line(s) removed"),
    ("lines swapped", lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 2, "chain broken"),
    ("line inserted", lambda ls: [*ls[:2], ls[0], *ls[2:]], 3, "inserted or reordered"),
    ("cut inside the last line", lambda ls: [*ls[:-1], ls[-1][:20]], 5, "ends inside a line"),
]


@pytest.mark.parametrize(("edit", "line", "cause"), [t[1:] for t in TAMPERING], ids=[t[0] for t in TAMPERING])
def test_tampering_breaks_the_chain(tmp_path: Path, edit, line: int, cause: str) -> None:  # type: ignore[no-untyped-def]
    config_path = write_config(tmp_path)
    config = load(config_path)
    fill(open_audit(config), 5)
    lines = config.audit.path.read_bytes().splitlines(keepends=True)
    config.audit.path.write_bytes(b"".join(edit(lines)))
    check = check_log(config.audit.path)
    assert not check.intact
    assert check.breaks[0].line == line and cause in check.breaks[0].detail
    out = beamgate("audit", "--config", str(config_path), "--verify")
    assert out.returncode == 1 and f"line {line}: " in out.stderr.decode()
    search = beamgate("audit", "--config", str(config_path), "--user", "alice")
    assert search.returncode == 1 and search.stdout  # results still shown, the break reported
    assert "chain broken" in search.stderr.decode() or "ends inside" in search.stderr.decode()


def test_several_writers_keep_one_chain(tmp_path: Path) -> None:
    """Two logs in this process and one in another process append to one file: one valid chain."""
    config_path = write_config(tmp_path)
    config = load(config_path)
    a, b = open_audit(config), open_audit(config)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_WRITER, str(config_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    for i in range(50):
        (a if i % 2 else b).emit("command", user="parent", line=f"x {i}")
    assert child.wait(60) == 0
    recs = records(config.audit.path)
    assert len(recs) == 100 and [r["seq"] for r in recs] == list(range(1, 101))
    assert {r["user"] for r in recs} == {"parent", "child"}
    assert check_log(config.audit.path).intact


CHILD_WRITER = """
import sys
from pathlib import Path
from tests.support.recordings import load, open_audit
log = open_audit(load(Path(sys.argv[1])))
for i in range(50):
    log.emit("command", user="child", line=f"y {i}")
"""


def test_rotation_continues_the_chain(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    log = open_audit(config)
    fill(log, 2)
    rotated = config.audit.path.with_name("audit.jsonl.1")
    config.audit.path.rename(rotated)
    fill(log, 2)
    new = records(config.audit.path)
    old_lines = rotated.read_bytes().splitlines()
    assert new[0]["prev"] == line_hash(old_lines[-1]) and new[0]["seq"] == 3
    check = check_log(config.audit.path)
    assert check.intact and check.continues == line_hash(old_lines[-1])
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(rotated.read_bytes() + config.audit.path.read_bytes())
    assert check_log(whole).intact


def test_a_log_that_cannot_be_reopened_fails_each_emit_then_recovers(tmp_path: Path) -> None:
    """Rotated away, and its path now a directory: no write lands elsewhere, and the chain survives."""
    config = load(write_config(tmp_path))
    log = open_audit(config)
    fill(log, 2)
    rotated = config.audit.path.with_name("audit.jsonl.1")
    config.audit.path.rename(rotated)
    config.audit.path.mkdir()
    with pytest.raises(AuditError, match=r"cannot open audit log .*: Is a directory"):
        log.emit("command", user="alice", line="kill victim")
    bystander = tmp_path / "bystander"
    with bystander.open("w") as other:  # takes the lowest free descriptor: the one the log just closed
        with pytest.raises(AuditError, match=r"cannot open audit log .*: Is a directory"):
            log.emit("command", user="alice", line="kill victim")
        other.write("mine\n")
    assert bystander.read_text() == "mine\n"  # the log neither read nor closed what it no longer owns
    config.audit.path.rmdir()
    fill(log, 1)
    [first] = records(config.audit.path)
    assert first["seq"] == 3 and first["prev"] == line_hash(rotated.read_bytes().splitlines()[-1])
    log.close()
    with pytest.raises(AuditError, match="closed"):
        log.emit("server_stop")


def test_lines_cut_from_the_end_under_a_running_gateway_stay_visible(tmp_path: Path) -> None:
    """The writer knows where its chain ended: it does not quietly continue from what is left."""
    config = load(write_config(tmp_path))
    log = open_audit(config)
    fill(log, 5)
    lines = config.audit.path.read_bytes().splitlines(keepends=True)
    config.audit.path.write_bytes(b"".join(lines[:3]))  # the last two lines removed, in place
    fill(log, 1)
    check = check_log(config.audit.path)
    assert not check.intact
    assert check.breaks[0].line == 4 and "2 line(s) removed" in check.breaks[0].detail


def test_a_torn_last_line_is_not_glued_to(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    fill(open_audit(config), 2)
    with config.audit.path.open("ab") as f:
        f.write(b'{"ts":"torn')
    log = open_audit(config)
    fill(log, 1)
    lines = config.audit.path.read_bytes().splitlines()
    assert lines[2] == b'{"ts":"torn' and json.loads(lines[3])["prev"] == line_hash(lines[2])
    assert [b.line for b in check_log(config.audit.path).breaks] == [3]  # only the torn line itself


def test_cookie_is_redacted_everywhere(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    log = open_audit(config)

    class Boom(Exception):
        pass

    written = log.emit(
        "command",
        user="alice",
        line=f"state {CANARY}",
        error=Boom(f"connect failed with cookie {CANARY}"),
        detail={"nested": [CANARY, {CANARY: 1}]},
        **{f"k_{CANARY}": "v"},
    )
    raw = config.audit.path.read_bytes()
    assert CANARY.encode() not in raw and json.dumps(CANARY)[1:-1].encode() not in raw
    assert written["line"] == "state [REDACTED]"
    assert written["error"] == "connect failed with cookie [REDACTED]"
    assert written["detail"] == {"nested": ["[REDACTED]", {"[REDACTED]": 1}]}
    assert written["k_[REDACTED]"] == "v"


def test_bad_calls_are_refused(tmp_path: Path) -> None:
    log = open_audit(load(write_config(tmp_path)))
    with pytest.raises(ValueError, match="unknown audit event"):
        log.emit("made_up")
    with pytest.raises(ValueError, match="set by the log itself"):
        log.emit("command", seq=5)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "tiny", "8k") as mnt:
        yield mnt


def test_disk_full_raises_and_leaves_no_torn_line(tiny_fs: Path) -> None:
    log = AuditLog(AuditConfig(tiny_fs / "audit.jsonl"))
    with pytest.raises(AuditError, match="No space left on device"):
        for i in range(1000):
            log.emit("command", user="alice", line="x" * 200 + str(i))
    assert (tiny_fs / "audit.jsonl").read_bytes().endswith(b"\n")
    assert check_log(tiny_fs / "audit.jsonl").intact


# -- search ------------------------------------------------------------------------------


@pytest.fixture
def searchable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config_path = write_config(tmp_path)
    log = open_audit(load(config_path))
    events = [
        ("2024-05-01T09:00:00.000000Z", "auth_ok", {"user": "alice", "client": "10.0.0.1:5000"}),
        ("2024-05-01T09:00:01.000000Z", "command", {"user": "alice", "node": "app@a", "line": "info"}),
        ("2024-05-01T10:00:00.000000Z", "command", {"user": "bob", "node": "app@b", "line": "proc_count memory 5"}),
        ("2024-05-02T08:00:00.000000Z", "denied", {"user": "bob", "node": "db@c", "line": "kill <0.1.0>"}),
        ("2024-05-02T09:00:00.000000Z", "command", {"user": "alice", "node": "app@b", "line": "\x1b[2Jproc_count x"}),
    ]
    for ts, event, fields in events:
        monkeypatch.setattr(audit_module, "now_rfc3339", lambda ts=ts: ts)
        if event != "auth_ok":
            fields["command"] = fields["line"].removeprefix("\x1b[2J").split()[0]
        log.emit(event, session="s1", recording="r.cast", recording_offset=100, **fields)
    return config_path


def search(config_path: Path, *args: str) -> list[dict[str, object]]:
    out = beamgate("audit", "--config", str(config_path), "--json", *args)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.decode().splitlines()]


def test_search_by_user_node_command_and_time(searchable: Path) -> None:
    assert [r["seq"] for r in search(searchable, "--user", "alice")] == [1, 2, 5]
    assert [r["seq"] for r in search(searchable, "--node", "app@b")] == [3, 5]
    assert [r["seq"] for r in search(searchable, "--node", "app@*")] == [2, 3, 5]
    assert [r["seq"] for r in search(searchable, "--command", "proc_count")] == [3, 5]
    assert [r["seq"] for r in search(searchable, "--command", "kill")] == [4]
    assert [r["seq"] for r in search(searchable, "--since", "2024-05-01T09:30Z")] == [3, 4, 5]
    assert [r["seq"] for r in search(searchable, "--since", "2024-05-02")] == [4, 5]
    assert [r["seq"] for r in search(searchable, "--since", "2024-05-01", "--until", "2024-05-01T23:59")] == [1, 2, 3]
    assert [r["seq"] for r in search(searchable, "--user", "bob", "--event", "denied")] == [4]
    assert search(searchable, "--user", "alice", "--node", "db@c") == []
    assert search(searchable, "--since", "1h") == []  # all of it is older than an hour


def test_human_output_is_one_safe_line_per_event(searchable: Path) -> None:
    out = beamgate("audit", "--config", str(searchable), "--user", "alice")
    assert out.returncode == 0
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 3 and out.stderr.decode().strip() == "3 event(s)"
    assert lines[1].startswith("2024-05-01T09:00:01Z  command")
    assert "app@a" in lines[1] and '"info"' in lines[1] and "rec=r.cast@100" in lines[1]
    assert "\x1b" not in out.stdout.decode() and "\\u001b[2Jproc_count x" in lines[2]


def test_search_usage_errors(searchable: Path) -> None:
    out = beamgate("audit", "--config", str(searchable), "--since", "yesterday-ish")
    assert out.returncode == 2 and b"neither an ISO 8601 time" in out.stderr
