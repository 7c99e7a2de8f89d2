"""``beamgate replay``: exact output, real timing scaled by --speed, and jumps to a command's offset."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gateway.replay import CLEAR_SCREEN, Frame, ReplayError, frames, play
from tests.support.recordings import beamgate, load, open_audit, open_store, sample_session, start, write_config


class Sink:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


def test_replay_plays_exactly_the_output(tmp_path: Path) -> None:
    r = sample_session(open_store(load(write_config(tmp_path))))
    out = beamgate("replay", "--speed", "1000", str(r.path))
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"alice@app> info\r\nnode app@localhost\r\nprocs 42\r\nalice@app> bye\r\n"


def test_control_sequences_are_replayed_untouched(tmp_path: Path) -> None:
    """What the terminal got (colours, cursor moves) comes back byte for byte: replay sanitizes nothing."""
    store = open_store(load(write_config(tmp_path)))
    r = start(store)
    r.output("\x1b[1;31mred\x1b[0m \x1b[2J\x1b[H\u00e9\u4e2d\r\n")
    r.close()
    out = beamgate("replay", "--speed", "1000", str(r.path))
    assert out.stdout == "\x1b[1;31mred\x1b[0m \x1b[2J\x1b[H\u00e9\u4e2d\r\n".encode()


def test_audit_search_then_replay_from_the_command(tmp_path: Path) -> None:
    """The reviewer's path: find the command in the audit log, replay from its offset."""
    config_path = write_config(tmp_path)
    config = load(config_path)
    audit = open_audit(config)
    store = open_store(config, audit)
    r = start(store, session="s7", user="carol")
    r.output("carol@app> ")
    for line, output in (("info", "node app@localhost\r\n"), ("proc_count memory 3", "<0.1.0> 9000\r\n")):
        offset = r.offset
        r.input(line + "\r")
        r.output(line + "\r\n" + output + "carol@app> ")
        audit.emit(
            "command", user="carol", session="s7", node="app@localhost", line=line, command=line.split()[0],
            decision="allow", rule="sre", outcome="ok", duration_ms=2, output_bytes=len(output),
            recording=r.file_name, recording_offset=offset,
        )  # fmt: skip
    r.close()

    found = beamgate("audit", "--config", str(config_path), "--user", "carol", "--command", "proc_count", "--json")
    assert found.returncode == 0, found.stderr
    (record,) = [json.loads(line) for line in found.stdout.decode().splitlines()]
    path = config.recording.dir / record["recording"]
    out = beamgate("replay", "--speed", "1000", "--from-offset", str(record["recording_offset"]), str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout == CLEAR_SCREEN + b"proc_count memory 3\r\n<0.1.0> 9000\r\ncarol@app> "

    by_name = beamgate(
        "replay", "--config", str(config_path), "--speed", "1000", "--from-offset", str(record["recording_offset"]),
        record["recording"],
    )  # fmt: skip
    assert by_name.returncode == 0 and by_name.stdout == out.stdout


def test_bad_offsets_are_refused_with_the_nearest_events(tmp_path: Path) -> None:
    r = sample_session(open_store(load(write_config(tmp_path))))
    header = len(r.path.read_bytes().splitlines(keepends=True)[0])
    out = beamgate("replay", "--from-offset", str(header + 3), str(r.path))
    assert out.returncode == 1
    assert f"is inside an event of {r.path}; events start at {header} and " in out.stderr.decode()
    out = beamgate("replay", "--from-offset", "5", str(r.path))
    assert out.returncode == 1 and b"outside the events" in out.stderr
    out = beamgate("replay", "--speed", "0", str(r.path))
    assert out.returncode == 2 and b"--speed must be greater than 0" in out.stderr
    junk = tmp_path / "junk.cast"
    junk.write_text("{}\n")
    out = beamgate("replay", str(junk))
    assert out.returncode == 1 and b"not an asciicast v2 recording" in out.stderr


@pytest.mark.parametrize(
    "event", ['["x", "o", "hi"]', '[null, "o", "hi"]', '[true, "o", "hi"]', '[-1, "o", "hi"]', '[1, "o"]', '"o"']
)
def test_a_malformed_event_is_one_error_line(tmp_path: Path, event: str) -> None:
    bad = tmp_path / "bad.cast"
    bad.write_text('{"version": 2, "width": 80, "height": 24}\n[0.5, "o", "before"]\n' + event + "\n")
    out = beamgate("replay", "--speed", "1000", str(bad))
    header = len(bad.read_bytes().splitlines(keepends=True)[0])
    assert out.returncode == 1 and out.stdout == b"before", out.stderr
    assert out.stderr.decode().splitlines() == [
        f"warning: {bad} not verified (give --key PUBFILE or --config FILE)",
        f"error: {bad}: not an asciicast event at byte {header + 21}",
    ]


def test_a_changed_recording_is_refused_before_it_reaches_the_terminal(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    r = sample_session(open_store(load(config_path)))
    public = tmp_path / "recordings.pub"
    assert beamgate("recording-key", "--config", str(config_path), "--out", str(public)).returncode == 0
    intact = beamgate("replay", "--key", str(public), "--speed", "1000", str(r.path))
    assert intact.returncode == 0 and intact.stderr == b"" and intact.stdout.startswith(b"alice@app> info")

    r.path.write_bytes(r.path.read_bytes().replace(b"procs 42", b"\\u001b]52;c;cm0gLXJmIH4=\\u0007"))
    for trust in (["--key", str(public)], ["--config", str(config_path)]):
        out = beamgate("replay", *trust, "--speed", "1000", str(r.path))
        assert out.returncode == 1 and out.stdout == b"", out.stderr
        assert out.stderr.decode().startswith(f"error: TAMPERED {r.path}: line ")
        assert out.stderr.decode().endswith("; not played (--unverified plays it anyway)\n")
    anyway = beamgate("replay", "--config", str(config_path), "--unverified", "--speed", "1000", str(r.path))
    assert anyway.returncode == 0 and b"\x1b]52;c;" in anyway.stdout
    assert anyway.stderr.decode().startswith(f"warning: TAMPERED {r.path}: ")


def test_timing_speed_and_idle_limit() -> None:
    waits: list[float] = []
    start = time.monotonic()
    clip = [Frame(0.0, b"a"), Frame(1.0, b"b"), Frame(3.0, b"c"), Frame(63.0, b"d")]
    sink = Sink()
    assert play(iter(clip), sink, speed=2.0, idle_limit=5.0, sleep=waits.append) == 4  # type: ignore[arg-type]
    assert sink.data == b"abcd"
    # waits are measured from the start; nothing really slept, so each is the cumulative target
    elapsed = time.monotonic() - start
    assert [round(w, 1) for w in waits] == [0.5, 1.5, 4.0] and elapsed < 1
    with pytest.raises(ReplayError):
        play(iter(clip), sink, speed=0)


def test_real_time_playback(tmp_path: Path) -> None:
    """At speed 1 a 0.6 s recording takes about 0.6 s to play; at speed 3 about a third."""
    store = open_store(load(write_config(tmp_path)))
    r = start(store)
    r.output("a")
    time.sleep(0.6)
    r.output("b")
    r.close()
    for speed, expected in ((1.0, 0.6), (3.0, 0.2)):
        began = time.monotonic()
        play(frames(r.path), Sink(), speed=speed)  # type: ignore[arg-type]
        took = time.monotonic() - began
        assert expected * 0.9 < took < expected + 0.5
