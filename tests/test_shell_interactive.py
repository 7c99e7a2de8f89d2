"""The interactive shell through a real pty: ssh -tt under pexpect, rendered with pyte.

Typing commands, Tab completion from the registry, history, ``use``, Ctrl-C
while a node hangs (SIGSTOP) returning to the prompt at once and ending the
remote work, window resizes, Ctrl-D, the recording being byte for byte what
the terminal got, and remote text carrying ESC and OSC sequences arriving
inert. Also the shell without a pty (``ssh -T``), line by line.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.erlang import ErlangNode, short_host, wait_until
from tests.support.ssh import Client, GatewayThread, KeyPair, cast_output, keygen, read_cast, write_gateway_config

EVIL = "evil\x1b]0;pwned\x07\x1b[31mred"


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shell")


@pytest.fixture(scope="module")
def gw(node: ErlangNode, d: Path) -> Iterator[GatewayThread]:
    key = keygen(d, "alice")
    config = write_gateway_config(
        d,
        cookie_file=node.cookie_file,
        nodes=[node.name, f"ghost@{short_host()}"],
        users={"alice": ([key], ["sre"])},
    )
    g = GatewayThread(config).start()
    yield g
    g.stop()


@pytest.fixture
def alice(gw: GatewayThread, d: Path) -> Client:
    return Client(gw, KeyPair(d / "alice"), d)


def session_recording(gw: GatewayThread, since: int) -> Path:
    start = gw.wait_audit("session_start", since=since)
    return gw.config.recording.dir / start["recording"]


def test_commands_completion_history_and_exit(gw: GatewayThread, alice: Client, node: ErlangNode) -> None:
    mark = gw.mark()
    shell = alice.shell()
    try:
        shell.wait_for("signed in as alice (roles: sre)")
        shell.wait_for("alice:(no node)>")
        shell.send("who\t")  # a command name
        shell.wait_for("alice:(no node)> whoami")
        shell.send("\r")
        shell.wait_for("protected processes")  # the end of whoami's permissions
        shell.wait_for_prompt()

        shell.send("use bgt\t")  # a node name: only the ones the user may use
        shell.wait_for(f"> use {node.name}")
        shell.send("\r")
        shell.wait_for(f"using {node.name}")
        shell.wait_for(f"alice:{node.name}>")  # the prompt shows the current node

        shell.send("info --js\t")  # an option
        shell.wait_for("info --json")
        shell.send("\x15help he\t")  # a command name as an argument
        shell.wait_for("help help")
        shell.send("\r")
        shell.wait_for("Cost on the node:")
        shell.wait_for_prompt()

        shell.send("info\r")
        shell.wait_for("memory total:")
        shell.wait_for_prompt()
        shell.send("\x1b[A")  # Up: the last line comes back
        shell.wait_for(f"alice:{node.name}> info")
        shell.send("\x15frobnicate\r")
        shell.wait_for("usage: unknown command 'frobnicate'; try help")
        shell.wait_for_prompt()
        shell.send("\x04")  # Ctrl-D leaves
        assert shell.wait_exit() == 0
    finally:
        shell.close()
    cast = session_recording(gw, mark)
    assert cast_output(cast) == shell.raw  # the recording is what the terminal received
    header, events = read_cast(cast)
    assert (header["width"], header["height"]) == (100, 30)
    typed = "".join(e[2] for e in events if e[1] == "i")
    assert typed == "who\t\ruse bgt\t\rinfo --js\t\x15help he\t\rinfo\r\x1b[A\x15frobnicate\r\x04"
    lines = [e["line"] for e in gw.audit("command", since=mark)]
    assert lines == ["whoami", f"use {node.name}", "help help", "info", "frobnicate"]
    assert gw.wait_audit("session_end", since=mark)["status"] == 0


def test_ctrl_c_cancels_a_hung_command_and_its_remote_work(gw: GatewayThread, alice: Client, node: ErlangNode) -> None:
    shell = alice.shell()
    try:
        shell.wait_for("signed in as alice")
        shell.send(f"use {node.name}\r")
        shell.wait_for(f"alice:{node.name}>")
        shell.send("info\r")  # connects and warms up the snippet cache
        shell.wait_for("memory total:")
        shell.wait_for_prompt()
        baseline = node.eval_int("erlang:system_info(process_count).")
        os.kill(node.os_pid, signal.SIGSTOP)
        try:
            shell.send("info\r")
            shell.pump(1.0)
            assert shell.text().rstrip().endswith(f"alice:{node.name}> info")  # hanging
            pressed = time.monotonic()
            shell.send("\x03")
            shell.wait_for("^C interrupted", timeout=5)
            shell.wait_for_prompt(timeout=5)
            assert time.monotonic() - pressed < 2.0
        finally:
            os.kill(node.os_pid, signal.SIGCONT)
        # The worker the cancelled command started on the node is killed once the node runs again.
        assert wait_until(lambda: node.eval_int("erlang:system_info(process_count).") <= baseline, timeout=10)
        shell.send("info\r")
        shell.wait_for("run queue:")
        shell.wait_for_prompt()
        shell.send("exit\r")
        assert shell.wait_exit() == 0
    finally:
        shell.close()
    event = gw.wait_audit("command", lambda e: e["outcome"] == "interrupted")
    assert event["line"] == "info" and event["node"] == node.name


def test_confirmations_are_typed_in_the_shell(gw: GatewayThread, alice: Client, node: ErlangNode) -> None:
    """bin_leak is expensive: the policy asks, and only the exact answer runs it."""
    mark = gw.mark()
    shell = alice.shell()
    try:
        shell.wait_for_prompt()
        shell.send(f"use {node.name}\r")
        shell.wait_for(f"alice:{node.name}>")
        shell.send("bin_leak 3\r")
        shell.wait_for("Type yes to run it; anything else cancels.")
        shell.send("yes\r")
        shell.wait_for("BYTES FREED")
        shell.wait_for_prompt()
        shell.send("bin_leak 3\r")
        shell.wait_for("Type yes to run it; anything else cancels.")
        shell.send("no\r")
        shell.wait_for("cancelled: nothing was sent")
        shell.wait_for_prompt()
        shell.send("exit\r")
        shell.wait_exit()
    finally:
        shell.close()
    runs = [e for e in gw.audit("command", since=mark) if e["line"] == "bin_leak 3"]
    assert [(e["outcome"], e["confirmed"]) for e in runs] == [("ok", True), ("cancelled", False)]


def test_ctrl_c_in_exec_mode_with_a_pty(gw: GatewayThread, alice: Client, node: ErlangNode) -> None:
    assert alice.run("info", "--node", node.name).returncode == 0  # connected and warm
    os.kill(node.os_pid, signal.SIGSTOP)
    try:
        shell = alice.shell("info", "--node", node.name)  # ssh -tt gateway info ...: exec with a pty
        try:
            shell.pump(1.0)
            shell.send("\x03")
            shell.wait_for("error: interrupted", timeout=5)
            assert shell.wait_exit(timeout=5) == 1
        finally:
            shell.close()
    finally:
        os.kill(node.os_pid, signal.SIGCONT)
    assert gw.wait_audit("command", lambda e: e["outcome"] == "interrupted" and "--node" in e["line"])


def test_window_resize(gw: GatewayThread, alice: Client) -> None:
    mark = gw.mark()
    shell = alice.shell(columns=100, rows=30)
    try:
        shell.wait_for("signed in as alice")
        shell.wait_for_prompt()
        shell.resize(40, 12)
        typed = "help " + "x" * 40
        shell.send(typed)
        # prompt_toolkit now wraps the line being edited at 40 columns
        tail = len("alice:(no node)> " + typed) - 40
        shell.wait_for("x" * tail)
        row = shell.screen.cursor.y
        assert shell.screen.display[row].rstrip() == "x" * tail
        assert shell.screen.display[row - 1].endswith("x" * (40 - tail))
        shell.send("\x15exit\r")
        shell.wait_exit()
    finally:
        shell.close()
    _, events = read_cast(session_recording(gw, mark))
    assert ["r", "40x12"] in [e[1:] for e in events]


def register_in_epmd(name: str) -> socket.socket:
    """Register ``name`` in the local EPMD (ALIVE2_REQ); it stays while the socket is open."""
    encoded = name.encode()
    body = struct.pack(">BHBBHHH", 120, 45555, 77, 0, 6, 5, len(encoded)) + encoded + struct.pack(">H", 0)
    sock = socket.create_connection(("127.0.0.1", 4369))
    sock.sendall(struct.pack(">H", len(body)) + body)
    assert sock.recv(16)[:2] in (b"v\x00", b"y\x00")
    return sock


def test_remote_text_with_escape_sequences_arrives_inert(gw: GatewayThread, alice: Client) -> None:
    """EPMD on the node's host lists a name carrying an OSC title change and a colour: it is shown, not obeyed."""
    with register_in_epmd(EVIL):
        ghost = f"ghost@{short_host()}"
        r = subprocess.run(
            alice.argv("info", "--node", ghost), capture_output=True, stdin=subprocess.DEVNULL, timeout=60
        )
        assert r.returncode == 1
        assert b"\x1b" not in r.stdout + r.stderr and b"\x07" not in r.stderr
        assert b"evil\\x1b]0;pwned\\x07\\x1b[31mred" in r.stderr

        shell = alice.shell()
        try:
            shell.wait_for_prompt()
            shell.send("nodes\r")
            shell.wait_for("evil\\x1b]0;pwned")
            shell.wait_for_prompt()
            assert shell.screen.title == ""  # no OSC reached the terminal
            rows = [y for y, text in enumerate(shell.screen.display) if "evil\\x1b" in text]
            assert rows and all(c.fg == "default" for y in rows for c in shell.screen.buffer[y].values())  # no colour
            assert "\x1b]0;" not in shell.raw
            shell.send("exit\r")
            shell.wait_exit()
        finally:
            shell.close()


def test_shell_without_a_pty_runs_line_by_line(gw: GatewayThread, alice: Client, node: ErlangNode) -> None:
    mark = gw.mark()
    r = alice.run(options=["-T"], input=f"whoami\nuse {node.name}\ninfo --json\nfrobnicate\n")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout
    assert "user:    alice" in r.stdout
    assert f"alice:{node.name}> " in r.stdout and '"process_count":' in r.stdout
    assert "usage: unknown command 'frobnicate'; try help" in r.stdout
    lines = [e["line"] for e in gw.audit("command", since=mark)]
    assert lines == ["whoami", f"use {node.name}", "info --json", "frobnicate"]
    cast = session_recording(gw, mark)
    assert cast_output(cast) == r.stdout
    assert read_cast(cast)[0]["beamgate"]["user"] == "alice"
