"""``trace`` end to end: the real OpenSSH client, the real SSH server, real OTP 25 and OTP 28 nodes.

Every way a trace can end from the user's side is exercised through ssh:
the ssh client SIGKILLed mid-trace, the gateway (a real ``beamgate serve``
process) SIGKILLed mid-trace, Ctrl-C in the interactive shell, and the
limits (``--json`` lines ending with the ``stopped`` event, bracketed by
``trace_start`` and ``trace_stop`` in the audit log). After each, the node
itself is asked through its fixture REPL, never through beamgate, whether
any trace flag, pattern, relay or trace session of ours remains
(:func:`tests.support.trace_harness.leftovers`).

One node per runtime and one gateway in front of it are shared by the
module; each test leaves the node clean for the next (before OTP 27 the
node has a single tracer).
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from commands import trace as trace_command
from tests.support.erlang import ERLANG_SRC, ErlangNode, Runtime, compile_erlang, runtimes, wait_until
from tests.support.ssh import Client, GatewayThread, KeyPair, keygen, serve, write_gateway_config
from tests.support.trace_harness import CLEAN, leftovers

compile_erlang(ERLANG_SRC / "bg_traced.erl")  # into the fixture nodes' code path

ROLES = """
[roles.sre]
commands = ["*"]
nodes = ["*"]
trace = { max_messages = 1000, max_rate = 100, max_seconds = 300 }
"""

#: A trace that runs until something else stops it: loop_s calls work(I, s) 20 times a second.
LONG = ("bg_traced:work/2", "--match", "'[_, s]'", "--for", "60", "--limit", "1000", "--rate", "100/1")
#: One call line as recon prints it.
CALL = r"^\d\d:\d\d:\d\d\.\d{6} <0\.\d+\.0> bg_traced:work\((\d+), ([a-z]+)\)$"


@dataclass
class Setup:
    node: ErlangNode
    gw: GatewayThread
    key: KeyPair
    dir: Path

    def client(self) -> Client:
        return Client(self.gw, self.key, self.dir)


@pytest.fixture(scope="module", params=runtimes(), ids=lambda r: r.name)
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A node (OTP 25, then OTP 28) running bg_traced's loops, and a gateway in front of it."""
    runtime: Runtime = request.param
    d = tmp_path_factory.mktemp(f"trace_{runtime.name}")
    node = ErlangNode(runtime, d).start()
    gw: GatewayThread | None = None
    try:
        node.eval("{module, bg_traced} = code:ensure_loaded(bg_traced), ok.")
        node.eval("bg_traced:start(loop_a, 5, a), bg_traced:start(loop_s, 50, s), ok.")
        key = keygen(d, "alice")
        config = write_gateway_config(
            d, cookie_file=node.cookie_file, nodes=[node.name], users={"alice": ([key], ["sre"])}, roles=ROLES
        )
        gw = GatewayThread(config).start()
        yield Setup(node, gw, key, d)
    finally:
        if gw is not None:
            gw.stop()
        node.stop()


def assert_clean(node: ErlangNode, within: float = 2.0) -> None:
    """Nothing of ours traces on ``node`` within ``within`` seconds (asked through its own REPL)."""
    assert wait_until(lambda: leftovers(node) == CLEAN, within, interval=0.02), leftovers(node)


def assert_tracing(node: ErlangNode) -> None:
    """The probe sees our trace: the cleanliness checks that follow are not vacuous."""
    seen = leftovers(node)
    assert seen != CLEAN, seen
    if node.runtime.name == "otp28":
        assert "beamgate_trace" in seen, seen  # our own trace session


def test_ssh_client_sigkilled_mid_trace_leaves_the_node_clean(setup: Setup) -> None:
    mark = setup.gw.mark()
    ssh = setup.client().start("trace", *LONG)
    try:
        started = ssh.wait_line(r"^tracing bg_traced:work/2 ")
        assert "at most 1000 messages, 100 per 1s, for 60s" in started
        call = re.fullmatch(CALL, ssh.wait_line(CALL))
        assert call is not None and call.group(2) == "s"
        assert_tracing(setup.node)
        ssh.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        assert_clean(setup.node)
        assert time.monotonic() - killed < 2.5
    finally:
        ssh.close()
    stop = setup.gw.wait_audit("trace_stop", since=mark)
    assert stop["reason"] == "interrupted" and stop["messages"] >= 1
    end = setup.gw.wait_audit("session_end", lambda e: e["session"] == stop["session"], since=mark)
    assert end["reason"] == "the client closed the session"


def test_gateway_sigkilled_mid_trace_leaves_the_node_clean(setup: Setup) -> None:
    """A real ``beamgate serve`` process, killed with SIGKILL: the node notices the lost connection itself."""
    d = setup.dir / "serve"
    d.mkdir()
    config = write_gateway_config(
        d,
        cookie_file=setup.node.cookie_file,
        nodes=[setup.node.name],
        users={"alice": ([setup.key], ["sre"])},
        roles=ROLES,
    )
    # Its own hidden node name: the module's gateway stays connected to the node as beamgate@host.
    config.write_text(config.read_text().replace("[clusters.test]\n", '[clusters.test]\nnode_name = "bgserve"\n'))
    gateway, endpoint = serve(config)
    ssh = None
    try:
        ssh = Client(endpoint, setup.key, d).start("trace", *LONG, "--return")
        ssh.wait_line(CALL)
        ssh.wait_line(r" bg_traced:work/2 --> \d+$")
        assert_tracing(setup.node)
        assert "bgserve@" in setup.node.eval("nodes(hidden).")
        gateway.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        gateway.wait(10)
        assert_clean(setup.node)
        assert time.monotonic() - killed < 2.5
        assert "bgserve@" not in setup.node.eval("nodes(hidden).")
        status, _, _ = ssh.wait(30)
        assert status == 255  # ssh's own status: the connection was lost
        # The gateway died before it could stop anything: the node alone removed the trace.
        events = [json.loads(line)["event"] for line in (d / "state" / "audit.jsonl").read_text().splitlines()]
        assert "trace_start" in events and "trace_stop" not in events
    finally:
        if ssh is not None:
            ssh.close()
        if gateway.poll() is None:
            gateway.kill()
        gateway.communicate(timeout=30)


def test_ctrl_c_in_the_shell_stops_the_trace_and_says_so(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """Events stream, a quiet trace shows its status line, Ctrl-C prints the summary and the prompt returns."""
    monkeypatch.setattr(trace_command, "STATUS_EVERY", 1.0)  # the gateway runs in this process
    node, gw = setup.node, setup.gw
    node.eval("bg_traced:start(loop_q, 50, q), ok.")
    mark = gw.mark()
    shell = setup.client().shell(columns=120, rows=40)
    try:
        shell.wait_for(f"alice:{node.name}>")  # the only node is the current one
        shell.send("trace bg_traced:work/2 --match '[_, q]' --for 60 --limit 1000 --rate 100/1\r")
        deadline = time.monotonic() + 20
        while len(re.findall(r"bg_traced:work\(\d+, q\)", shell.raw)) < 5:
            assert time.monotonic() < deadline, shell.text()
            shell.pump(0.1)
        # The first line names what is traced and the limits in force (it wraps on screen: read the raw output).
        legacy = " (OTP < 27: one beamgate trace per node at a time)" if node.runtime.name == "otp25" else ""
        assert (
            f"tracing bg_traced:work/2 (1 function) in all processes with arguments matching [_, q] on "
            f"{node.name}: at most 1000 messages, 100 per 1s, for 60s{legacy}; Ctrl-C stops\r\n"
        ) in shell.raw
        node.eval("bg_traced:stop(loop_q).")  # the trace goes quiet: the status line appears
        shell.wait_for("still tracing: ", timeout=10)
        status = re.findall(
            r"still tracing: (\d+) messages so far, stops within \d+s \(([^)]*)\); Ctrl-C stops", shell.raw
        )
        seen = len(re.findall(r"bg_traced:work\(\d+, q\)", shell.raw))
        assert status and int(status[-1][0]) == seen, (status, seen)
        assert status[-1][1] == "at most 1000 messages, 100 per 1s, for 60s"
        assert_tracing(node)

        shell.send("\x03")
        pressed = time.monotonic()
        shell.wait_for(f"trace stopped after {seen} messages: interrupted", timeout=5)
        shell.wait_for("^C interrupted", timeout=5)
        shell.wait_for_prompt(timeout=5)
        assert_clean(node, within=max(0.1, 2.0 - (time.monotonic() - pressed)))
        shell.send("info\r")  # the shell goes on
        shell.wait_for("memory total:")
        shell.wait_for_prompt()
        shell.send("exit\r")
        assert shell.wait_exit() == 0
    finally:
        shell.close()
        node.eval("bg_traced:stop(loop_q).")
    stop = gw.wait_audit("trace_stop", since=mark)
    assert (stop["reason"], stop["node"], stop["messages"]) == ("interrupted", node.name, seen)
    assert stop["limits"] == {"messages": 1000, "rate": 100, "per_seconds": 1, "seconds": 60}
    assert gw.wait_audit("command", lambda e: e["line"].startswith("trace "), since=mark)["outcome"] == "interrupted"


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


TRACE_KEYS = {"ts", "pid", "kind", "mfa", "args", "result"}


def test_json_lines_with_limit_and_the_audit_bracket(setup: Setup) -> None:
    node, gw = setup.node, setup.gw
    loop_a = node.eval("pid_to_list(whereis(loop_a)).", pretty=True).strip('"')
    mark = gw.mark()
    r = setup.client().run("trace", "bg_traced:work/2", "--limit", "5", "--pid", "loop_a", "--json", timeout=60)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    lines = json_lines(r.stdout)
    calls, last = lines[:-1], lines[-1]
    assert len(calls) == 5
    for event in calls:
        assert set(event) == TRACE_KEYS
        assert (event["kind"], event["pid"], event["mfa"], event["result"]) == (
            "call",
            loop_a,
            "bg_traced:work/2",
            None,
        )
        assert re.fullmatch(r"\d+, a", event["args"]), event
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", event["ts"]), event
    numbers = [int(e["args"].split(",")[0]) for e in calls]
    assert numbers == list(range(numbers[0], numbers[0] + 5))  # consecutive calls: none lost, none extra
    assert last == {"event": "stopped", "reason": "limit", "count": 5}
    assert_clean(node)

    start = gw.wait_audit("trace_start", since=mark)
    stop = gw.wait_audit("trace_stop", since=mark)
    assert (start["node"], start["spec"], start["user"]) == (node.name, "bg_traced:work/2", "alice")
    assert start["line"] == "trace bg_traced:work/2 --limit 5 --pid loop_a --json"
    # Limits omitted take the safer of [safety] trace_defaults (100 messages, 20/s, 60s) and the role's caps.
    assert stop["limits"] == {"messages": 5, "rate": 20, "per_seconds": 1, "seconds": 60}
    assert (stop["reason"], stop["messages"], stop["session"]) == ("limit", 5, start["session"])


def test_json_return_values(setup: Setup) -> None:
    r = setup.client().run("trace", "bg_traced:work/2", "--limit", "4", "--return", "--pid", "loop_a", "--json")
    assert r.returncode == 0, r.stderr
    lines = json_lines(r.stdout)
    assert [e.get("kind") for e in lines] == ["call", "return", "call", "return", None]
    for call, ret in zip(lines[0:4:2], lines[1:4:2], strict=True):
        assert set(ret) == TRACE_KEYS and ret["args"] is None and ret["pid"] == call["pid"]
        assert ret["result"] == str(2 * int(call["args"].split(",")[0]))  # work(N, _) returns 2N
    assert lines[-1] == {"event": "stopped", "reason": "limit", "count": 4}
    assert_clean(setup.node)


@pytest.mark.parametrize(
    "flags, reason, count",
    [
        (["--rate", "10/1", "--pid", "loop_a"], "rate", 10),  # loop_a: 200 calls a second
        (["--for", "2", "--match", "'[_, s]'"], "duration", None),  # loop_s: 20 a second, for 2 s
    ],
    ids=["rate", "duration"],
)
def test_json_stop_reasons(setup: Setup, flags: list[str], reason: str, count: int | None) -> None:
    mark = setup.gw.mark()
    started = time.monotonic()
    r = setup.client().run("trace", "bg_traced:work/2", "--json", *flags, timeout=60)
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    lines = json_lines(r.stdout)
    last = lines[-1]
    assert (last["event"], last["reason"], last["count"]) == ("stopped", reason, len(lines) - 1)
    if count is not None:
        assert last["count"] == count
    else:
        assert 1.8 <= elapsed <= 15 and 20 <= last["count"] <= 60, (elapsed, last)
    stop = setup.gw.wait_audit("trace_stop", since=mark)
    assert (stop["reason"], stop["messages"]) == (reason, last["count"])
    assert_clean(setup.node)


def test_misspelt_names_fail_clearly_and_create_no_atom(setup: Setup) -> None:
    node, alice = setup.node, setup.client()
    warm = alice.run("trace", "bg_warmup_nosuch_e2e:f/1")  # the snippet's own atoms exist from here on
    assert warm.returncode == 1
    before = node.eval_int("erlang:system_info(atom_count).")
    cases = [
        (
            "bg_nosuch_mod_e2e:go/1",
            f"no such function bg_nosuch_mod_e2e:go/1 on {node.name} (no module bg_nosuch_mod_e2e)",
        ),
        ("bg_nosuch_mod_e2e", f"no such module bg_nosuch_mod_e2e on {node.name}"),
        ("bg_traced:wrok_e2e/2", f"no such function bg_traced:wrok_e2e/2 on {node.name}"),
    ]
    for spec, message in cases:
        r = alice.run("trace", spec)
        assert (r.returncode, r.stdout, r.stderr) == (1, "", f"error: {message}\n")
    assert node.eval_int("erlang:system_info(atom_count).") == before
    for name in ("bg_nosuch_mod_e2e", "wrok_e2e"):
        assert node.eval(f'catch binary_to_existing_atom(<<"{name}">>, utf8).').startswith("{'EXIT',{badarg")
    assert_clean(node)


def test_the_node_can_be_traced_again_after_every_test(setup: Setup) -> None:
    """Whatever ran before on this node, a new trace starts (OTP 25: the single tracer is free)."""
    r = setup.client().run("trace", "bg_traced:work/2", "--limit", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert json_lines(r.stdout)[-1] == {"event": "stopped", "reason": "limit", "count": 2}
