"""A command that changes a node is audited before it acts (``kill``), end to end.

Once the policy lets ``kill`` run (and any confirmation it asks for is
typed), a ``command`` event with outcome ``started`` is written before
anything reaches the node, and the usual event when it ends. So a gateway
SIGKILLed while a kill is under way still leaves its trace; and when that
first event cannot be written (the audit log's path cannot be opened), the
kill is refused and the process lives. A real ``beamgate serve``, the
real OpenSSH client in a pty, a real OTP 25 node (asked through its own
REPL, never through beamgate).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.erlang import ErlangNode
from tests.support.ssh import Client, KeyPair, Served, keygen, write_gateway_config

ROLES = '[roles.operator]\ncommands = ["*", "kill"]\nnodes = ["*"]\n'
VICTIM = "register(victim, spawn(fun() -> receive stop -> ok end end)), ok."
# Inside funs: the fixture REPL keeps top-level bindings from one call to the next.
ALIVE = "(fun() -> case whereis(victim) of undefined -> undefined; VPid -> pid_to_list(VPid) end end)()."
CLEAR = "(fun() -> case whereis(victim) of undefined -> ok; VPid -> exit(VPid, kill), ok end end)()."


def alive(node: ErlangNode) -> str | None:
    """The victim's pid if it lives, asked through the node's own REPL."""
    value = node.eval(ALIVE, pretty=True)
    return None if value == "undefined" else value.strip('"')


@pytest.fixture
def victim(node: ErlangNode) -> Iterator[str]:
    node.eval(CLEAR)
    node.eval(VICTIM)
    pid = alive(node)
    assert pid is not None
    yield pid
    node.eval(CLEAR)


def serve(d: Path, node: ErlangNode) -> tuple[Served, KeyPair]:
    key = keygen(d, "olga")
    path = write_gateway_config(
        d, cookie_file=node.cookie_file, nodes=[node.name], users={"olga": ([key], ["operator"])}, roles=ROLES
    )
    return Served(path).start(), key


def test_a_kill_is_audited_before_it_acts_and_again_when_done(tmp_path: Path, node: ErlangNode, victim: str) -> None:
    served, key = serve(tmp_path, node)
    try:
        shell = Client(served.endpoint, key, tmp_path).shell(columns=200)
        try:
            shell.wait_for_prompt()
            shell.send("kill victim\r")
            shell.wait_raw("type its pid to confirm:")
            started = served.wait_audit("command", lambda e: e["outcome"] == "started")
            assert alive(node) == victim  # written while the process still lives
            shell.send(f"{victim}\r")
            shell.wait_raw(f"killed {victim} (victim): killed")
            shell.wait_for_prompt()
        finally:
            shell.close()
        done = served.wait_audit("command", lambda e: e["outcome"] == "ok")
    finally:
        served.stop()
    assert alive(node) is None
    kills = [(e["event"], e["outcome"]) for e in served.audit() if e.get("command") == "kill"]
    assert kills == [("command", "started"), ("command", "ok")]
    for key_ in ("line", "node", "decision", "session", "recording_offset"):
        assert started[key_] == done[key_]
    assert started["decision"] == "allowed by roles.operator.commands"


def test_a_gateway_killed_while_a_kill_runs_leaves_its_trace(tmp_path: Path, node: ErlangNode, victim: str) -> None:
    served, key = serve(tmp_path, node)
    try:
        shell = Client(served.endpoint, key, tmp_path).shell(columns=200)
        try:
            shell.wait_for_prompt()
            os.kill(node.os_pid, signal.SIGSTOP)  # the kill hangs on its way to the node...
            try:
                shell.send("kill victim\r")
                shell.pump(1.0)
                served.kill()  # ...and the gateway dies: SIGKILL, nothing runs after it
            finally:
                os.kill(node.os_pid, signal.SIGCONT)
        finally:
            shell.close()
    finally:
        served.close()
    kills = [(e["event"], e["outcome"], e["line"]) for e in served.audit() if e.get("command") == "kill"]
    assert kills == [("command", "started", "kill victim")]


def test_a_kill_that_cannot_be_audited_is_refused(tmp_path: Path, node: ErlangNode, victim: str) -> None:
    served, key = serve(tmp_path, node)
    log = served.audit_path
    try:
        shell = Client(served.endpoint, key, tmp_path).shell(columns=200)
        try:
            shell.wait_for_prompt()
            log.rename(log.with_name("audit.jsonl.1"))  # rotated away, and its path cannot be opened
            log.mkdir()
            shell.send("kill victim\r")
            shell.wait_raw(
                f"error: kill was not run: it cannot be audited (cannot open audit log {log}: Is a directory)"
            )
            # and since nothing can be audited, the session ends (as for any command)
            shell.wait_raw("the session is ended")
            assert shell.wait_exit() == 1
        finally:
            shell.close()
        assert alive(node) == victim
        assert "type its pid" not in shell.raw  # nothing reached the node, not even to describe the process
        log.rmdir()
    finally:
        served.stop()
    assert not [e for e in served.audit() if e.get("command") == "kill"]  # the recording shows what happened
