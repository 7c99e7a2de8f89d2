"""Exec mode end to end: ``ssh diag@gateway CMD ...`` with the real OpenSSH client.

SPEC exit codes (0 ok, 1 failed, 2 usage, 3 denied), one-line errors on
stderr, JSON output, and the audit and recording every exec leaves behind.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.erlang import ErlangNode, short_host
from tests.support.ssh import Client, GatewayThread, KeyPair, cast_output, keygen, read_cast, write_gateway_config

ROLES = """
[roles.sre]
commands = ["*"]
nodes = ["*"]

[roles.reader]
commands = ["help", "whoami", "nodes", "use", "exit"]
nodes = ["*"]

[roles.fenced]
commands = ["*"]
nodes = ["elsewhere@*"]
"""


@pytest.fixture(scope="module")
def setup(
    node: ErlangNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayThread, dict[str, KeyPair], Path]]:
    d = tmp_path_factory.mktemp("gw")
    keys = {name: keygen(d, name) for name in ("alice", "bob", "carol")}
    config = write_gateway_config(
        d,
        cookie_file=node.cookie_file,
        nodes=[node.name, f"ghost@{short_host()}"],
        users={
            "alice": ([keys["alice"]], ["sre"]),
            "bob": ([keys["bob"]], ["reader"]),
            "carol": ([keys["carol"]], ["fenced"]),
        },
        roles=ROLES,
    )
    gw = GatewayThread(config).start()
    yield gw, keys, d
    gw.stop()


@pytest.fixture
def gw(setup: tuple[GatewayThread, dict[str, KeyPair], Path]) -> GatewayThread:
    return setup[0]


def client(setup: tuple[GatewayThread, dict[str, KeyPair], Path], user: str) -> Client:
    gw, keys, d = setup
    return Client(gw, keys[user], d)


def test_success_exits_0_with_the_result_on_stdout(setup, node: ErlangNode) -> None:
    alice = client(setup, "alice")
    r = alice.run("whoami", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    me = json.loads(r.stdout)
    assert me["user"] == "alice"
    assert me["roles"] == ["sre"]
    assert me["key_fingerprint"] == alice.key.fingerprint()
    assert "info" in [c["name"] for c in me["permissions"]["commands"]]

    r = alice.run("info", "--json", "--node", node.name)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["node"] == node.name
    assert info["process_count"] == pytest.approx(node.eval_int("erlang:system_info(process_count)."), abs=20)
    for key in ("otp_release", "process_limit", "port_count", "port_limit", "atom_count", "atom_limit", "run_queue"):
        assert key in info
    assert set(info["memory"]) >= {"total", "processes", "system", "atom", "binary", "code", "ets"}


@pytest.mark.parametrize(
    "line, message",
    [
        (["frobnicate"], "usage: unknown command 'frobnicate'; try help\n"),
        (["info", "--frob"], "usage: info: unknown option '--frob'; usage: info [PROC] [KEY...]\n"),
        (["use"], "usage: missing NODE; usage: use NODE\n"),
        (["info"], "usage: info: no node selected; use NODE first or add --node NODE (nodes lists them)\n"),
        (["info", "'unterminated"], "usage: cannot split the line: No closing quotation\n"),
    ],
)
def test_usage_errors_exit_2_with_one_line(setup, line: list[str], message: str) -> None:
    r = client(setup, "alice").run(*line)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", message)


def test_no_command_is_a_usage_error(setup) -> None:
    r = client(setup, "alice").run(" ")
    assert (r.returncode, r.stderr) == (2, "usage: no command given; try: ssh ... help\n")


def test_denied_exits_3_and_is_audited_with_its_rule(setup, gw: GatewayThread, node: ErlangNode) -> None:
    r = client(setup, "bob").run("info", "--node", node.name)
    assert (r.returncode, r.stdout) == (3, "")
    assert r.stderr.startswith("denied: ") and r.stderr.count("\n") == 1, r.stderr
    event = gw.wait_audit("denied", lambda e: e["user"] == "bob" and e["command"] == "info")
    assert event["rule"] == "roles.reader.commands"
    assert event["node"] == node.name

    r = client(setup, "carol").run("info", "--node", node.name)
    assert r.returncode == 3 and f"carol may not run info on {node.name}" in r.stderr
    assert gw.wait_audit("denied", lambda e: e["user"] == "carol")["rule"] == "roles.fenced.nodes"

    r = client(setup, "carol").run("use", node.name)
    assert r.returncode == 3 and r.stderr.startswith("denied: ")

    # An unconfigured node is denied like a forbidden one: node names cannot be probed.
    for line in (["info", "--node", "nope@nowhere"], ["use", "nope@nowhere"]):
        r = client(setup, "alice").run(*line)
        assert (r.returncode, r.stdout) == (3, ""), r.stderr
        assert r.stderr.startswith("denied: ") and "alice may" in r.stderr and "not configured" in r.stderr, r.stderr


def test_a_failed_command_exits_1_with_one_line(setup) -> None:
    r = client(setup, "alice").run("info", "--node", f"ghost@{short_host()}")
    assert (r.returncode, r.stdout) == (1, "")
    ghost = f"ghost@{short_host()}"
    assert r.stderr.startswith(f"error: node {ghost} is not registered in epmd"), r.stderr
    assert r.stderr.count("\n") == 1


def test_every_exec_is_audited_and_recorded(setup, gw: GatewayThread, node: ErlangNode) -> None:
    alice = client(setup, "alice")
    r = alice.run("info", "--node", node.name)
    assert r.returncode == 0
    event = gw.wait_audit("command", lambda e: e["user"] == "alice" and e["line"] == f"info --node {node.name}")
    assert event["node"] == node.name
    assert event["decision"] == "allowed by roles.sre.commands"
    assert event["outcome"] == "ok"
    assert event["status"] == 0
    assert isinstance(event["duration_ms"], int)
    assert event["key_fingerprint"] == alice.key.fingerprint()
    cast = gw.config.recording.dir / event["recording"]
    header, events = read_cast(cast)
    assert header["command"] == f"info --node {node.name}"
    assert [e[1:] for e in events if e[1] == "m"] == [["m", event["line"]]]  # a marker at the command
    assert event["output_bytes"] == len(r.stdout.encode())
    assert header["beamgate"]["user"] == "alice"
    # What the recording says the terminal got is exactly what ssh printed.
    assert cast_output(cast) == r.stdout
    assert cast.read_bytes()[event["recording_offset"] :].startswith(b"[")
    start = gw.wait_audit("session_start", lambda e: e["session"] == event["session"])
    assert (start["mode"], start["command"], start["recording"]) == ("exec", event["line"], event["recording"])
    end = gw.wait_audit("session_end", lambda e: e["session"] == event["session"])
    assert end["status"] == 0

    r = alice.run("frobnicate")
    event = gw.wait_audit("command", lambda e: e["line"] == "frobnicate")
    assert (event["outcome"], event["status"]) == ("usage", 2)
    assert cast_output(gw.config.recording.dir / event["recording"]) == r.stderr


def test_exec_with_a_pty_sends_crlf(setup) -> None:
    argv = client(setup, "alice").argv("whoami", options=["-tt"])
    r = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0
    assert b"alice\r\nroles:" in r.stdout


def test_login_under_ones_own_name(setup) -> None:
    r = client(setup, "alice").run("whoami", "--json", user="alice")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["login"]["as"] == "alice"


def test_trace_streams_json_lines_and_is_bracketed_in_the_audit_log(setup, gw: GatewayThread, node: ErlangNode) -> None:
    argv = client(setup, "alice").argv(
        "trace", "timer:sleep/1", "--limit", "2", "--for", "30", "--json", "--node", node.name
    )
    node.eval("timer:sleep(1).")  # the module must be loaded: beamgate never loads code
    mark = gw.mark()
    ssh = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        gw.wait_audit("trace_start", since=mark, timeout=30)
        deadline = time.monotonic() + 30
        while ssh.poll() is None and time.monotonic() < deadline:
            node.eval("timer:sleep(1).")
            time.sleep(0.2)
        out, err = ssh.communicate(timeout=30)
    finally:
        if ssh.poll() is None:
            ssh.kill()
    assert ssh.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [e.get("kind") for e in lines[:2]] == ["call", "call"]
    assert lines[0]["mfa"] == "timer:sleep/1"
    assert lines[-1] == {"event": "stopped", "reason": "limit", "count": 2}
    start = gw.wait_audit("trace_start", since=mark)
    stop = gw.wait_audit("trace_stop", since=mark)
    assert (start["node"], start["spec"]) == (node.name, "timer:sleep/1")
    assert (stop["reason"], stop["messages"]) == ("limit", 2)
    assert stop["limits"]["messages"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["lists"], "usage: trace: refusing to trace every function of lists in every process"),
        (["lists:map/2", "--match", "[1]"], "usage: trace: --match has 1 arguments but lists:map/2 takes 2\n"),
    ],
)
def test_a_trace_refused_on_the_gateway_never_started(
    setup, gw: GatewayThread, node: ErlangNode, args: list[str], message: str
) -> None:
    """The trace's own checks run inside the command: trace_start waits until it reaches the node."""
    mark = gw.mark()
    r = client(setup, "alice").run("trace", *args, "--node", node.name)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.startswith(message)
    command = gw.wait_audit("command", since=mark)
    assert command["outcome"] == "usage"
    assert gw.audit("trace_start", since=mark) == []
    assert gw.audit("trace_stop", since=mark) == []
