"""Large input end to end: pastes and type-ahead never stall the gateway, and over-long lines are refused.

The interactive shell reads its keys from a pipe on the gateway's one event
loop; the shell without a pty queues lines. A 300 KB paste through a real
pty (``ssh -tt`` under pexpect), plain or as a terminal's bracketed paste,
and the same while a command hangs on a stopped node, must leave other
users' sessions answering, reach the prompt as one refused line with its
real length, and leave the shell working. Without a pty, an over-long line
is refused once, whole, and none of it runs. Each on both event loops:
asyncio's (the gateway in process) and uvloop (``beamgate serve``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.erlang import ErlangNode
from tests.support.ssh import Client, GatewayThread, KeyPair, Screen, Served, keygen, write_gateway_config

PASTE = 300_000
TOO_LONG = f"usage: line too long ({PASTE} characters; the limit is 4096)"
#: Generous: another user's exec must answer within this while a paste is digested (it never does if frozen).
PROMPT_ENOUGH = 20.0


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("input")


Gateway = GatewayThread | Served


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def gw(request: pytest.FixtureRequest, node: ErlangNode, d: Path) -> Iterator[Gateway]:
    """In process on asyncio's loop, and as ``beamgate serve`` on uvloop (what production runs)."""
    where = d / request.param
    where.mkdir()
    keys = [keygen(where, name) for name in ("alice", "bob")]
    config = write_gateway_config(
        where,
        cookie_file=node.cookie_file,
        nodes=[node.name],
        users={"alice": ([keys[0]], ["sre"]), "bob": ([keys[1]], ["sre"])},
    )
    g: Gateway = GatewayThread(config).start() if request.param == "asyncio" else Served(config).start()
    yield g
    g.stop()


def client(gw: Gateway, name: str) -> Client:
    directory = gw.config.audit.path.parent.parent
    return Client(gw.endpoint if isinstance(gw, Served) else gw, KeyPair(directory / name), directory)


@pytest.fixture
def alice(gw: Gateway) -> Client:
    return client(gw, "alice")


@pytest.fixture
def bob(gw: Gateway) -> Client:
    return client(gw, "bob")


def send_all(shell: Screen, text: str) -> None:
    """Write ``text`` into the pty, however long the gateway makes the client wait."""
    data = text.encode()
    while data:
        data = data[os.write(shell.child.child_fd, data[:4096]) :]


def paste_while_bob_asks(shell: Screen, text: str, bob: Client) -> float:
    """Paste ``text`` (from a thread: the pty blocks while the gateway holds input back) and meanwhile
    run ``whoami`` as bob on another connection; returns how long bob waited."""
    sender = threading.Thread(target=send_all, args=(shell, text), daemon=True)
    answered: list[tuple[subprocess.CompletedProcess[str], float]] = []

    def ask() -> None:
        started = time.monotonic()
        r = bob.run("whoami", timeout=PROMPT_ENOUGH * 3)
        answered.append((r, time.monotonic() - started))

    asker = threading.Thread(target=ask, daemon=True)
    sender.start()
    time.sleep(0.5)  # the paste is on its way
    asker.start()
    deadline = time.monotonic() + PROMPT_ENOUGH * 3
    while (sender.is_alive() or asker.is_alive()) and time.monotonic() < deadline:
        shell.pump(0.2)  # keep reading the terminal, as a user's would
    assert not asker.is_alive(), "bob's whoami never answered: the gateway is stalled"
    assert not sender.is_alive(), "the paste was never taken"
    r, waited = answered[0]
    assert r.returncode == 0 and "user:    bob" in r.stdout, r.stderr
    return waited


def test_a_huge_paste_leaves_the_gateway_answering_and_is_refused_whole(
    gw: Gateway, alice: Client, bob: Client
) -> None:
    mark = gw.mark()
    shell = alice.shell()
    try:
        shell.wait_for_prompt()
        waited = paste_while_bob_asks(shell, "x" * PASTE, bob)
        assert waited < PROMPT_ENOUGH
        shell.send("\r")
        shell.wait_raw(TOO_LONG, timeout=60.0)
        shell.wait_for_prompt()

        # A terminal's paste (prompt_toolkit turns bracketed paste on): the same, markers not counted.
        send_all(shell, "\x1b[200~" + "y" * PASTE + "\x1b[201~")
        shell.send("\r")
        deadline = time.monotonic() + 60
        while shell.raw.count(TOO_LONG) < 2:
            assert time.monotonic() < deadline, shell.raw[-2000:]
            shell.pump(0.2)
        shell.wait_for_prompt()

        shell.send("whoami\r")  # the shell works on
        shell.wait_raw("user:    alice", timeout=60.0)
        shell.wait_for_prompt()
        shell.send("exit\r")
        assert shell.wait_exit() == 0
    finally:
        shell.close()
    events = [e for e in gw.audit("command", since=mark) if e["user"] == "alice"]
    assert [(e["outcome"], e.get("line_length")) for e in events] == [
        ("usage", PASTE),
        ("usage", PASTE),
        ("ok", None),  # whoami
        ("ok", None),  # exit
    ]
    assert all(len(e["line"]) <= 4096 for e in events)


def test_type_ahead_while_a_command_hangs(gw: Gateway, alice: Client, bob: Client, node: ErlangNode) -> None:
    """prompt_toolkit does not read while a command runs: input then waits in the gateway, bounded."""
    shell = alice.shell()
    try:
        shell.wait_for_prompt()
        shell.send("info\r")  # connected and warm
        shell.wait_raw("memory total:", timeout=60.0)
        shell.wait_for_prompt()
        os.kill(node.os_pid, signal.SIGSTOP)
        try:
            shell.send("info\r")
            shell.pump(1.0)
            waited = paste_while_bob_asks(shell, "z" * PASTE, bob)
            assert waited < PROMPT_ENOUGH
            shell.send("\x03")  # still heard: interrupts the hung command
            shell.wait_raw("^C interrupted", timeout=10)
        finally:
            os.kill(node.os_pid, signal.SIGCONT)
        shell.send("\r")
        shell.wait_raw(TOO_LONG, timeout=60.0)
        shell.wait_for_prompt()
        shell.send("exit\r")
        assert shell.wait_exit() == 0
    finally:
        shell.close()


def test_an_over_long_line_without_a_pty_is_refused_once_and_nothing_of_it_runs(gw: Gateway, alice: Client) -> None:
    mark = gw.mark()
    # It arrives in many SSH packets: none of its pieces may pass for a line of its own.
    line = "x" * PASTE + " whoami"
    r = alice.run(options=["-T"], input=f"{line}\nwhoami --json\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("line too long") == 1
    assert f"usage: line too long ({len(line)} characters; the limit is 4096)" in r.stdout
    assert '"user":"alice"' in r.stdout
    events = [(e["outcome"], e.get("line_length"), len(e["line"])) for e in gw.audit("command", since=mark)]
    assert events == [("usage", len(line), 4096), ("ok", None, len("whoami --json"))]
