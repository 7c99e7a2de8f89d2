"""The dispatcher without SSH: node resolution, fan-out, policy values, confirmations, streaming,
errors, cancellation.

Real target nodes, the real cluster layer and the real policy engine; the
only stand-ins are a few test commands (a unit boundary: the registry is an
argument), so that what runs is seen to be the decision's invocation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from commands import REGISTRY
from commands.context import Context, Identity
from commands.errors import CommandError
from commands.grammar import parse_line
from commands.spec import Command, Invocation, Param
from commands.tracing.output import TraceStopped
from commands.tracing.plan import Limits
from gateway.audit import AuditLog
from gateway.cluster import Clusters
from gateway.config import AuditConfig, Config, load_config
from gateway.dispatch import Dispatcher, Outcome, _stop_fields
from gateway.dist.rpc import Snippet
from gateway.session_state import AuditTrail, SessionState
from gateway.target import TargetError
from policies import Denied, Policy
from tests.support.erlang import ErlangNode, otp25, short_host, wait_until
from tests.support.ssh import keygen, write_gateway_config

SLEEP = Snippet("test_sleep", "timer:sleep(60000), slept.")


@dataclass
class Captured:
    lines: list[tuple[str, str]] = field(default_factory=list)

    def out(self, text: str) -> None:
        self.lines.append(("out", text))

    def err(self, text: str) -> None:
        self.lines.append(("err", text))

    @property
    def stdout(self) -> str:
        return "".join(t for kind, t in self.lines if kind == "out")

    @property
    def stderr(self) -> str:
        return "".join(t + "\n" for kind, t in self.lines if kind == "err")


async def _echo(ctx: Context, inv: Invocation) -> dict[str, Any]:
    return {"n": inv.args["n"]}


async def _fail(ctx: Context, inv: Invocation) -> None:
    kind = inv.args["kind"]
    if kind == "command":
        raise CommandError("no such process my_server")
    if kind == "target":
        raise TargetError("timeout", "stopped on n@h after its time limit of 2s")
    if kind == "denied":
        raise Denied("not for you", "roles.x.deny")
    raise RuntimeError("boom")


async def _stream(ctx: Context, inv: Invocation) -> dict[str, Any]:
    assert ctx.emit is not None
    for i in range(3):
        await ctx.emit({"i": i, "text": "line\x1b[2J"})
    return {"event": "stopped", "count": 3}


async def _sleep(ctx: Context, inv: Invocation) -> Any:
    return await ctx.need_target().run(SLEEP, timeout=60)


def _command(name: str, run: Any, **kw: Any) -> Command:
    defaults: dict[str, Any] = {
        "summary": name,
        "shows": "",
        "when": "",
        "cost": "",
        "render": lambda r, inv: json.dumps(r),
        "to_json": lambda r, inv: r,
        "remote": False,
    }
    defaults.update(kw)
    return Command(name=name, run=run, **defaults)


TEST_COMMANDS = {
    "echo": _command("echo", _echo, params=(Param("N", "int", "a number"),)),
    "fail": _command("fail", _fail, params=(Param("KIND", "word", "which failure"),)),
    "stream": _command("stream", _stream, streaming=True, render=lambda r, inv: f"event {r}"),
    "sleepy": _command("sleepy", _sleep, remote=True),
    "shout": _command(
        "shout", _echo, params=(Param("N", "int", "n"),), render=lambda r, inv: "\x1b[31mred\x1b]0;t\x07"
    ),
}
REGISTRY_FOR_TESTS = {**REGISTRY, **TEST_COMMANDS}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ErlangNode]]:
    runtime = otp25()
    assert runtime is not None
    d = tmp_path_factory.mktemp("nodes")
    first = ErlangNode(runtime, d).start()
    second = ErlangNode(runtime, d, cookie=first.cookie).start()
    yield [first, second]
    first.stop()
    second.stop()


@pytest.fixture(scope="module")
def config(nodes: list[ErlangNode], tmp_path_factory: pytest.TempPathFactory) -> Config:
    d = tmp_path_factory.mktemp("dispatch")
    keys = {user: keygen(d, user) for user in ("alice", "bob", "carol")}  # a key identifies one user
    path = write_gateway_config(
        d,
        cookie_file=nodes[0].cookie_file,
        nodes=[nodes[0].name, nodes[1].name, f"ghost@{short_host()}"],
        users={
            "alice": ([keys["alice"]], ["sre"]),
            "bob": ([keys["bob"]], ["one"]),
            "carol": ([keys["carol"]], ["careful"]),
        },
        roles=(
            '[roles.sre]\ncommands = ["*"]\nnodes = ["*"]\n[roles.sre.args.echo]\nmax_n = 10\n'
            f'[roles.one]\ncommands = ["*"]\nnodes = ["{nodes[0].name}"]\n'
            '[roles.careful]\ncommands = ["*"]\nnodes = ["*"]\n[roles.careful.args.echo]\nconfirm = true\n'
        ),
    )
    return load_config(path)


Run = Callable[..., tuple[Outcome, Captured]]


@pytest.fixture
def run(config: Config, tmp_path: Path) -> Iterator[Run]:
    loop = asyncio.new_event_loop()
    clusters = Clusters.from_config(config)
    audit = AuditLog(AuditConfig(tmp_path / "audit.jsonl"))

    def dispatcher(user: str, confirm: Any = None) -> Dispatcher:
        policy = Policy(config, REGISTRY_FOR_TESTS).for_user(user)
        return Dispatcher(
            identity=Identity(user, ("sre",), "SHA256:test", "s1", "127.0.0.1:1"),
            state=SessionState(lambda: policy, clusters),
            audit=AuditTrail(audit, user=user, session="s1"),
            registry=REGISTRY_FOR_TESTS,
            confirm=confirm,
        )

    def run_line(line: str, user: str = "alice", confirm: Any = None) -> tuple[Outcome, Captured]:
        out = Captured()
        outcome = loop.run_until_complete(dispatcher(user, confirm).run_line(line, out))
        return outcome, out

    run_line.loop = loop  # type: ignore[attr-defined]
    run_line.dispatcher = dispatcher  # type: ignore[attr-defined]
    run_line.audit_path = tmp_path / "audit.jsonl"  # type: ignore[attr-defined]
    yield run_line
    clusters.close()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


def audit_events(run: Run) -> list[dict[str, Any]]:
    path: Path = run.audit_path  # type: ignore[attr-defined]
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_fan_out_runs_on_every_matching_node_and_reports_each(run: Run, nodes: list[ErlangNode]) -> None:
    outcome, out = run("info --nodes 'bgt*'")
    assert outcome.status == 0, out.lines
    for n in nodes:
        assert f"== {n.name} ==\n" in out.stdout
    assert out.stdout.count("memory total:") == 2

    outcome, out = run("info --nodes '*' --json")
    assert outcome.status == 1  # the ghost node fails, the others still answer
    doc = json.loads(out.stdout)
    assert set(doc) == {nodes[0].name, nodes[1].name, f"ghost@{short_host()}"}
    assert doc[nodes[1].name]["node"] == nodes[1].name
    assert "not registered in epmd" in doc[f"ghost@{short_host()}"]["error"]
    event = audit_events(run)[-1]
    assert event["node_outcomes"][f"ghost@{short_host()}"] == "error"

    outcome, out = run("info --nodes '*' --json", user="bob")  # only the nodes bob may use
    assert outcome.status == 0 and list(json.loads(out.stdout)) == [nodes[0].name]

    outcome, out = run("info --nodes 'nomatch*'")
    assert (outcome.status, out.stderr) == (2, "usage: --nodes nomatch* matches no configured node; try nodes\n")


@pytest.mark.parametrize("line", ["help", "help info", "whoami", "nodes", "use {node}", "policy", "exit"])
def test_local_commands_accept_and_ignore_node_and_json(run: Run, nodes: list[ErlangNode], line: str) -> None:
    """SPEC: every command accepts --node NODE and --json; those that run on the gateway ignore --node."""
    line = line.format(node=nodes[0].name)
    for flags in ("--node nope@nowhere", f"--node {nodes[1].name}", "--json --node nope@nowhere"):
        outcome, out = run(f"{line} {flags}")
        assert (outcome.status, out.stderr) == (0, ""), (flags, out.lines)
        if "--json" in flags:
            json.loads(out.stdout)
    if not line.startswith("nodes"):  # nodes measures round trips: its text differs run to run
        assert run(f"{line} --node nope@nowhere")[1].stdout == run(line)[1].stdout
    assert run(f"{line} --node bad_name")[0].status == 2  # still a node name, checked like any --node


def test_what_runs_is_the_policy_decision(run: Run) -> None:
    outcome, out = run("echo 500")
    assert outcome.status == 0
    assert json.loads(out.stdout) == {"n": 10}
    assert out.stderr == "note: echo: N lowered from 500 to 10 (roles.sre.args.echo.max_n)\n"
    event = audit_events(run)[-1]
    assert event["clamped"] == {"n": [500, 10]}
    assert event["decision"] == "allowed by roles.sre.commands; n 500->10"


def test_confirmations_are_asked_and_only_the_exact_answer_runs(run: Run) -> None:
    asked: list[str] = []

    def answering(answer: str | None) -> Any:
        async def confirm(prompt: str) -> str | None:
            asked.append(prompt)
            return answer

        return confirm

    outcome, out = run("echo 5", user="carol", confirm=answering("yes"))
    assert (outcome.status, json.loads(out.stdout)) == (0, {"n": 5})
    assert "echo on the gateway needs your confirmation." in asked[0] and "Type yes to run it" in asked[0]
    assert audit_events(run)[-1]["confirmed"] is True

    outcome, out = run("echo 5", user="carol", confirm=answering("y"))
    assert (outcome.kind, out.stdout, out.stderr) == ("cancelled", "", "cancelled: nothing was sent\n")
    assert audit_events(run)[-1]["confirmed"] is False

    outcome, out = run("echo 5", user="carol")  # exec mode: nobody can answer
    assert outcome.status == 3
    assert out.stderr.startswith("denied: echo needs a typed confirmation (roles.careful.args.echo.confirm)")


@pytest.mark.parametrize(
    "kind, status, message",
    [
        ("command", 1, "error: no such process my_server\n"),
        ("target", 1, "error: stopped on n@h after its time limit of 2s\n"),
        ("denied", 3, "denied: not for you\n"),
        ("internal", 1, "error: internal error in the gateway (RuntimeError); it has been logged\n"),
    ],
)
def test_failures_map_to_exit_codes(run: Run, kind: str, status: int, message: str) -> None:
    outcome, out = run(f"fail {kind}")
    assert (outcome.status, out.stdout, out.stderr) == (status, "", message)
    event = audit_events(run)[-1]
    assert event["event"] == ("denied" if status == 3 else "command")


def test_streaming_commands_print_each_event(run: Run) -> None:
    outcome, out = run("stream --json")
    assert outcome.status == 0
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines == [
        {"i": 0, "text": "line\x1b[2J"},
        {"i": 1, "text": "line\x1b[2J"},
        {"i": 2, "text": "line\x1b[2J"},
        {"event": "stopped", "count": 3},
    ]
    assert "\x1b" not in out.stdout  # JSON escapes it
    outcome, out = run("stream")
    assert out.stdout.splitlines()[0] == "event {'i': 0, 'text': 'line\\x1b[2J'}"


def test_rendered_control_characters_are_shown_not_sent(run: Run) -> None:
    _, out = run("shout 1")
    assert out.stdout == "\\x1b[31mred\\x1b]0;t\\x07\n"


def test_cancelling_a_command_ends_its_remote_work(run: Run, nodes: list[ErlangNode]) -> None:
    loop: asyncio.AbstractEventLoop = run.loop  # type: ignore[attr-defined]
    dispatcher: Dispatcher = run.dispatcher("alice")  # type: ignore[attr-defined]
    node = nodes[0]
    sleeping = (
        "length([P || P <- erlang:processes(), "
        "erlang:process_info(P, current_function) == {current_function, {timer, sleep, 1}}])."
    )
    baseline = node.eval_int(sleeping)

    async def scenario() -> None:
        task = asyncio.ensure_future(dispatcher.run_line(f"sleepy --node {node.name}", Captured()))
        for _ in range(100):
            await asyncio.sleep(0.1)
            if node.eval_int(sleeping) == baseline + 1:
                break
        assert node.eval_int(sleeping) == baseline + 1, "the worker never started"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    loop.run_until_complete(scenario())
    assert wait_until(lambda: node.eval_int(sleeping) == baseline, timeout=5)
    event = audit_events(run)[-1]
    assert (event["outcome"], event["node"]) == ("interrupted", node.name)


def test_a_trace_stops_audit_fields_carry_the_detail() -> None:
    """``trace_stop`` says why beyond the reason (a backlog tripped the rate limit); plain stops stay plain."""
    inv = parse_line("trace lists:seq/2", REGISTRY)
    assert inv is not None
    limits = Limits(100, 10, 1, 60)
    backlog = _stop_fields(inv, TraceStopped("rate", 7, limits, "app@h", "backlog"))
    assert backlog == {
        "reason": "rate",
        "messages": 7,
        "detail": "backlog",
        "limits": {"messages": 100, "rate": 10, "per_seconds": 1, "seconds": 60},
    }
    assert "detail" not in _stop_fields(inv, TraceStopped("limit", 100, limits, "app@h"))
