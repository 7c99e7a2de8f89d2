"""Issue 6 end to end, interactive: confirmations, completion and SIGHUP reload in a real pty.

The OpenSSH client runs under pexpect (``ssh -tt``), its output rendered by
pyte (:class:`tests.support.ssh.Screen`), against the setting of
:mod:`tests.support.policy_e2e` (the shipped example roles, app and db
nodes). Confirmation tests run on the OTP 25 and the OTP 28 application
node. What happened on a node (a process alive or killed, refc binaries
still held or collected) is asked through the node's own REPL, never
through beamgate.

The reload test runs ``beamgate serve`` as a real process and sends it
SIGHUP, with a shell left open across the reloads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from commands import REGISTRY
from tests.support.erlang import ErlangNode, Runtime, random_name
from tests.support.policy_e2e import (
    Cluster,
    Serve,
    Users,
    alive,
    example_roles,
    start_cluster,
    user_keys,
    write_config,
)
from tests.support.ssh import GatewayThread, Screen

APP_NODES = ["app", "app28"]  # OTP 25, OTP 28
WIDE = 200  # no wrapped lines: what the tests look for stays on one screen line


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


def cursor_line(shell: Screen) -> str:
    return shell.screen.display[shell.screen.cursor.y].rstrip()


def open_shell(u: Users, user: str, node: str | None = None) -> Screen:
    shell = u.client(user).shell(columns=WIDE)
    shell.wait_for_prompt()
    if node is not None:
        shell.send(f"use {node}\r")
        shell.wait_for(f"{user}:{node}>")
        shell.wait_for_prompt()
    return shell


def leave(shell: Screen) -> None:
    shell.send("exit\r")
    assert shell.wait_exit() == 0


# -- 7. kill: the operator types the pid back ------------------------------------------------------


@pytest.mark.parametrize("attr", APP_NODES)
def test_kill_asks_for_the_pid_and_only_the_right_answer_kills(u: Users, cluster: Cluster, attr: str) -> None:
    node = getattr(cluster, attr)
    node.eval("register(victim, spawn(fun() -> receive stop -> ok end end)), ok.")
    pid = alive(node, "victim")
    assert pid is not None
    mark = u.gw.mark()
    shell = open_shell(u, "dave", node.name)
    try:
        question = f"kill {pid} (victim, prim_eval:receive/2, erlang:apply/2)? type its pid to confirm:"
        shell.send("kill victim\r")
        shell.wait_raw(question)
        shell.send("<0.1.0>\r")  # a wrong answer: a pid, but not this one
        shell.wait_raw(f"error: kill cancelled: {pid} left alone")
        shell.wait_for_prompt()
        assert alive(node, "victim") == pid

        shell.send("kill victim\r")
        shell.wait_raw(question, 2)
        shell.send(f"{pid}\r")
        shell.wait_raw(f"killed {pid} (victim): killed")
        shell.wait_for_prompt()
        assert alive(node, "victim") is None
        assert node.eval(f'is_process_alive(list_to_pid("{pid}")).') == "false"

        # the operator role grants kill on the application nodes only; a terminal changes nothing
        db = cluster.db.name
        shell.send(f"kill victim --node {db}\r")
        shell.wait_raw(f"denied: dave may not run kill on {db} (not configured, or no role granting kill")
        shell.wait_for_prompt()
        leave(shell)
    finally:
        shell.close()
        node.eval("case whereis(victim) of undefined -> ok; P -> exit(P, kill), ok end.")
    kills = [e for e in u.gw.audit(since=mark) if e.get("command") == "kill"]
    assert [(e["event"], e.get("outcome")) for e in kills] == [
        ("command", "started"),  # audited before it acts
        ("command", "error"),
        ("command", "started"),
        ("command", "ok"),
        ("denied", None),
    ]
    assert kills[3]["decision"] == "allowed by roles.operator.commands"
    assert kills[4]["rule"] == "roles.operator.nodes"


# -- 8. expensive commands: confirmed with their cost ------------------------------------------------


@pytest.mark.parametrize("attr", APP_NODES)
def test_bin_leak_states_its_cost_and_no_sends_nothing(u: Users, cluster: Cluster, attr: str) -> None:
    node = getattr(cluster, attr)
    node.eval("bg_plant:leak(20, 100000), ok.")  # bg_leaker holds 20 refc binaries it no longer needs
    held = "length(element(2, process_info(whereis(bg_leaker), binary)))."
    assert node.eval_int(held) == 20
    mark = u.gw.mark()
    shell = open_shell(u, "bob", node.name)
    try:
        shell.send("bin_leak 50\r")
        shell.wait_raw("note: bin_leak: N lowered from 50 to 10 (roles.contractor.args.bin_leak.max_n)")
        shell.wait_raw(
            f"bin_leak on {node.name} is expensive: it forces a garbage collection of every process on the node.",
        )
        shell.wait_raw(f"Cost on the node: {REGISTRY['bin_leak'].cost}")
        shell.wait_raw("Type yes to run it; anything else cancels.")
        assert "even if processes remain." in shell.text()  # the cost's end, wrapped on screen, not cut
        shell.send("no\r")
        shell.wait_raw("cancelled: nothing was sent")
        shell.wait_for_prompt()
        assert node.eval_int(held) == 20  # no garbage collection happened

        shell.send("bin_leak 50\r")
        shell.wait_raw("Type yes to run it; anything else cancels.", 2)
        shell.send("yes\r")
        shell.wait_for("BYTES FREED")
        shell.wait_for("bg_leaker")
        shell.wait_for_prompt()
        assert node.eval_int(held) == 0
        leave(shell)
    finally:
        shell.close()
        node.eval("exit(whereis(bg_leaker), kill), ok.")
    runs = u.gw.audit("command", since=mark)[1:]  # after use
    assert [(e["line"], e["outcome"], e["confirmed"]) for e in runs[:2]] == [
        ("bin_leak 50", "cancelled", False),
        ("bin_leak 50", "ok", True),
    ]
    assert runs[1]["decision"] == (
        "allowed by roles.contractor.commands; n 50->10; "
        'confirmation required by roles.contractor.expensive = "confirm"'
    )


# -- 9. completion offers only what the user may run ---------------------------------------------------


def tab(shell: Screen, typed: str) -> None:
    shell.send("\x15" + typed + "\t")


def test_completion_offers_only_allowed_commands_nodes_and_values(u: Users, cluster: Cluster) -> None:
    bob, alice = open_shell(u, "bob"), open_shell(u, "alice")
    try:
        # command names: the menu after "p" (shown together, so what is absent is absent from that menu)
        tab(bob, "p")
        bob.wait_for("proc_window")
        assert "policy" in bob.text() and "proc_count" in bob.text()
        assert "ports" not in bob.text() and "port_info" not in bob.text()
        tab(alice, "p")
        alice.wait_for("port_info")
        assert "ports" in alice.text()

        # node names: only the application nodes for bob
        tab(bob, "use ")
        bob.wait_for(cluster.app28.name)
        assert cluster.app.name in bob.text() and cluster.db.name not in bob.text()
        tab(alice, "use ")
        alice.wait_for(cluster.db.name)

        # argument values: the attributes bob's role allows
        tab(bob, "proc_count ")
        bob.wait_for("message_queue_len")
        assert "reductions" in bob.text() and "binary_memory" not in bob.text()
        tab(alice, "proc_count ")
        alice.wait_for("binary_memory")

        # a unique prefix completes in place, for the commands one may run only
        tab(bob, "po")
        bob.wait_for("bob:(no node)> policy")
        tab(alice, "stat")
        alice.wait_for("alice:(no node)> state")
        tab(bob, "stat")
        time.sleep(1.0)  # alice's identical Tab completed within this time
        bob.pump(0.5)
        assert cursor_line(bob) == "bob:(no node)> stat"
        for shell in (bob, alice):
            shell.send("\x15")
            shell.wait_for_prompt()
            leave(shell)
    finally:
        bob.close()
        alice.close()


def test_the_operator_completes_kill_the_sre_does_not(u: Users) -> None:
    dave, alice = open_shell(u, "dave"), open_shell(u, "alice")
    try:
        tab(dave, "ki")
        dave.wait_for("dave:(no node)> kill")
        tab(alice, "ki")
        time.sleep(1.0)
        alice.pump(0.5)
        assert cursor_line(alice) == "alice:(no node)> ki"
        for shell in (dave, alice):
            shell.send("\x15")
            shell.wait_for_prompt()
            leave(shell)
    finally:
        dave.close()
        alice.close()


# -- 10. SIGHUP reload with a real beamgate serve --------------------------------------------------------


def test_sighup_changes_an_open_shells_rights_and_keeps_them_on_a_broken_config(
    runtime: Runtime, node_factory: Callable[..., ErlangNode], tmp_path: Path
) -> None:
    """On OTP 25, then 28; a node of its own, so that the module's gateway and this one never meet."""
    node = node_factory(runtime, name=random_name("app"))
    keys = user_keys(tmp_path)
    config = write_config(tmp_path, [node], keys)
    serve = Serve(config)
    shell: Screen | None = None
    try:
        bob = serve.client(keys["bob"])
        shell = bob.shell(columns=WIDE)
        shell.wait_for(f"bob:{node.name}>")  # the only node: the default one
        shell.wait_for_prompt()
        shell.send("apps\r")
        shell.wait_raw("denied: no role of bob grants apps (roles.contractor.commands)")
        shell.wait_for_prompt()

        # grant apps to the contractor: the open shell has it from its next command
        write_config(tmp_path, [node], keys, roles=example_roles(contractor_extra=["apps"]))
        serve.reload()
        assert serve.wait_log("config reloaded from").endswith(
            f"config reloaded from {config}: generation 2, 6 user(s), 6 role(s)"
        )
        shell.send("apps\r")
        shell.wait_raw("stdlib")
        shell.wait_for_prompt()
        r = bob.run("apps")  # and so does a new session
        assert (r.returncode, r.stderr) == (0, "") and "stdlib" in r.stdout

        # a broken config (it would also take apps away) is rejected: everyone keeps generation 2
        write_config(tmp_path, [node], keys, roles=example_roles(contractor_extra=["frobnicate"]))
        serve.reload()
        assert serve.wait_log("config reload rejected").endswith(
            f"config reload rejected: 1 problem(s) in {config}; keeping the previous config (generation 2)"
        )
        assert serve.wait_log("frobnicate").endswith(
            "config reload: roles.contractor.commands[12]: unknown command 'frobnicate'"
        )
        shell.send("apps\r")
        shell.wait_raw("stdlib", 2)
        shell.wait_for_prompt()
        r = bob.run("apps")
        assert (r.returncode, r.stderr) == (0, "") and "stdlib" in r.stdout
        shell.send("exit\r")
        assert shell.wait_exit() == 0
    finally:
        if shell is not None:
            shell.close()
        serve.stop()
    audit = [json.loads(line) for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    reloads = [(e["ok"], e["generation"]) for e in audit if e["event"] == "config_reload"]
    assert reloads == [(True, 2), (False, 2)]
    apps = [(e["session"], e["event"]) for e in audit if e.get("line") == "apps"]
    in_shell = [event for session, event in apps if session == apps[0][0]]
    assert in_shell == ["denied", "command", "command"]  # one session throughout: never reconnected
    assert len(apps) == 5  # and the two new sessions
