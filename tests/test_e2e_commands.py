"""The diagnostic commands end to end: the real OpenSSH client in exec mode, the real SSH server, real nodes.

Two nodes (OTP 25 and OTP 28, sharing a cookie) carry the problems
``tests/erlang/bg_plant.erl`` plants (a flooded mailbox, refc binaries, a
busy loop, a large ETS table, a hung gen_server, names and data with escape
sequences, TCP sockets with traffic). One gateway in front of them is shared
by the module; its config also names a node that never runs (``ghost``) and
one that a test starts, kills mid-command and restarts (``victim``). An
Elixir node has its own gateway, once.

Every command runs as ``ssh diag@gateway CMD ...``: exit status, stdout,
stderr (one line) and the SPEC JSON shapes are checked against the node's
own view through its fixture REPL.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.elixir import ElixirNode, elixir
from tests.support.erlang import ErlangNode, Runtime, random_cookie, random_name, runtimes, short_host, wait_until
from tests.support.harness import pid_of, plant
from tests.support.ssh import Client, GatewayThread, KeyPair, keygen, write_gateway_config

ROLES = """
[roles.sre]
commands = ["*"]
nodes = ["*"]
expensive = "allow"
"""

#: SPEC's row of proc_count, proc_window and bin_leak.
ROW_KEYS = {"pid", "value", "name", "current_function", "initial_call"}
MEMORY_KEYS = {"total", "processes", "system", "atom", "binary", "code", "ets"}
INFO_KEYS = {
    "node",
    "otp_release",
    "process_count",
    "process_limit",
    "port_count",
    "port_limit",
    "atom_count",
    "atom_limit",
    "run_queue",
    "memory",
}
EVIL = "bg_\\x1b[31mevil\\x1b[0m"  # the registered name bg_plant:evil/0 plants, as it must be shown


@dataclass
class Planted:
    """One node with its problems planted, and what the tests need to know about them."""

    node: ErlangNode
    #: The client socket that sent 3,000,000 bytes (``#Port<0.N>``).
    client_port: str
    evil_pid: str


@dataclass
class Cluster:
    nodes: dict[str, Planted]
    ghost: str
    victim: str
    cookie: str
    dir: Path
    gw: GatewayThread
    key: KeyPair

    def client(self) -> Client:
        return Client(self.gw, self.key, self.dir)


def plant_problems(node: ErlangNode, beams: Path) -> Planted:
    plant(node, beams)
    node.eval("bg_plant:flood(50000), bg_plant:worker(bg_worker), bg_plant:hung(), bg_plant:big_ets(100000), ok.")
    node.eval(
        "Box = spawn(fun() -> receive stop -> ok end end), register(bg_box, Box), "
        '[Box ! {job, I, <<"data">>} || I <- lists:seq(1, 3)], ok.'
    )
    node.eval(
        "{ok, L} = gen_tcp:listen(0, [binary, {active, false}]), {ok, Port} = inet:port(L), "
        "{ok, C} = gen_tcp:connect({127,0,0,1}, Port, [binary]), {ok, S} = gen_tcp:accept(L), "
        "ok = gen_tcp:send(C, binary:copy(<<1>>, 3000000)), {ok, _} = gen_tcp:recv(S, 3000000), ok."
    )
    evil_pid = node.eval("pid_to_list(bg_plant:evil()).", pretty=True).strip('"')
    return Planted(node, node.eval("C.", pretty=True), evil_pid)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    d = tmp_path_factory.mktemp("e2e_commands")
    cookie = random_cookie()
    started: list[ErlangNode] = []
    gw: GatewayThread | None = None
    try:
        planted = {}
        for rt in runtimes():
            node = ErlangNode(rt, d, name=random_name("app"), cookie=cookie)
            started.append(node)
            planted[rt.name] = plant_problems(node.start(), d / "beams")
        ghost = f"{random_name('app')}@{short_host()}"  # configured, never started
        victim = f"{random_name('bgv')}@{short_host()}"  # started by the test that kills it
        key = keygen(d, "alice")
        config = write_gateway_config(
            d,
            cookie_file=started[0].cookie_file,
            nodes=[*(p.node.name for p in planted.values()), ghost, victim],
            users={"alice": ([key], ["sre"])},
            roles=ROLES,
        )
        gw = GatewayThread(config).start()
        yield Cluster(planted, ghost, victim, cookie, d, gw, key)
    finally:
        if gw is not None:
            gw.stop()
        for node in started:
            node.stop()


@pytest.fixture
def p(cluster: Cluster, runtime: Runtime) -> Planted:
    """The planted node of each runtime in turn."""
    return cluster.nodes[runtime.name]


def run(
    cluster: Cluster, *args: str, node: ErlangNode | str | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``ssh diag@gateway ARGS... [--node NODE]``."""
    extra = ["--node", node if isinstance(node, str) else node.name] if node is not None else []
    return cluster.client().run(*args, *extra, timeout=timeout)


def ok(cluster: Cluster, *args: str, node: ErlangNode) -> str:
    """Stdout of a command that must succeed (exit 0, nothing on stderr)."""
    r = run(cluster, *args, node=node)
    assert (r.returncode, r.stderr) == (0, ""), (args, r.returncode, r.stderr)
    assert r.stdout.endswith("\n") and "\x1b" not in r.stdout
    return r.stdout


def ok_json(cluster: Cluster, *args: str, node: ErlangNode) -> Any:
    out = ok(cluster, *args, "--json", node=node)
    assert out.count("\n") == 1, out  # one document, one line
    return json.loads(out)


def check_rows(rows: Any, n: int) -> None:
    """SPEC's proc_count/proc_window/bin_leak list: ``n`` rows with the row keys, typed, best first."""
    assert isinstance(rows, list) and len(rows) == n, rows
    for row in rows:
        assert set(row) >= ROW_KEYS, row
        assert re.fullmatch(r"<0\.\d+\.\d+>", row["pid"]), row
        assert isinstance(row["value"], int)
        for key in ("name", "current_function", "initial_call"):
            assert row[key] is None or isinstance(row[key], str), row
        for key in ("current_function", "initial_call"):
            assert row[key] is None or re.fullmatch(r"\S+[:.]\S+/\d+", row[key]), row  # Elixir: Mod.fun/2
    values = [row["value"] for row in rows]
    assert values == sorted(values, reverse=True)


# -- SPEC JSON shapes, on the planted problems ---------------------------------------------


def test_whoami_json(cluster: Cluster) -> None:
    r = cluster.client().run("whoami", "--json")
    assert (r.returncode, r.stderr) == (0, "")
    me = json.loads(r.stdout)
    assert {"user", "roles", "key_fingerprint"} <= set(me)
    assert (me["user"], me["roles"], me["key_fingerprint"]) == ("alice", ["sre"], cluster.key.fingerprint())
    assert me["key_fingerprint"].startswith("SHA256:")
    text = cluster.client().run("whoami")
    assert text.returncode == 0 and f"key:     {cluster.key.fingerprint()}" in text.stdout


def test_info_node(cluster: Cluster, p: Planted) -> None:
    node = p.node
    info = ok_json(cluster, "info", node=node)
    assert set(info) >= INFO_KEYS
    assert (info["node"], info["otp_release"]) == (node.name, node.runtime.release)
    assert set(info["memory"]) >= MEMORY_KEYS
    assert all(isinstance(info["memory"][k], int) and info["memory"][k] > 0 for k in MEMORY_KEYS)
    assert info["memory"]["processes"] + info["memory"]["system"] == pytest.approx(info["memory"]["total"], rel=0.01)
    for key in INFO_KEYS - {"node", "otp_release", "memory"}:
        assert isinstance(info[key], int), key
    assert info["process_limit"] == node.eval_int("erlang:system_info(process_limit).")
    assert info["atom_limit"] == node.eval_int("erlang:system_info(atom_limit).")
    assert info["process_count"] == pytest.approx(node.eval_int("erlang:system_info(process_count)."), abs=20)
    text = ok(cluster, "info", node=node)
    assert f"node:             {node.name}\n" in text
    assert re.search(rf"^otp:\s+{node.runtime.release} \(erts [\d.]+\)$", text, re.M), text
    assert re.search(r"^memory ets:\s+\d+\.\d MiB$", text, re.M), text  # the 100,000-row table


def test_proc_count_finds_the_flooded_mailbox(cluster: Cluster, p: Planted) -> None:
    rows = ok_json(cluster, "proc_count", "message_queue_len", "5", node=p.node)
    check_rows(rows, 5)
    assert all(set(row) == ROW_KEYS for row in rows)
    top = rows[0]
    assert top == {
        "pid": pid_of(p.node, "bg_flooded"),
        "value": 50000,
        "name": "bg_flooded",
        "current_function": "bg_plant:hold/0",
        "initial_call": "erlang:apply/2",
    }
    text = ok(cluster, "proc_count", "message_queue_len", "5", node=p.node).splitlines()
    assert text[0] == f"top 5 processes by message_queue_len on {p.node.name}"
    assert text[2].split() == [top["pid"], "50,000", "bg_flooded", "bg_plant:hold/0", "erlang:apply/2"]
    assert len(text) == 2 + 5


def test_proc_window_finds_the_busy_loop(cluster: Cluster, p: Planted) -> None:
    p.node.eval("bg_plant:busy(), ok.")
    try:
        busy = pid_of(p.node, "bg_busy")
        rows = ok_json(cluster, "proc_window", "reductions", "4", "500", node=p.node)
        check_rows(rows, 4)
        assert all(set(row) == ROW_KEYS for row in rows)
        assert (rows[0]["pid"], rows[0]["name"], rows[0]["current_function"]) == (busy, "bg_busy", "bg_plant:spin/1")
        assert rows[0]["value"] > 10 * max(rows[1]["value"], 1)
        text = ok(cluster, "proc_window", "reductions", "4", "500", node=p.node).splitlines()
        assert text[0] == f"top 4 processes by reductions gained over 500 ms on {p.node.name}"
        assert text[2].split()[0::2] == [busy, "bg_busy", "erlang:apply/2"]
    finally:
        p.node.eval("bg_plant:stop(whereis(bg_busy)).")


def test_bin_leak_finds_the_leaker(cluster: Cluster, p: Planted) -> None:
    """bin_leak GCs every process: the leak is planted afresh before each run."""

    def leak() -> str:
        p.node.eval(
            "case whereis(bg_leaker) of undefined -> ok; Old -> unregister(bg_leaker), bg_plant:stop(Old) end, "
            "bg_plant:leak(20, 1000000), ok."
        )
        return pid_of(p.node, "bg_leaker")

    leaker = leak()
    rows = ok_json(cluster, "bin_leak", "5", node=p.node)
    check_rows(rows, 5)
    # SPEC's keys, and the bytes freed (an extension) beside the references freed ("value")
    assert all(set(row) == ROW_KEYS | {"bytes_freed"} for row in rows)
    assert rows[0] == {
        "pid": leaker,
        "value": 20,
        "name": "bg_leaker",
        "current_function": "bg_plant:hold/0",
        "initial_call": "erlang:apply/2",
        "bytes_freed": 20 * 1000000,
    }
    assert p.node.eval("process_info(whereis(bg_leaker), binary).") == "{binary,[]}"  # collected
    leaker = leak()
    text = ok(cluster, "bin_leak", "5", node=p.node).splitlines()
    assert text[0] == f"every process garbage-collected on {p.node.name}; top 5 by refc binaries freed"
    assert text[2].split()[:5] == [leaker, "20", "19.1", "MiB", "bg_leaker"]


# -- every other command, human and JSON -------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A command line (``{port}``: the planted client socket), a regex its text must match, a JSON predicate."""

    line: str
    text: str
    check: Callable[[Any, Planted], Any]


FRAGMENTATION_KEYS = {
    "allocator",
    "instance",
    "sbcs_usage",
    "mbcs_usage",
    "sbcs_block_size",
    "sbcs_carriers_size",
    "mbcs_block_size",
    "mbcs_carriers_size",
}


def alloc_rows(doc: Any, keys: set[str]) -> bool:
    """A non-empty list of allocator rows, each with exactly ``keys``."""
    return isinstance(doc, list) and bool(doc) and all(set(row) == keys for row in doc)


CASES = [
    Case(
        "info bg_worker",
        r"registered_name: bg_worker\n",
        lambda doc, p: (
            set(doc) == {"pid", "meta", "signals", "location", "memory_used", "work"}
            and doc["pid"] == pid_of(p.node, "bg_worker")
            and doc["meta"]["registered_name"] == "bg_worker"
        ),
    ),
    Case(
        "info bg_worker memory_used work",
        r"\Aprocess <0\.\d+\.0>\nmemory_used:\n  memory: .*\n(  .*\n)*work:\n  reductions: \d+\n\Z",
        lambda doc, p: set(doc) == {"pid", "memory_used", "work"} and doc["memory_used"]["message_queue_len"] == 0,
    ),
    Case(
        "alloc memory",
        r"used:\s+\d+\.\d MiB\nallocated:\s+\d+\.\d MiB\nunused:.*\nusage:\s+\d+\.\d%",
        lambda doc, p: 0 < doc["used"] <= doc["allocated"] and doc["unused"] == doc["allocated"] - doc["used"],
    ),
    Case("alloc memory used max", r"used:\s+\d+\.\d MiB", lambda doc, p: set(doc) == {"used"} and doc["used"] > 0),
    Case(
        "alloc memory allocated_types",
        r"\nbinary_alloc: .*\ndriver_alloc: .*\neheap_alloc: ",
        lambda doc, p: {r["allocator"] for r in doc["allocated_types"]} >= {"binary_alloc", "ets_alloc"},
    ),
    Case(
        "alloc memory allocated_instances max",
        r"instance 0",
        lambda doc, p: (
            [r["instance"] for r in doc["allocated_instances"]] == list(range(len(doc["allocated_instances"])))
        ),
    ),
    Case(
        "alloc fragmentation current",
        r"ALLOCATOR\s+INST\s+SBCS USAGE",
        lambda doc, p: alloc_rows(doc, FRAGMENTATION_KEYS),
    ),
    Case("alloc fragmentation max", r"alloc fragmentation \(max\)", lambda doc, p: alloc_rows(doc, FRAGMENTATION_KEYS)),
    Case(
        "alloc cache_hit_rates",
        r"INSTANCE\s+HIT RATE\s+HITS\s+CALLS",
        lambda doc, p: all(0 <= r["hit_rate"] <= 1 for r in doc),
    ),
    Case(
        "alloc average_block_sizes current",
        r"binary_alloc",
        lambda doc, p: alloc_rows(doc, {"allocator", "mbcs", "sbcs"}),
    ),
    Case(
        "alloc sbcs_to_mbcs max",
        r"ALLOCATOR\s+INSTANCE\s+SBCS/MBCS",
        lambda doc, p: all({"allocator", "instance"} <= set(r) for r in doc),
    ),
    Case(
        "scheduler_usage 200",
        r"scheduler usage over 200 ms on .*\nID\s+TYPE\s+USAGE\n\s+1\s+normal\s+\d+\.\d%",
        lambda doc, p: doc["ms"] == 200 and 0 <= doc["total"] <= 1 and doc["schedulers"][0]["type"] == "normal",
    ),
    Case(
        "ports",
        r"COUNT\s+TYPE\n\s+\d+\s+tcp_inet\n",
        lambda doc, p: (
            {r["type"]: r["count"] for r in doc}["tcp_inet"]
            == p.node.eval_int('length([P || P <- erlang:ports(), erlang:port_info(P, name) =:= {name, "tcp_inet"}]).')
        ),
    ),
    Case(
        "inet_count send_oct 2",
        r"\n#Port<0\.\d+>\s+2\.9 MiB\s+tcp_inet\s+127\.0\.0\.1:\d+",
        lambda doc, p: (doc[0]["port"], doc[0]["value"]) == (p.client_port, 3000000),
    ),
    Case(
        "inet_window oct 2 200",
        r"top 2 sockets by oct gained over 200 ms",
        lambda doc, p: len(doc) == 2 and all(r["value"] >= 0 for r in doc),
    ),
    Case(
        "port_info {port}",
        r"\Aport #Port<0\.\d+>\nmeta:\n(  .*\n)*  name:\s+tcp_inet\n",
        lambda doc, p: doc["port"] == p.client_port and doc["io"]["output"] >= 3000000,
    ),
    Case(
        "ets 3",
        r"\nbg_big\s+\d+\.\d MiB\s+100,000\s+set\s+public\s+<0\.\d+\.0>",
        lambda doc, p: (doc[0]["name"], doc[0]["size"], doc[0]["protection"]) == ("bg_big", 100000, "public"),
    ),
    Case(
        "stack bg_hung",
        r"^stack of <0\.\d+\.0> \(bg_hung\)\n  timer:sleep/1 ",
        lambda doc, p: doc["name"] == "bg_hung" and doc["stack"][0].startswith("timer:sleep/1"),
    ),
    Case(
        "state bg_worker",
        r'^state of <0\.\d+\.0> \(bg_worker\):\n#\{count => 42,label => <<"hello">>\}\n$',
        lambda doc, p: doc["state"] == '#{count => 42,label => <<"hello">>}' and not doc["truncated"],
    ),
    Case(
        "messages bg_box",
        r"3 messages queued for <0\.\d+\.0> \(bg_box\)",
        lambda doc, p: (doc["queue_len"], doc["messages"][0]) == (3, '{job,1,<<"data">>}'),
    ),
    Case(
        "apps",
        r"APPLICATION\s+VERSION\s+DESCRIPTION\nkernel\s+\d",
        lambda doc, p: {r["name"] for r in doc} >= {"kernel", "stdlib"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.line.replace(" ", "_") for c in CASES])
def test_command_in_exec_mode(cluster: Cluster, p: Planted, case: Case) -> None:
    args = case.line.replace("{port}", p.client_port).split()
    text = ok(cluster, *args, node=p.node)
    assert re.search(case.text, text, re.M), text
    doc = ok_json(cluster, *args, node=p.node)
    assert case.check(doc, p), doc


# -- error paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["info", "stack", "state", "messages"])
def test_no_such_process_exits_1_and_creates_no_atom(cluster: Cluster, p: Planted, command: str) -> None:
    name = f"bg_e2e_nope_{command}"
    for ref in (name, "<0.999999.0>"):
        r = run(cluster, command, ref, node=p.node)
        assert (r.returncode, r.stdout, r.stderr) == (1, "", f"error: no such process: {ref} on {p.node.name}\n")
    assert p.node.eval(f'catch list_to_existing_atom("{name}").').startswith("{'EXIT',{badarg,")


@pytest.mark.parametrize(
    "line, message",
    [
        (
            "proc_count bogus",
            "usage: proc_count: ATTR must be one of memory, reductions, message_queue_len, total_heap_size, "
            "heap_size, binary_memory; got 'bogus'",
        ),
        ("proc_window memory 5 1", "usage: proc_window: MS must be at least 10"),
        ("inet_count bogus", "usage: inet_count: ATTR must be one of "),
        ("alloc bogus", "usage: alloc: WHAT must be one of "),
        ("info bg_worker bogus_key", "usage: info: KEY must be one of "),
    ],
)
def test_bad_arguments_exit_2_with_usage(cluster: Cluster, p: Planted, line: str, message: str) -> None:
    r = run(cluster, *line.split(), node=p.node)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.startswith(message) and r.stderr.count("\n") == 1, r.stderr


def test_a_node_that_is_down_exits_1_with_one_line(cluster: Cluster) -> None:
    r = run(cluster, "info", node=cluster.ghost)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith(f"error: node {cluster.ghost} is not registered in epmd") and r.stderr.count("\n") == 1
    r = run(cluster, "proc_count", "memory", "--json", node=cluster.ghost)
    assert r.returncode == 1 and r.stderr.startswith(f"error: node {cluster.ghost} ")


def test_node_killed_mid_command_exits_1_and_the_restarted_node_answers(cluster: Cluster, runtime: Runtime) -> None:
    victim = ErlangNode(runtime, cluster.dir, name=cluster.victim.split("@")[0], cookie=cluster.cookie).start()
    try:
        assert ok_json(cluster, "info", node=victim)["node"] == victim.name  # connected
        ssh = cluster.client().start("proc_window", "reductions", "10", "5000", "--node", victim.name)
        try:
            # The window is running once the gateway's worker on the node waits in its timer.
            assert wait_until(lambda: sampling(victim), timeout=20), "the window never started"
            victim.kill()
            killed = time.monotonic()
            status, out, err = ssh.wait(30)
            elapsed = time.monotonic() - killed
        finally:
            ssh.close()
        assert (status, out) == (1, ""), err
        assert err == f"error: connection to {victim.name} lost (during a call)\n"
        assert elapsed < 4.0, elapsed  # noticed at once, not at the end of the window nor at a timeout

        r = run(cluster, "info", node=victim)
        assert (r.returncode, r.stdout) == (1, "") and r.stderr.startswith(f"error: node {victim.name} "), r.stderr
        assert r.stderr.count("\n") == 1

        victim.restart()
        info = ok_json(cluster, "info", node=victim)
        assert (info["node"], info["otp_release"]) == (victim.name, runtime.release)
        assert info["uptime_ms"] < 60_000  # the new incarnation
        rows = ok_json(cluster, "proc_window", "reductions", "3", "200", node=victim)
        check_rows(rows, 3)
    finally:
        victim.stop()


def sampling(node: ErlangNode) -> bool:
    """Whether a command's worker on ``node`` waits between its samples.

    Both the runner and its worker evaluate interpreted code: waiting, they sit in
    ``prim_eval:'receive'/2``; the runner waits for the worker, the worker for its window.
    """
    return (
        node.eval_int(
            "length([P || P <- processes(), "
            "erlang:process_info(P, current_function) =:= {current_function, {prim_eval, 'receive', 2}}])."
        )
        >= 2
    )


# -- fan-out -----------------------------------------------------------------------------------


def test_fan_out_shows_each_node_and_the_down_one(cluster: Cluster) -> None:
    """``info --nodes 'app*'``: the two live nodes and the ghost, in config order; exit 1 for the ghost."""
    up = [p.node for p in cluster.nodes.values()]
    names = [n.name for n in up] + [cluster.ghost]
    mark = cluster.gw.mark()
    r = cluster.client().run("info", "--nodes", "'app*'")
    assert (r.returncode, r.stderr) == (1, "")
    sections = re.split(r"^== (\S+) ==\n", r.stdout, flags=re.M)
    assert sections[0] == "" and sections[1::2] == names, r.stdout
    for node, body in zip(up, sections[2::2], strict=False):
        assert body.startswith(f"node:             {node.name}\n"), body
        assert re.search(rf"^otp:\s+{node.runtime.release} ", body, re.M) and "memory total:" in body
    ghost_body = sections[-1]
    assert ghost_body.startswith(f"error: node {cluster.ghost} is not registered in epmd"), ghost_body
    assert ghost_body.count("\n") == 1
    event = cluster.gw.wait_audit("command", lambda e: e["line"] == "info --nodes 'app*'", since=mark)
    assert event["nodes"] == names and event["status"] == 1
    assert event["node_outcomes"] == {**{n.name: "ok" for n in up}, cluster.ghost: "error"}

    r = cluster.client().run("info", "--nodes", "'app*'", "--json")
    assert (r.returncode, r.stderr) == (1, "")
    doc = json.loads(r.stdout)
    assert list(doc) == names
    for node in up:
        assert set(doc[node.name]) >= INFO_KEYS
        assert (doc[node.name]["node"], doc[node.name]["otp_release"]) == (node.name, node.runtime.release)
    assert set(doc[cluster.ghost]) == {"error"}
    assert doc[cluster.ghost]["error"].startswith(f"node {cluster.ghost} is not registered in epmd")


def test_fan_out_of_a_row_command(cluster: Cluster) -> None:
    """A list-shaped command fans out too: each live node's flooded mailbox tops its own rows."""
    r = cluster.client().run("proc_count", "message_queue_len", "2", "--nodes", "'app*'", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    for planted in cluster.nodes.values():
        rows = doc[planted.node.name]
        check_rows(rows, 2)
        assert (rows[0]["name"], rows[0]["value"]) == ("bg_flooded", 50000)
    assert "error" in doc[cluster.ghost]


# -- remote text with control characters ------------------------------------------------------------

#: What must never reach the terminal raw: the planted colour, screen-clear and OSC title sequences.
RAW_SEQUENCES = ("\x1b[31mevil", "\x1b[2Jcleared", "\x1b]0;title")


def test_remote_escape_sequences_arrive_inert_in_exec_mode(cluster: Cluster, p: Planted) -> None:
    """A registered name, an ETS table name, a state and a message carrying ESC/OSC sequences (bg_plant:evil/0)."""
    lines = [
        ["proc_count", "memory", "500"],
        ["ets", "500"],
        ["info", p.evil_pid],
        ["stack", p.evil_pid],
        ["state", p.evil_pid],
        ["messages", "bg_evil_box"],
    ]
    texts = {}
    for args in lines:
        for mode in ([], ["--json"]):
            argv = cluster.client().argv(*args, *mode, "--node", p.node.name)
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            assert (r.returncode, r.stderr) == (0, b""), (args, r.stderr)
            assert not any(c < 0x20 and c != 0x0A for c in r.stdout), (args, r.stdout[:2000])  # no ESC, BEL, CR...
            texts[" ".join(args + mode)] = r.stdout.decode()
    evil_row = next(line for line in texts["proc_count memory 500"].splitlines() if line.startswith(p.evil_pid + " "))
    assert evil_row.split()[3] == EVIL, evil_row
    assert EVIL in [row["name"] for row in json.loads(texts["proc_count memory 500 --json"])]
    assert EVIL in [row["name"] for row in json.loads(texts["ets 500 --json"])]
    assert re.search(rf"^{re.escape(EVIL)}\s", texts["ets 500"], re.M)
    assert f"registered_name: {EVIL}\n" in texts[f"info {p.evil_pid}"]
    assert texts[f"stack {p.evil_pid}"].startswith(f"stack of {p.evil_pid} ({EVIL})\n")
    state = texts[f"state {p.evil_pid}"]
    assert state.startswith(f"state of {p.evil_pid} ({EVIL}):\n") and '<<"\\e[2Jcleared\\r\\n">>' in state
    assert json.loads(texts[f"state {p.evil_pid} --json"])["name"] == EVIL
    assert json.loads(texts["messages bg_evil_box --json"])["messages"][0].startswith('<<"\\e]0;title"')


def test_remote_escape_sequences_arrive_inert_in_the_shell(cluster: Cluster, p: Planted) -> None:
    shell = cluster.client().shell(columns=160, rows=40)
    try:
        shell.wait_for_prompt()
        shell.send(f"use {p.node.name}\r")
        shell.wait_for(f"alice:{p.node.name}>")
        shell.send(f"state {p.evil_pid}\r")
        shell.wait_for(f"state of {p.evil_pid} ({EVIL}):")
        shell.wait_for('<<"\\e[2Jcleared\\r\\n">>')
        shell.wait_for_prompt()
        shell.send("messages bg_evil_box\r")
        shell.wait_for('<<"\\e]0;title"')
        shell.wait_for_prompt()
        shell.send("ets 500\r")
        shell.wait_for("largest ")
        shell.wait_for_prompt()
        assert re.search(rf"\r\n{re.escape(EVIL)}\s", shell.raw), "the table's name, shown escaped"
        assert shell.screen.title == ""  # no OSC reached the terminal
        rows = [y for y, text in enumerate(shell.screen.display) if EVIL in text]
        assert rows and all(c.fg == "default" for y in rows for c in shell.screen.buffer[y].values())  # no colour
        for raw in RAW_SEQUENCES:
            assert raw not in shell.raw
        shell.send("exit\r")
        assert shell.wait_exit() == 0
    finally:
        shell.close()


# -- an Elixir node ------------------------------------------------------------------------------


@pytest.mark.skipif(elixir() is None, reason="Debian's elixir is not installed (scripts/setup.sh)")
def test_elixir_genserver_over_ssh(tmp_path: Path) -> None:
    """Debian's Elixir: the GenServer registered as MyApp.Worker reads as Elixir, and its state prints."""
    ex = ElixirNode(tmp_path).start()
    gw: GatewayThread | None = None
    try:
        cookie_file = tmp_path / "elixir.cookie"
        cookie_file.write_text(ex.cookie + "\n")
        cookie_file.chmod(0o600)
        key = keygen(tmp_path, "alice")
        config = write_gateway_config(
            tmp_path, cookie_file=cookie_file, nodes=[ex.name], users={"alice": ([key], ["sre"])}, roles=ROLES
        )
        gw = GatewayThread(config).start()
        alice = Client(gw, key, tmp_path)
        pid = ex.eval("Process.whereis(MyApp.Worker) |> :erlang.pid_to_list() |> List.to_string()").strip('"')

        r = alice.run("proc_count", "memory", "200", "--json")
        assert (r.returncode, r.stderr) == (0, "")
        rows = json.loads(r.stdout)
        check_rows(rows, len(rows))
        row = next(row for row in rows if row["pid"] == pid)
        assert row["name"] == "MyApp.Worker"
        assert row["current_function"].startswith("gen_server:loop/")
        assert "Elixir.MyApp.Worker" not in r.stdout
        r = alice.run("proc_count", "memory", "200")
        assert r.returncode == 0
        line = next(line for line in r.stdout.splitlines() if line.startswith(pid + " "))
        assert line.split()[3] == "MyApp.Worker", line

        assert ex.eval("GenServer.call(MyApp.Worker, :bump)") == "1"
        r = alice.run("state", "MyApp.Worker")
        assert (r.returncode, r.stderr) == (0, "")
        assert r.stdout == (
            f'state of {pid} (MyApp.Worker):\n#{{arg => fixture,count => 1,note => <<"elixir state">>}}\n'
        )
        r = alice.run("state", "Elixir.MyApp.Worker", "--json")
        assert json.loads(r.stdout)["state"] == '#{arg => fixture,count => 1,note => <<"elixir state">>}'
        r = alice.run("state", "MyApp.Nope")
        assert (r.returncode, r.stderr) == (1, f"error: no such process: MyApp.Nope on {ex.name}\n")
    finally:
        if gw is not None:
            gw.stop()
        ex.stop()
