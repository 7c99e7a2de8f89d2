"""``beamgate verify``: untouched recordings pass; each kind of tampering is named at the right line."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.recording_verify import OK, TAMPERED, UNTERMINATED, verify_file
from tests.support.recordings import beamgate, load, open_audit, open_store, sample_session, write_config

Edit = Callable[[list[bytes]], list[bytes]]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    """A config and one closed sample recording (layout in ``sample_session``)."""
    config_path = write_config(tmp_path)
    recording = sample_session(open_store(load(config_path))).path
    return config_path, recording


def tampered(recording: Path, edit: Edit) -> Path:
    lines = recording.read_bytes().splitlines(keepends=True)
    out = recording.with_name("tampered-" + recording.name)
    out.write_bytes(b"".join(edit(lines)))
    return out


def event_line(t: float, kind: str, data: str) -> bytes:
    return (json.dumps([t, kind, data]) + "\n").encode()


def replace_line(n: int, old: bytes, new: bytes) -> Edit:
    def edit(lines: list[bytes]) -> list[bytes]:
        assert old in lines[n - 1]
        lines[n - 1] = lines[n - 1].replace(old, new)
        return lines

    return edit


def drop(n: int) -> Edit:
    return lambda lines: lines[: n - 1] + lines[n:]


def swap(a: int, b: int) -> Edit:
    def edit(lines: list[bytes]) -> list[bytes]:
        lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
        return lines

    return edit


def insert_after(n: int, line: bytes) -> Edit:
    return lambda lines: [*lines[:n], line, *lines[n:]]


def copy_line(src: int, after: int) -> Edit:
    return lambda lines: [*lines[:after], lines[src - 1], *lines[after:]]


def cut_inside(n: int) -> Edit:
    return lambda lines: [*lines[: n - 1], lines[n - 1][: len(lines[n - 1]) // 2]]


CASES: list[tuple[str, Edit, str, int]] = [
    ("event text changed", replace_line(11, b"procs 42", b"procs 41"), "changed", 11),
    ("event time changed", replace_line(10, b"[0.", b"[1."), "changed", 10),
    ("header changed", replace_line(1, b'"user": "alice"', b'"user": "carol"'), "changed", 1),
    ("keystroke changed", replace_line(4, b'"n"', b'"N"'), "changed", 4),
    ("event removed", drop(11), "removed", 11),
    ("first event removed", drop(2), "removed", 2),
    ("events swapped", swap(10, 11), "reordered", 10),
    ("keystrokes swapped", swap(3, 4), "reordered", 3),
    ("event inserted", insert_after(10, event_line(0.5, "o", "rm -rf /\r\n")), "inserted", 11),
    ("event copied", copy_line(10, 11), "inserted", 12),
    ("garbage inserted", insert_after(12, b"not json\n"), "inserted", 13),
    ("event appended after the end", lambda ls: [*ls, event_line(9.0, "o", "later\r\n")], "appended", 18),
    ("cut inside an event", cut_inside(16), "truncated", 16),
    ("cut inside the final checkpoint", cut_inside(17), "truncated", 17),
    ("checkpoint removed", drop(14), "removed", 14),
    ("checkpoint signature changed", replace_line(9, b'"sig\\":\\"', b'"sig\\":\\"AAAA'), "changed", 9),
    ("checkpoint count changed", replace_line(9, b'"count\\":8', b'"count\\":7'), "changed", 9),
    ("checkpoint re-encoded", replace_line(9, b', "c", "', b',"c","'), "changed", 9),
    ("final flag forged", replace_line(14, b'"final\\":false', b'"final\\":true'), "changed", 14),
]


@pytest.mark.parametrize(("edit", "kind", "line"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tampering_is_named(setup: tuple[Path, Path], edit: Edit, kind: str, line: int) -> None:
    config_path, recording = setup
    bad = tampered(recording, edit)
    verdict = verify_file(bad, [open_store(load(config_path)).public_key])
    assert verdict.status == TAMPERED, verdict.text()
    assert verdict.problem is not None
    assert (verdict.problem.kind, verdict.problem.line) == (kind, line), verdict.text()
    out = beamgate("verify", "--config", str(config_path), str(recording), str(bad))
    assert out.returncode == 1
    first, second = out.stdout.decode().splitlines()
    assert first.startswith("OK ") and second.startswith(f"TAMPERED {bad}: line {line} ") and f": {kind}: " in second


def test_untouched_recording_passes(setup: tuple[Path, Path]) -> None:
    config_path, recording = setup
    out = beamgate("verify", "--config", str(config_path), str(recording))
    assert out.returncode == 0, out.stderr
    line = out.stdout.decode().strip()
    assert line.startswith(f"OK {recording}: 13 events, 3 checkpoints, 0:00:00, signed by SHA256:")


def test_cut_at_a_line_boundary_is_unterminated_unless_the_audit_log_knows(tmp_path: Path) -> None:
    """Without the audit log a clean cut looks like a crash (exit 3); the audit log's session_end exposes it."""
    config_path = write_config(tmp_path)
    config = load(config_path)
    store = open_store(config)
    recording = sample_session(store).path
    cut = tampered(recording, lambda lines: lines[:15])
    key = tmp_path / "gateway.pub"
    key.write_text(store.public_key_line())
    crash = beamgate("verify", "--key", str(key), str(cut))
    assert crash.returncode == 3
    assert "UNTERMINATED" in crash.stdout.decode() and "1 later record(s) unsigned" in crash.stdout.decode()

    audit = open_audit(config)
    audit.emit("session_end", user="alice", session="s1", reason="exit", recording=cut.name)
    caught = beamgate("verify", "--config", str(config_path), str(cut))
    assert caught.returncode == 1
    assert ": truncated: the audit log records this session's end" in caught.stdout.decode()


def test_foreign_key_and_exported_key(tmp_path: Path) -> None:
    """A reviewer verifies with the exported public key; another gateway's recording is named as such."""
    ours = write_config(tmp_path / "ours")
    theirs = write_config(tmp_path / "theirs")
    ours_store = open_store(load(ours))
    recording = sample_session(ours_store).path
    foreign = sample_session(open_store(load(theirs))).path

    exported = tmp_path / "beamgate-recording.pub"
    out = beamgate("recording-key", "--config", str(ours), "--out", str(exported))
    assert out.returncode == 0, out.stderr
    assert exported.read_text() == ours_store.public_key_line()
    keygen = subprocess.run(["ssh-keygen", "-lf", str(exported)], capture_output=True, text=True, check=True)
    assert keygen.stdout.split()[1] == ours_store.key_id  # the same fingerprint as OpenSSH shows

    good = beamgate("verify", "--key", str(exported), str(recording))
    assert good.returncode == 0 and good.stdout.decode().startswith("OK ")
    bad = beamgate("verify", "--key", str(exported), str(foreign))
    assert bad.returncode == 1
    assert (
        ": line 9 " in bad.stdout.decode() and ": foreign_key: checkpoint 1 is signed by SHA256:" in bad.stdout.decode()
    )
    both = beamgate("verify", "--key", str(exported), "--config", str(theirs), str(recording), str(foreign))
    assert both.returncode == 0  # rotated keys: trust several


def test_json_output_folders_and_errors(setup: tuple[Path, Path], tmp_path: Path) -> None:
    config_path, recording = setup
    bad = tampered(recording, drop(11))
    out = beamgate("verify", "--config", str(config_path), "--json", str(recording.parent))
    assert out.returncode == 1
    results = {r["file"]: r for r in map(json.loads, out.stdout.decode().splitlines())}
    assert results[str(recording)]["status"] == OK and results[str(recording)]["session"] == "s1"
    problem = results[str(bad)]["problem"]
    assert problem["kind"] == "removed" and problem["line"] == 11 and problem["offset"] > 0

    junk = tmp_path / "junk.cast"
    junk.write_text("hello\n")
    out = beamgate("verify", "--config", str(config_path), str(junk), str(tmp_path / "missing.cast"))
    assert out.returncode == 1
    lines = out.stdout.decode().splitlines()
    assert lines[0].startswith("INVALID ") and "not an asciicast v2 recording" in lines[0]
    assert lines[1].startswith("INVALID ") and "cannot read" in lines[1]

    out = beamgate("verify", str(recording))
    assert out.returncode == 2 and b"no trusted key" in out.stderr


def test_unterminated_status_without_checkpoints(tmp_path: Path) -> None:
    store = open_store(load(write_config(tmp_path)))
    r = sample_session(store)
    path = tampered(r.path, lambda lines: lines[:5])
    verdict = verify_file(path, [store.public_key])
    assert verdict.status == UNTERMINATED and verdict.checkpoints == 0
    assert "no checkpoint was written, nothing can be vouched for" in verdict.text()


def test_removed_checkpoint_is_named(setup: tuple[Path, Path]) -> None:
    config_path, recording = setup
    verdict = verify_file(tampered(recording, drop(14)), [open_store(load(config_path)).public_key])
    assert verdict.problem is not None
    assert verdict.problem.detail == "1 signed record(s) missing before this line (checkpoint 2 missing)"


def test_text_from_the_file_cannot_reach_the_terminal(setup: tuple[Path, Path]) -> None:
    """A forged key field full of escape sequences is refused as malformed, not printed."""
    config_path, recording = setup
    bad = tampered(recording, replace_line(9, b'"key\\":\\"SHA256:', b'"key\\":\\"\\\\u001b[2J'))
    out = beamgate("verify", "--config", str(config_path), str(bad))
    assert out.returncode == 1 and b"\x1b" not in out.stdout
    assert b"line 9 " in out.stdout and b"checkpoint key is not a SHA256 fingerprint" in out.stdout
