"""Recording and audit end to end: the real OpenSSH client, a real gateway, real target nodes (issue 7).

* a pty session: the recording's ``"o"`` records are byte for byte what
  ``ssh`` received, and render to the same screen; typed keys are its
  ``"i"`` records and a window resize its ``"r"`` record; ``asciinema cat``
  plays it and ``beamgate verify`` vouches for it;
* ``beamgate serve`` killed with SIGKILL mid-session: the recording stays
  valid asciicast, ``verify`` confirms the signed prefix and reports the
  session unterminated (exit 3), ``asciinema cat`` still plays it;
* a full disk (a real tmpfs as ``recording.dir``): a new session is refused
  with a message, a running one is ended with a notice, both audited; the
  same when the recording disappears under an idle session and the next
  record (a key, a resize) fails;
* ``beamgate audit`` finds commands by user, node, command and time, and
  ``beamgate replay --from-offset`` starts at the output of the command found;
* retention: old recordings are removed by the running server and audited.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyte
import pytest

from gateway.replay import CLEAR_SCREEN
from tests.support.erlang import ErlangNode, otp25, random_cookie
from tests.support.recordings import asciinema_cat, beamgate, tmpfs
from tests.support.ssh import (
    AuditView,
    Client,
    GatewayThread,
    KeyPair,
    Served,
    cast_output,
    keygen,
    read_cast,
    write_gateway_config,
)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ErlangNode, ErlangNode]]:
    """Two target nodes of one cluster (one cookie)."""
    runtime = otp25()
    assert runtime is not None, "Debian's OTP 25 (erl) is not installed: run scripts/setup.sh"
    cookie = random_cookie()
    a = ErlangNode(runtime, tmp_path_factory.mktemp("node_a"), cookie=cookie).start()
    b = ErlangNode(runtime, tmp_path_factory.mktemp("node_b"), cookie=cookie).start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def node(nodes: tuple[ErlangNode, ErlangNode]) -> ErlangNode:
    return nodes[0]


def gateway_config(d: Path, nodes: tuple[ErlangNode, ...], recording: str = "") -> tuple[Path, dict[str, KeyPair]]:
    keys = {name: keygen(d, name) for name in ("alice", "bob")}
    config = write_gateway_config(
        d,
        cookie_file=nodes[0].cookie_file,
        nodes=[n.name for n in nodes],
        users={name: ([key], ["sre"]) for name, key in keys.items()},
        recording=recording,
    )
    return config, keys


def recording_of(gw: AuditView, session: str) -> Path:
    start = gw.wait_audit("session_start", lambda e: e["session"] == session)
    return gw.audit_path.parent / "recordings" / start["recording"]


def new_session(gw: AuditView, since: int, timeout: float = 30.0) -> str:
    """The id of the first session started after audit position ``since``."""
    return str(gw.wait_audit("session_start", since=since, timeout=timeout)["session"])


def render(path: Path) -> pyte.Screen:
    """The screen a terminal shows after playing the recording's output and resize records."""
    header, events = read_cast(path)
    screen = pyte.Screen(header["width"], header["height"])
    stream = pyte.Stream(screen)
    for _, kind, data in events:
        if kind == "o":
            stream.feed(data)
        elif kind == "r":
            columns, rows = (int(n) for n in data.split("x"))
            screen.resize(rows, columns)
    return screen


def wait_for_record(path: Path, kind: str, data: str | None = None, timeout: float = 30.0) -> None:
    """Wait until the recording has a ``kind`` record (with ``data``)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().split("\n")[1:-1]  # whole records only (the last part may be mid-write)
        if any(r[1] == kind and (data is None or r[2] == data) for r in map(json.loads, lines)):
            return
        assert time.monotonic() < deadline, f"no {kind} {data} record in {path}:\n" + "\n".join(lines[-5:])
        time.sleep(0.05)


def is_held_back(text: str, cookie: str) -> bool:
    """Whether ``text`` is what a recorder may still hold back: nothing, or a proper prefix of the cookie."""
    return len(text) < len(cookie) and cookie.startswith(text)


def verify(config: Path, cast: Path) -> tuple[int, str]:
    out = beamgate("verify", "--config", str(config), str(cast))
    return out.returncode, out.stdout.decode() + out.stderr.decode()


# -- a pty session --------------------------------------------------------------------------


def test_a_pty_session_is_recorded_as_ssh_received_it(nodes: tuple[ErlangNode, ErlangNode], tmp_path: Path) -> None:
    node = nodes[0]
    config, keys = gateway_config(tmp_path, nodes)
    gw = GatewayThread(config).start()
    try:
        shell = Client(gw, keys["alice"], tmp_path).shell(columns=100, rows=30)
        try:
            shell.wait_for_prompt()
            cast = recording_of(gw, new_session(gw, 0))
            shell.send(f"use {node.name}\r")
            shell.wait_for(f"alice:{node.name}>")
            shell.send("info\r")
            shell.wait_for("memory total:")
            shell.wait_for_prompt()
            shell.pump(0.5)  # nothing in flight: the resize lands between two known outputs
            shell.resize(60, 20)
            wait_for_record(cast, "r", "60x20")
            shell.send("help\r")
            shell.wait_for("leave the shell")
            shell.wait_for_prompt()
            shell.send("whoami\r")
            shell.wait_for("protected processes")  # starts its line: not wrapped at 60 columns
            shell.wait_for_prompt()
            shell.send("exit\r")
            assert shell.wait_exit() == 0
        finally:
            shell.close()
        gw.wait_audit("session_end")
    finally:
        gw.stop()

    # What ssh received, byte for byte: the "o" records, nothing else (checkpoints and markers skipped).
    assert "\ufffd" not in shell.raw  # pexpect decoded the bytes losslessly (strict UTF-8)
    received = shell.raw.encode()
    assert cast_output(cast).encode() == received
    header, events = read_cast(cast)
    kinds = {e[1] for e in events}
    assert kinds == {"o", "i", "r", "m", "c"}
    assert [e[2] for e in events if e[1] == "m"] == [f"use {node.name}", "info", "help", "whoami", "exit"]

    # ...and it looks the same: the same screen, cursor included, at the resized size.
    played = render(cast)
    assert (played.columns, played.lines) == (60, 20) == (shell.screen.columns, shell.screen.lines)
    assert played.display == shell.screen.display
    assert (played.cursor.x, played.cursor.y) == (shell.screen.cursor.x, shell.screen.cursor.y)
    assert "alice:" in "\n".join(played.display)

    # Typed keys are the "i" records; the resize an "r" record, between the keys typed around it.
    assert (header["width"], header["height"]) == (100, 30)
    keys_and_resizes = "".join(e[2] if e[1] == "i" else f"<{e[2]}>" for e in events if e[1] in "ir")
    assert keys_and_resizes == f"use {node.name}\rinfo\r<60x20>help\rwhoami\rexit\r"

    played_by_asciinema = asciinema_cat(cast)
    assert played_by_asciinema.returncode == 0, played_by_asciinema.stderr
    assert played_by_asciinema.stdout == received

    status, text = verify(config, cast)
    assert status == 0 and text.startswith(f"OK {cast}: "), text
    checkpoints = sum(1 for e in events if e[1] == "c")
    assert f": {len(events) - checkpoints} events, {checkpoints} checkpoint" in text


# -- SIGKILL mid-session --------------------------------------------------------------------


def test_sigkill_of_beamgate_serve_leaves_a_verifiable_prefix(node: ErlangNode, tmp_path: Path) -> None:
    config, keys = gateway_config(tmp_path, (node,), recording='checkpoint_interval = "6s"')
    served = Served(config).start()
    try:
        shell = Client(served.endpoint, keys["alice"], tmp_path).shell()
        try:
            shell.wait_for_prompt()
            session = new_session(served, 0)
            cast = recording_of(served, session)
            wait_for_record(cast, "c")  # the banner and the prompt are signed by the timer
            shell.send("info\r")  # ...this command and its output are not yet: the next checkpoint is 6 s away
            shell.wait_for("memory total:")
            shell.wait_for_prompt()
            shell.pump(0.3)
            assert served.kill() == -9
            shell.wait_exit()
        finally:
            shell.close()
    finally:
        served.close()
    assert not served.audit("session_end")

    # Valid asciicast up to the last event: whole JSON lines only, the header first.
    data = cast.read_bytes()
    assert data.endswith(b"\n")
    lines = data.decode().splitlines()
    assert json.loads(lines[0])["version"] == 2
    records = [json.loads(line) for line in lines[1:]]
    assert all(isinstance(r, list) and len(r) == 3 for r in records)
    # Recorded before sent: everything ssh showed is there, but for a tail that could begin the cookie,
    # which the recorder holds back until the next output decides (it is never written if none comes).
    recorded = cast_output(cast)
    received = re.sub(r"Connection to \S+ closed by remote host\.\r*\n$", "", shell.raw)  # ssh's own words
    assert received.startswith(recorded)
    assert is_held_back(received[len(recorded) :], node.cookie)
    assert "memory total:" in cast_output(cast)

    played = asciinema_cat(cast)
    assert played.returncode == 0, played.stderr
    assert played.stdout == cast_output(cast).encode()

    last_checkpoint = max(i for i, r in enumerate(records, 2) if r[1] == "c")
    unsigned = len(lines) - last_checkpoint
    assert unsigned > 0
    status, text = verify(config, cast)
    assert status == 3, text
    assert text.startswith(f"UNTERMINATED {cast}: intact up to line {last_checkpoint} "), text
    assert f"; {unsigned} later record(s) unsigned: the gateway stopped without closing this recording" in text


# -- a full disk ----------------------------------------------------------------------------


def fill(directory: Path) -> Path:
    """Write a file until the file system is full."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError as exc:
        assert exc.strerror == "No space left on device"
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_refuses_new_sessions_and_ends_running_ones(node: ErlangNode, tmp_path: Path) -> None:
    config, keys = gateway_config(tmp_path, (node,), recording='min_free_space = "32KiB"\ncheckpoint_interval = "1s"')
    recordings = tmp_path / "state" / "recordings"
    with tmpfs(recordings, "256k"):
        gw = GatewayThread(config).start()
        try:
            alice = Client(gw, keys["alice"], tmp_path)
            shell = alice.shell()
            try:
                shell.wait_for_prompt()
                running = new_session(gw, 0)
                cast = recording_of(gw, running)
                wait_for_record(cast, "c")
                filler = fill(recordings)

                # A new session is refused, with the reason, before anything runs.
                mark = gw.mark()
                refused = alice.run("whoami")
                assert (refused.returncode, refused.stdout) == (1, "")
                assert re.fullmatch(
                    r"error: this session cannot be recorded or audited \(recording directory "
                    + re.escape(str(recordings))
                    + r" has \d+ bytes free, less than recording\.min_free_space \(32768\)\); it is refused\n",
                    refused.stderr,
                ), refused.stderr
                failed = gw.wait_audit("recording_failed", since=mark)
                assert failed["stage"] == "start" and "min_free_space" in failed["error"]
                assert not gw.audit("session_start", since=mark)
                assert not gw.audit("command", since=mark)

                # The running session goes on until its recording cannot take more, then it is ended.
                for _ in range(40):
                    if not shell.child.isalive():
                        break
                    shell.send("help\r")
                    shell.pump(0.5)
                assert shell.wait_exit() == 1
            finally:
                shell.close()
            # Nothing reached the user unrecorded but the gateway's own notice of why the session ended.
            recorded = cast_output(cast)
            assert shell.raw.startswith(recorded)
            held, _, told = shell.raw[len(recorded) :].partition("\r\n")
            assert is_held_back(held, node.cookie)
            failure = f"cannot write recording {cast}: No space left on device"
            assert told.replace("\r\n", "\n").strip() in (
                f"error: {failure}; the session is ended",  # a write of the mode failed
                f"beamgate: the session recording failed ({failure})",  # recording a key or a resize failed
            )
            failed = gw.wait_audit("recording_failed", lambda e: e["session"] == running)
            assert failed["stage"] == "write" and failed["recording"] == cast.name
            assert "No space left on device" in failed["error"]
            assert gw.wait_audit("session_end", lambda e: e["session"] == running)["status"] == 1

            # What was written is whole and signed up to its last checkpoint.
            played = asciinema_cat(cast)
            assert played.returncode == 0 and played.stdout == recorded.encode()
            assert "beamgate: signed in as alice" in recorded
            status, text = verify(config, cast)  # the audit log explains the missing end: not cut short
            assert status == 3 and text.startswith(f"UNTERMINATED {cast}: intact up to line "), text
            assert text.rstrip().endswith(
                f'the gateway could not write it ("{failure}"), as its audit log records at {failed["ts"]}'
            )

            filler.unlink()  # space again: sessions are accepted again
            assert alice.run("whoami").returncode == 0
        finally:
            gw.stop()


@pytest.mark.parametrize("trigger", ["a key", "a resize"])
def test_a_recording_gone_under_an_idle_session_ends_it_at_the_next_record(
    node: ErlangNode, tmp_path: Path, trigger: str
) -> None:
    """The first record that fails is the user's key or a resize: no mode is writing, the session still ends."""
    config, keys = gateway_config(tmp_path, (node,), recording='checkpoint_interval = "1s"')
    gw = GatewayThread(config).start()
    try:
        alice = Client(gw, keys["alice"], tmp_path)
        shell = alice.shell()
        try:
            shell.wait_for_prompt()
            session = new_session(gw, 0)
            cast = recording_of(gw, session)
            wait_for_record(cast, "c")  # everything so far is signed: no timer is pending
            shutil.rmtree(cast.parent)
            if trigger == "a key":
                shell.send("#")  # not a character random_cookie() uses: the recorder cannot hold it back
            else:
                shell.resize(90, 25)
            assert shell.wait_exit() == 1
        finally:
            shell.close()
        failure = f"cannot write recording {cast}: the file was deleted (recording directory removed?)"
        assert shell.raw.endswith(f"\r\nbeamgate: the session recording failed ({failure})\r\n"), shell.raw[-300:]
        assert "#" not in shell.raw  # the key that could not be recorded was not acted on
        failed = gw.wait_audit("recording_failed", lambda e: e["session"] == session)
        assert (failed["stage"], failed["error"]) == ("write", failure)
        end = gw.wait_audit("session_end", lambda e: e["session"] == session)
        assert (end["reason"], end["status"]) == (f"the session recording failed ({failure})", 1)

        refused = alice.run("whoami")
        assert refused.returncode == 1 and refused.stderr == (
            f"error: this session cannot be recorded or audited (recording directory {cast.parent} is unusable: "
            "No such file or directory); it is refused\n"
        )
    finally:
        gw.stop()


# -- audit search and replay ----------------------------------------------------------------


def search(config: Path, *args: str) -> list[dict[str, Any]]:
    out = beamgate("audit", "--config", str(config), "--json", *args)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.decode().splitlines()]


def commands(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["user"], r["line"]) for r in records if r["event"] == "command"]


def test_audit_search_finds_commands_and_replay_jumps_to_them(
    nodes: tuple[ErlangNode, ErlangNode], tmp_path: Path
) -> None:
    a, b = nodes
    config, keys = gateway_config(tmp_path, nodes)
    gw = GatewayThread(config).start()
    try:
        alice, bob = Client(gw, keys["alice"], tmp_path), Client(gw, keys["bob"], tmp_path)
        first = alice.run("info", "--node", a.name)
        assert first.returncode == 0, first.stderr
        assert bob.run("proc_count", "memory", "3", "--node", b.name).returncode == 0
        time.sleep(0.01)
        since = datetime.now(UTC)
        time.sleep(0.01)
        assert alice.run("proc_count", "reductions", "2", "--node", a.name).returncode == 0
        shell = bob.shell()
        try:
            shell.wait_for_prompt()
            shell.send(f"use {a.name}\r")
            shell.wait_for(f"bob:{a.name}>")
            shell.send("info\r")
            shell.wait_for("memory total:")
            shell.wait_for_prompt()
            shell.send("proc_count message_queue_len 2\r")
            shell.wait_for("top 2 processes by message_queue_len")
            shell.wait_for_prompt()
            shell.send("exit\r")
            assert shell.wait_exit() == 0
        finally:
            shell.close()
        assert bob.run("info", "--node", b.name).returncode == 0  # audited before ssh sees the session end
    finally:
        gw.stop()

    bobs = search(config, "--user", "bob")
    assert bobs and {r["user"] for r in bobs} == {"bob"}
    assert commands(bobs) == [
        ("bob", f"proc_count memory 3 --node {b.name}"),
        ("bob", f"use {a.name}"),
        ("bob", "info"),
        ("bob", "proc_count message_queue_len 2"),
        ("bob", "exit"),
        ("bob", f"info --node {b.name}"),
    ]
    on_a = search(config, "--node", a.name)
    assert {r["event"] for r in on_a} == {"command"} and {r["node"] for r in on_a} == {a.name}
    assert commands(on_a) == [
        ("alice", f"info --node {a.name}"),
        ("alice", f"proc_count reductions 2 --node {a.name}"),
        ("bob", "info"),
        ("bob", "proc_count message_queue_len 2"),
    ]
    assert commands(search(config, "--command", "proc_count")) == [
        ("bob", f"proc_count memory 3 --node {b.name}"),
        ("alice", f"proc_count reductions 2 --node {a.name}"),
        ("bob", "proc_count message_queue_len 2"),
    ]
    recent = search(config, "--since", since.isoformat())
    assert all(datetime.fromisoformat(r["ts"]) >= since for r in recent)
    assert commands(recent) == [
        ("alice", f"proc_count reductions 2 --node {a.name}"),
        ("bob", f"use {a.name}"),
        ("bob", "info"),
        ("bob", "proc_count message_queue_len 2"),
        ("bob", "exit"),
        ("bob", f"info --node {b.name}"),
    ]
    [found] = search(config, "--user", "bob", "--node", a.name, "--command", "proc_count")
    assert found["line"] == "proc_count message_queue_len 2" and found["outcome"] == "ok"

    # The record names the recording and the offset of the command in it; replay starts there.
    cast = config.parent / "state" / "recordings" / found["recording"]
    offset = found["recording_offset"]
    assert cast.read_bytes()[offset - 1 : offset] == b"\n"
    replayed = beamgate("replay", "--config", str(config), found["recording"], "--from-offset", str(offset))
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.startswith(CLEAR_SCREEN)
    shown = replayed.stdout[len(CLEAR_SCREEN) :].decode()
    records = [json.loads(line) for line in cast.read_bytes()[offset:].decode().splitlines()]
    assert shown == "".join(r[2] for r in records if r[1] == "o")
    assert shown.startswith(f"top 2 processes by message_queue_len on {a.name}\r\nPID ")
    assert "memory total:" not in shown and "memory total:" in cast_output(cast)  # the earlier info is skipped

    human = beamgate("audit", "--config", str(config), "--user", "bob", "--command", "proc_count", "--node", a.name)
    assert human.returncode == 0 and human.stderr.decode().strip() == "1 event(s)"
    assert f"rec={found['recording']}@{offset}" in human.stdout.decode()

    # An exec command: from its offset the replay is exactly what ssh printed.
    [info_a] = search(config, "--user", "alice", "--command", "info")
    replayed = beamgate(
        "replay", "--config", str(config), info_a["recording"], "--from-offset", str(info_a["recording_offset"])
    )
    assert replayed.stdout == CLEAR_SCREEN + first.stdout.encode()

    checked = beamgate("audit", "--config", str(config), "--verify")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.decode().startswith(f"OK {config.parent / 'state' / 'audit.jsonl'}: ")
    assert "hash chain intact" in checked.stdout.decode()


# -- retention ------------------------------------------------------------------------------


def test_the_server_removes_recordings_past_retention_and_audits_it(node: ErlangNode, tmp_path: Path) -> None:
    config, keys = gateway_config(tmp_path, (node,), recording="retention_days = 30")
    gw = GatewayThread(config).start()
    try:
        alice = Client(gw, keys["alice"], tmp_path)
        assert alice.run("whoami").returncode == 0
        old_session = gw.wait_audit("session_end")["session"]
        assert alice.run("help").returncode == 0
    finally:
        gw.stop()
    recordings = tmp_path / "state" / "recordings"
    old = recording_of(gw, old_session)
    [recent] = [p for p in recordings.glob("*.cast") if p != old]
    aged = time.time() - 40 * 86400
    os.utime(old, (aged, aged))
    size = old.stat().st_size
    mark = gw.mark()

    again = GatewayThread(config).start()  # the server sweeps when it starts, then hourly
    try:
        removed = again.wait_audit("retention", since=mark)
    finally:
        again.stop()
    assert not old.exists() and recent.exists()
    assert removed["recording"] == old.name
    assert (removed["user"], removed["session"]) == ("alice", old_session)
    assert (removed["bytes"], removed["retention_days"]) == (size, 30)
    assert removed["last_write"] == datetime.fromtimestamp(int(aged), UTC).isoformat().replace("+00:00", "Z")
    assert len(again.audit("retention", since=mark)) == 1
    found = search(config, "--event", "retention")
    assert [r["recording"] for r in found] == [old.name]
