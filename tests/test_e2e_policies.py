"""Issue 6 end to end, exec mode: per-user policies through the real OpenSSH client against real nodes.

One gateway for the module, configured with the shipped example roles
(:mod:`tests.support.policy_e2e`): alice (sre), bob (contractor), carol
(readonly), dave (sre + operator), erin (sre + no_state), gwen (info on the
application nodes only). Target nodes ``app...`` (OTP 25 and 28) and
``db...`` (OTP 25).

Every denial is checked for its exit status (3), its one line on stderr
naming the rule, and its ``denied`` audit event carrying that rule. Where a
denial must come "before anything reaches a node", the node is stopped
(SIGSTOP) while the command runs: had the gateway sent anything, it would
wait for an answer and fail with a timeout (status 1) instead. What a node
shows afterwards (processes alive, trace patterns left) is asked through the
node's own REPL, never through beamgate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from commands import REGISTRY
from tests.support.erlang import ErlangNode
from tests.support.policy_e2e import (
    DICT_MARKER,
    MAILBOX_MARKER,
    PROTECTED,
    USERS,
    Cluster,
    Users,
    alive,
    frozen,
    start_cluster,
    user_keys,
    write_config,
)
from tests.support.ssh import GatewayThread
from tests.support.trace_harness import CLEAN, leftovers


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("nodes"))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def u(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Users]:
    d = tmp_path_factory.mktemp("gw")
    keys = user_keys(d)
    gw = GatewayThread(write_config(d, cluster.nodes, keys)).start()
    yield Users(gw, keys, d)
    gw.stop()


def ticker_clean(node: ErlangNode) -> bool:
    return leftovers(node, "my_app_ticker", "tick", 1) == CLEAN


# -- 1. every SPEC command, for the contractor and the SRE ---------------------------------


@dataclass(frozen=True)
class Deny:
    message: str
    rule: str


def not_granted(command: str) -> Deny:
    return Deny(f"no role of bob grants {command} (roles.contractor.commands)", "roles.contractor.commands")


def needs_terminal(command: str, role: str) -> Deny:
    rule = f'roles.{role}.expensive = "confirm"'
    return Deny(
        f"{command} needs a typed confirmation ({rule}); run it from the interactive shell "
        "(ssh with a terminal, no command)",
        rule,
    )


@dataclass(frozen=True)
class Ran:
    notes: tuple[str, ...] = ()


OK = Ran()
LEFT_OUT = (
    "info: showing registered_name, group_leader, status, signals, location, memory_used, work "
    "(keys denied by roles.contractor.deny_process_keys left out)"
)
#: (line, a piece of its output, alice's outcome, bob's outcome), docs/policies.md's role table.
#: ``{app}`` is the OTP 25 application node.
MATRIX: list[tuple[str, str, Ran | Deny, Ran | Deny]] = [
    ("help", "Commands (help CMD for details):", OK, OK),
    ("whoami", "key:", OK, OK),
    ("nodes", "{app}", OK, OK),
    ("use {app}", "using {app}", OK, OK),
    ("policy", "commands you may run:", OK, OK),
    ("exit", "", OK, OK),
    ("info --node {app}", "node:             {app}", OK, OK),
    ("info ticker --node {app}", "registered_name: ticker", OK, Ran((LEFT_OUT,))),
    ("proc_count memory 5 --node {app}", "top 5 processes by memory on {app}", OK, OK),
    ("proc_window reductions 5 200 --node {app}", "top 5 processes by reductions", OK, OK),
    ("bin_leak --node {app}", "", needs_terminal("bin_leak", "sre"), needs_terminal("bin_leak", "contractor")),
    ("alloc memory --node {app}", "alloc memory (current) on {app}", OK, OK),
    ("scheduler_usage 200 --node {app}", "scheduler", OK, not_granted("scheduler_usage")),
    ("ports --node {app}", "ports on {app}", OK, not_granted("ports")),
    ("inet_count cnt 3 --node {app}", "cnt", OK, not_granted("inet_count")),
    ("inet_window cnt 3 200 --node {app}", "cnt", OK, not_granted("inet_window")),
    ("ets 5 --node {app}", "ETS tables on {app}", OK, not_granted("ets")),
    ("stack ticker --node {app}", "my_app_ticker:loop/2", OK, not_granted("stack")),
    ("state rex --node {app}", "rex", OK, not_granted("state")),
    ("messages mailbox --node {app}", MAILBOX_MARKER, OK, not_granted("messages")),
    ("apps --node {app}", "kernel", OK, not_granted("apps")),
    (
        "trace my_app_ticker:tick/1 --limit 3 --pid ticker --node {app}",
        "my_app_ticker:tick(",
        OK,
        OK,
    ),
    (
        "kill ticker --node {app}",
        "",
        Deny(
            "kill is privileged: a role must name it exactly, a glob never grants it (roles.sre.commands)",
            "roles.sre.commands",
        ),
        not_granted("kill"),
    ),
]


@pytest.mark.parametrize("user", ["alice", "bob"])
@pytest.mark.parametrize("line, shows, alice, bob", MATRIX, ids=[m[0].split()[0] for m in MATRIX])
def test_every_command_for_the_sre_and_the_contractor(
    u: Users, cluster: Cluster, user: str, line: str, shows: str, alice: Ran | Deny, bob: Ran | Deny
) -> None:
    line, shows = line.format(app=cluster.app.name), shows.format(app=cluster.app.name)
    expected = alice if user == "alice" else bob
    role = USERS[user][0]
    if isinstance(expected, Deny):
        with frozen(cluster.app):  # refused on the gateway: nothing reaches the node
            u.denied(user, line, expected.message, expected.rule)
        return
    out, event = u.allowed(user, line, expected.notes)
    assert shows in out
    assert event["decision"] == f"allowed by roles.{role}.commands"


def test_the_matrix_covers_every_registered_command() -> None:
    assert {line.split()[0] for line, *_ in MATRIX} | {"port_info"} == set(REGISTRY)


def test_port_info_is_not_the_contractors(u: Users, cluster: Cluster) -> None:
    deny = not_granted("port_info")
    u.denied("bob", f"port_info #Port<0.1> --node {cluster.app.name}", deny.message, deny.rule)


# -- 2. node globs -----------------------------------------------------------------------------


def test_the_contractor_runs_on_app_nodes_only(u: Users, cluster: Cluster) -> None:
    for node in (cluster.app, cluster.app28):
        out, event = u.allowed("bob", f"info --node {node.name} --json")
        doc = json.loads(out)
        assert (doc["node"], doc["otp_release"], event["node"]) == (node.name, node.runtime.release, node.name)
    db = cluster.db.name
    u.denied(
        "bob",
        f"info --node {db}",
        f"bob may not run info on {db} (not configured, or no role granting info has a nodes/clusters "
        "pattern matching it: roles.contractor.nodes)",
        "roles.contractor.nodes",
    )
    u.denied(
        "bob",
        f"use {db}",
        f"{db} is not a node bob may use (not configured, or no role's nodes match it; roles.contractor.nodes)",
        "roles.contractor.nodes",
    )
    out, _ = u.allowed("bob", f"use {cluster.app28.name}")
    assert out == f"using {cluster.app28.name}\n"


@pytest.mark.parametrize(
    "user, visible",
    [("bob", ("app", "app28")), ("gwen", ("app", "app28")), ("alice", ("app", "app28", "db"))],
)
def test_nodes_lists_only_the_users_nodes(u: Users, cluster: Cluster, user: str, visible: tuple[str, ...]) -> None:
    out, _ = u.allowed(user, "nodes --json")
    rows = json.loads(out)
    expected = [getattr(cluster, attr) for attr in visible]
    assert [r["node"] for r in rows] == [n.name for n in expected]
    assert [(r["reachable"], r["otp_release"]) for r in rows] == [(True, n.runtime.release) for n in expected]


@pytest.mark.parametrize("line", ["info --node {node}", "use {node}", "proc_count memory --node {node}"])
def test_an_unconfigured_node_gets_the_answer_of_a_forbidden_one(u: Users, cluster: Cluster, line: str) -> None:
    """No probing of node names: a name that does not exist is refused with the same words as db."""
    ghost = f"{cluster.db.alive}x@{cluster.db.host}"
    forbidden = u.run("bob", line.format(node=cluster.db.name))
    unknown = u.run("bob", line.format(node=ghost))
    assert (forbidden.returncode, unknown.returncode) == (3, 3)
    assert forbidden.stderr.startswith("denied: ")
    assert forbidden.stderr.replace(cluster.db.name, "NODE") == unknown.stderr.replace(ghost, "NODE")
    # for alice, whose roles grant every node, only a node that does not exist is refused
    r = u.run("alice", line.format(node=ghost))
    assert r.returncode == 3 and r.stderr.startswith("denied: ") and "not configured" in r.stderr, r.stderr


# -- 3. fan-out ---------------------------------------------------------------------------------


def test_fan_out_is_refused_to_the_contractor(u: Users) -> None:
    u.denied(
        "bob",
        "info --nodes '*'",
        "info --nodes: fan-out is not allowed (roles.contractor.fanout = false)",
        "roles.contractor.fanout = false",
    )


@pytest.mark.parametrize(
    "user, reached", [("alice", ("app", "app28", "db")), ("carol", ("app", "app28", "db")), ("gwen", ("app", "app28"))]
)
def test_fan_out_reaches_the_granted_nodes_only(
    u: Users, cluster: Cluster, user: str, reached: tuple[str, ...]
) -> None:
    out, event = u.allowed(user, "info --nodes '*' --json")
    names = [getattr(cluster, attr).name for attr in reached]
    doc = json.loads(out)
    assert sorted(doc) == sorted(names)
    assert all(doc[n]["node"] == n for n in names)
    assert event["nodes"] == names
    assert event["node_outcomes"] == dict.fromkeys(names, "ok")


def test_fan_out_to_no_granted_node_is_denied(u: Users) -> None:
    u.denied(
        "gwen",
        "info --nodes 'db*'",
        "info --nodes db*: no matching node is one you may run info on (roles.app_reader.nodes)",
        "roles.app_reader.nodes",
    )


# -- 4. trace caps ----------------------------------------------------------------------------


def trace_events(out: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines()]
    return lines[:-1], lines[-1]


def trace_stop(u: Users, user: str, line: str) -> dict[str, Any]:
    return u.gw.wait_audit("trace_stop", lambda e: e["user"] == user and e["line"] == line)


def test_the_contractors_trace_limit_is_lowered_to_50(u: Users, cluster: Cluster) -> None:
    line = f"trace my_app_ticker:tick/1 --limit 500 --rate 50/5 --pid ticker --node {cluster.app.name} --json"
    out, event = u.allowed(
        "bob", line, notes=["trace: --limit lowered from 500 to 50 (roles.contractor.trace.max_messages)"]
    )
    calls, stopped = trace_events(out)
    assert stopped == {"event": "stopped", "reason": "limit", "count": 50}
    assert len(calls) == 50 and {c["mfa"] for c in calls} == {"my_app_ticker:tick/1"}
    assert event["decision"] == "allowed by roles.contractor.commands; limit 500->50"
    assert event["clamped"] == {"limit": [500, 50]}
    stop = trace_stop(u, "bob", line)
    assert (stop["reason"], stop["messages"]) == ("limit", 50)
    assert stop["limits"] == {"messages": 50, "rate": 50, "per_seconds": 5, "seconds": 60}
    assert ticker_clean(cluster.app)


@pytest.mark.parametrize(
    "spec, message, rule",
    [
        (
            "lists:seq/2 --pid ticker",
            "trace: module lists is outside your modules Elixir.MyApp.*, my_app_* (roles.contractor.trace.modules)",
            "roles.contractor.trace.modules",
        ),
        (
            "my_app_ticker:tick/1 --pid ticker --return",
            "trace --return is not allowed (roles.contractor.trace.allow_return = false)",
            "roles.contractor.trace.allow_return = false",
        ),
        (
            "my_app_ticker:tick/1",
            "trace over all processes is not allowed: give --pid PROC, new or existing "
            "(roles.contractor.trace.allow_pid_all = false)",
            "roles.contractor.trace.allow_pid_all = false",
        ),
        (
            "my_app_ticker:tick/1 --pid all",
            "trace over all processes is not allowed: give --pid PROC, new or existing "
            "(roles.contractor.trace.allow_pid_all = false)",
            "roles.contractor.trace.allow_pid_all = false",
        ),
    ],
)
def test_the_contractors_trace_is_refused_before_reaching_the_node(
    u: Users, cluster: Cluster, spec: str, message: str, rule: str
) -> None:
    mark = u.gw.mark()
    with frozen(cluster.app):
        u.denied("bob", f"trace {spec} --node {cluster.app.name}", message, rule)
    assert u.gw.audit("trace_start", since=mark) == []
    assert ticker_clean(cluster.app)


def test_the_sres_trace_is_lowered_to_her_caps(u: Users, cluster: Cluster) -> None:
    line = f"trace my_app_ticker:tick/1 --limit 5000 --rate 500/1 --for 1 --pid ticker --node {cluster.app.name} --json"
    out, event = u.allowed(
        "alice",
        line,
        notes=[
            "trace: --limit lowered from 5000 to 1000 (roles.sre.trace.max_messages)",
            "trace: --rate lowered from 500/1 to 100/1 (roles.sre.trace.max_rate)",
        ],
    )
    calls, stopped = trace_events(out)
    assert (stopped["event"], stopped["reason"]) == ("stopped", "duration")
    assert 10 <= stopped["count"] == len(calls) <= 100  # one call every 20 ms, for 1 s
    assert event["clamped"] == {"limit": [5000, 1000], "rate": [[500, 1], [100, 1]]}
    assert trace_stop(u, "alice", line)["limits"] == {"messages": 1000, "rate": 100, "per_seconds": 1, "seconds": 1}
    assert ticker_clean(cluster.app)


@pytest.mark.parametrize(
    "user, scope, limits",
    [
        # contractor: the safer of [safety] trace_defaults (100, 20/s, 60 s) and its caps (50, 10/s, 60 s)
        ("bob", " --pid ticker", {"messages": 50, "rate": 10, "per_seconds": 1, "seconds": 60}),
        # sre: the defaults, below her caps (1000, 100/s, 300 s)
        ("alice", "", {"messages": 100, "rate": 20, "per_seconds": 1, "seconds": 60}),
    ],
)
def test_a_trace_without_limits_gets_the_defaults(
    u: Users, cluster: Cluster, user: str, scope: str, limits: dict[str, int]
) -> None:
    line = f"trace my_app_ticker:tick/1{scope} --node {cluster.app.name} --json"
    out, event = u.allowed(user, line)
    calls, stopped = trace_events(out)
    # the ticker calls tick/1 50 times a second: the default rate limit trips first
    assert stopped == {"event": "stopped", "reason": "rate", "count": limits["rate"]}
    assert len(calls) == limits["rate"]
    assert "clamped" not in event
    assert trace_stop(u, user, line)["limits"] == limits
    assert ticker_clean(cluster.app)


# -- 5. process keys ------------------------------------------------------------------------


@pytest.mark.parametrize("attr", ["app", "app28"])
def test_info_proc_messages_is_denied_to_the_contractor_only(u: Users, cluster: Cluster, attr: str) -> None:
    node = getattr(cluster, attr).name
    u.denied(
        "bob",
        f"info mailbox messages --node {node}",
        "info: process key messages is denied by roles.contractor.deny_process_keys",
        "roles.contractor.deny_process_keys",
    )
    out, _ = u.allowed("alice", f"info mailbox messages --node {node}")
    assert out.count(MAILBOX_MARKER) == 3, out
    out, _ = u.allowed("alice", f"info mailbox messages --node {node} --json")
    assert json.loads(out)["memory_used"]["messages"] == {
        "count": 3,
        "messages": [f"{{{n},{MAILBOX_MARKER}}}" for n in (1, 2, 3)],
    }


def test_info_proc_messages_keeps_the_mailbox_cap(u: Users, cluster: Cluster) -> None:
    """SPEC safety rule 7 holds for info PROC messages as for the messages command: a long queue is not read."""
    node = cluster.app
    node.eval("bg_plant:flood(150), ok.")
    try:
        r = u.run("alice", f"info bg_flooded messages --node {node.name}")
        assert (r.returncode, r.stdout) == (1, "")
        assert r.stderr == (
            "error: bg_flooded has 150 messages queued, above the cap of 100 (safety.messages_cap): reading them "
            "could hurt the node; see proc_count message_queue_len and stack instead\n"
        )
        assert node.eval("element(2, process_info(whereis(bg_flooded), message_queue_len)).") == "150"
    finally:
        node.eval("exit(whereis(bg_flooded), kill), ok.")


def test_the_contractor_never_sees_the_process_dictionary(u: Users, cluster: Cluster) -> None:
    node = cluster.app.name
    out, _ = u.allowed("alice", f"info dict_holder --node {node}")
    assert DICT_MARKER in out and "dictionary:" in out
    out, _ = u.allowed("bob", f"info dict_holder --node {node}", notes=[LEFT_OUT])
    assert "registered_name: dict_holder" in out and "reductions:" in out
    assert DICT_MARKER not in out and "dictionary" not in out
    u.denied(
        "bob",
        f"info dict_holder dictionary --node {node}",
        "info: process key dictionary is denied by roles.contractor.deny_process_keys",
        "roles.contractor.deny_process_keys",
    )
    u.denied(
        "bob",
        f"info dict_holder meta --node {node}",
        "info: meta shows dictionary, which roles.contractor.deny_process_keys denies; ask for the other keys "
        "instead (registered_name, group_leader, status)",
        "roles.contractor.deny_process_keys",
    )


# -- 6. protected processes --------------------------------------------------------------------

BUILT_IN = "safety.protected_processes"


def protected_rule(user: str, command: str) -> tuple[str | None, str]:
    """(message, rule) of the denial ``user`` gets for ``command`` on a protected process (None: the built-in)."""
    if user == "erin":
        return f'{command} is denied to erin by roles.no_state.deny ("{command}")', f'roles.no_state.deny ("{command}")'
    role = USERS[user][0]
    if role != "sre":  # not granted at all: the grant decides before the protection
        return f"no role of {user} grants {command} (roles.{role}.commands)", f"roles.{role}.commands"
    return None, BUILT_IN


@pytest.mark.parametrize(
    "command, proc", [("state", "auth"), ("state", "net_kernel"), ("messages", "auth"), ("state", PROTECTED)]
)
def test_protected_processes_are_refused_for_every_user(u: Users, cluster: Cluster, command: str, proc: str) -> None:
    line = f"{command} {proc} --node {cluster.app.name}"
    with frozen(cluster.app):
        for user in USERS:
            message, rule = protected_rule(user, command)
            if message is None:
                message = f"{command} refuses the protected process {proc} for every role (built-in protection, {rule})"
            u.denied(user, line, message, rule)


@pytest.mark.parametrize("proc", ["auth", "net_kernel", PROTECTED])
def test_kill_of_a_protected_process_is_refused_to_the_operator(u: Users, cluster: Cluster, proc: str) -> None:
    with frozen(cluster.app):
        u.denied(
            "dave",
            f"kill {proc} --node {cluster.app.name}",
            f"kill refuses the protected process {proc} for every role (built-in protection, {BUILT_IN})",
            BUILT_IN,
        )


def test_info_of_a_protected_mailbox_is_refused(u: Users, cluster: Cluster) -> None:
    with frozen(cluster.app):
        u.denied(
            "alice",
            f"info auth messages --node {cluster.app.name}",
            f"info refuses the protected process auth for every role (built-in protection, {BUILT_IN})",
            BUILT_IN,
        )


# -- 7. kill in exec mode ------------------------------------------------------------------------


def test_kill_in_exec_mode_is_refused_before_anything_is_sent(u: Users, cluster: Cluster) -> None:
    node = cluster.app
    node.eval("register(victim, spawn(fun() -> receive stop -> ok end end)), ok.")
    try:
        before = alive(node, "victim")
        assert before is not None
        with frozen(node):
            u.denied(
                "dave",
                f"kill victim --node {node.name}",
                "kill asks you to type its target back before it acts (built-in: privileged commands are always "
                "confirmed); run it from the interactive shell (ssh with a terminal, no command)",
                "built-in: privileged commands are always confirmed",
            )
        assert alive(node, "victim") == before
        # the operator role grants kill on the application nodes only: checked first
        db = cluster.db.name
        u.denied(
            "dave",
            f"kill victim --node {db}",
            f"dave may not run kill on {db} (not configured, or no role granting kill has a nodes/clusters "
            "pattern matching it: roles.operator.nodes)",
            "roles.operator.nodes",
        )
    finally:
        node.eval("victim ! stop, ok.")


# -- the other example roles ---------------------------------------------------------------------


def test_a_restriction_role_takes_rights_from_an_sre(u: Users, cluster: Cluster) -> None:
    """docs/policies.md, worked example 2: erin = sre + no_state; the deny wins over sre's grant."""
    node = cluster.app.name
    with frozen(cluster.app):
        for command in ("trace my_app_ticker:tick/1", "state rex", "messages mailbox"):
            name = command.split()[0]
            rule = f'roles.no_state.deny ("{name}")'
            u.denied("erin", f"{command} --node {node}", f"{name} is denied to erin by {rule}", rule)
        for key in ("binary", "dictionary"):
            u.denied(
                "erin",
                f"info ticker {key} --node {node}",
                f"info: process key {key} is denied by roles.no_state.deny_process_keys",
                "roles.no_state.deny_process_keys",
            )
    out, _ = u.allowed("erin", f"info ticker registered_name status --node {node}")
    assert "registered_name: ticker" in out and "status:" in out
    out, event = u.allowed("erin", f"proc_count reductions 3 --node {node} --json")
    assert len(json.loads(out)) == 3 and event["decision"] == "allowed by roles.sre.commands"


def test_the_readonly_role(u: Users, cluster: Cluster) -> None:
    node = cluster.app.name
    out, event = u.allowed(
        "carol", f"ets 50 --node {node}", notes=["ets: N lowered from 50 to 20 (roles.readonly.args.ets.max_n)"]
    )
    assert "largest 20 of" in out and event["decision"] == "allowed by roles.readonly.commands; n 50->20"
    with frozen(cluster.app):
        for command in ("proc_count memory", "trace my_app_ticker:tick/1 --pid ticker", "state rex", "bin_leak"):
            name = command.split()[0]
            u.denied(
                "carol",
                f"{command} --node {node}",
                f"no role of carol grants {name} (roles.readonly.commands)",
                "roles.readonly.commands",
            )


# -- 9. what users are told -------------------------------------------------------------------------

EVERYTHING = [c for c in REGISTRY if c != "kill"]
MAY_RUN = {
    "alice": EVERYTHING,
    "bob": ["help", "whoami", "nodes", "use", "policy", "info", "proc_count", "proc_window", "bin_leak", "alloc",
            "trace", "exit"],
    "carol": ["help", "whoami", "nodes", "use", "policy", "info", "alloc", "ports", "ets", "apps", "exit"],
    "dave": list(REGISTRY),
    "erin": [c for c in EVERYTHING if c not in ("state", "messages", "trace")],
    "gwen": ["help", "nodes", "policy", "info"],
}  # fmt: skip


@pytest.mark.parametrize("user", list(USERS))
def test_help_and_policy_list_only_what_the_user_may_run(u: Users, user: str) -> None:
    out, _ = u.allowed(user, "help")
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    assert listed == MAY_RUN[user]
    out, _ = u.allowed(user, "policy --json")
    desc = json.loads(out)
    assert [c["name"] for c in desc["commands"]] == MAY_RUN[user]
    assert sorted(desc["not_allowed"]) == sorted(set(REGISTRY) - set(MAY_RUN[user]))
    refused = next((c for c in REGISTRY if c not in MAY_RUN[user]), None)
    if refused is not None:
        r = u.run(user, f"help {refused}")
        assert (r.returncode, r.stderr) == (
            1,
            f"error: no command '{refused}' (or you may not run it); type help for the list\n",
        )


def test_lowered_values_are_told_and_audited(u: Users, cluster: Cluster) -> None:
    out, event = u.allowed(
        "bob",
        f"proc_count memory 100 --node {cluster.app.name} --json",
        notes=["proc_count: N lowered from 100 to 20 (roles.contractor.args.proc_count.max_n)"],
    )
    assert len(json.loads(out)) == 20
    assert event["decision"] == "allowed by roles.contractor.commands; n 100->20"
    assert event["clamped"] == {"n": [100, 20]}
    u.denied(
        "bob",
        f"proc_count binary_memory --node {cluster.app.name}",
        "proc_count: ATTR binary_memory is not allowed; you may use memory, reductions, message_queue_len "
        "(roles.contractor.args.proc_count.allow_attr)",
        "roles.contractor.args.proc_count.allow_attr",
    )
