"""state, messages and kill on real nodes (OTP 25 and 28): bounded, refused when they must be."""

from __future__ import annotations

import time

import pytest

from commands import REGISTRY
from commands.errors import CommandError
from commands.state import MAX_BYTES
from gateway.config import SafetyConfig
from tests.support.erlang import ErlangNode, wait_until
from tests.support.harness import Harness, pid_of

#: The fixtures h (a harness on target, with bg_plant loaded) and beams.
pytest_plugins = ("tests.support.fixtures",)


def test_state_of_a_gen_server_prints(target: ErlangNode, h: Harness) -> None:
    target.eval("bg_plant:worker(bg_worker), ok.")
    out = h.run("state bg_worker")
    assert out.json == {
        "pid": pid_of(target, "bg_worker"),
        "name": "bg_worker",
        "state": '#{count => 42,label => <<"hello">>}',
        "truncated": False,
    }
    assert out.text.startswith(f"state of {pid_of(target, 'bg_worker')} (bg_worker):\n#{{count => 42")


def test_state_output_is_depth_and_size_limited(target: ErlangNode, h: Harness) -> None:
    target.eval(
        "{ok, _} = gen_server:start({local, bg_big_state}, bg_plant, "
        "[{I, lists:duplicate(50, I)} || I <- lists:seq(1, 20000)], []), ok."
    )
    deep = h.run("state bg_big_state")
    assert deep.json["state"].startswith("[{1,[1,1,1,") and "[26|...]}" in deep.json["state"]
    assert not deep.json["truncated"]
    # Strings print whole whatever the depth: the text is cut at MAX_BYTES.
    target.eval(
        "{ok, _} = gen_server:start({local, bg_wide_state}, bg_plant, "
        "[lists:duplicate(10000, $a) || _ <- lists:seq(1, 29)], []), ok."
    )
    wide = h.run("state bg_wide_state")
    assert wide.json["truncated"] and wide.json["state"].endswith("aaa ...")
    assert len(wide.json["state"].encode()) == MAX_BYTES + 4
    assert "(cut at depth 30 / 32 KiB)" in wide.text
    # A state larger than the worker's budget cannot even be copied: refused, node unaffected.
    with pytest.raises(CommandError, match=r"needed more than 4 MiB of heap"):
        h.run("state bg_big_state", safety=SafetyConfig(max_heap=4 * 1024 * 1024))
    assert target.eval_bool("is_process_alive(whereis(bg_big_state)).")


def test_state_of_a_hung_process_times_out_cleanly(target: ErlangNode, h: Harness) -> None:
    target.eval("bg_plant:hung(), ok.")
    start = time.monotonic()
    with pytest.raises(CommandError, match=r"bg_hung did not answer the state request within 0\.3s .*--timeout MS"):
        h.run("state bg_hung --timeout 300")
    assert time.monotonic() - start < 5
    # Default timeout comes from safety.state_timeout.
    with pytest.raises(CommandError, match=r"within 0\.2s"):
        h.run("state bg_hung", safety=SafetyConfig(state_timeout=0.2))
    # The node is fine and so is the next command.
    assert target.eval_bool("is_process_alive(whereis(bg_hung)).")
    assert h.run("stack bg_hung").json["name"] == "bg_hung"


def test_state_of_a_plain_process_is_a_clear_error(target: ErlangNode, h: Harness) -> None:
    with pytest.raises(CommandError, match=r"code_server (could not give its state|did not answer)"):
        h.run("state code_server --timeout 500")


@pytest.mark.parametrize("command", ["state", "messages"])
def test_protected_processes_are_refused(target: ErlangNode, h: Harness, command: str) -> None:
    for name in ("net_kernel", "auth"):
        with pytest.raises(CommandError, match=f"{name} is a protected process"):
            h.run(f"{command} {name}")
        pid = pid_of(target, name)
        with pytest.raises(CommandError, match=rf"{pid} is a protected process \({name}\)"):
            h.run(f"{command} {pid}")
    target.eval("bg_plant:worker(bg_secret), ok.")
    h.run(f"{command} bg_secret")  # not protected by default
    guarded = SafetyConfig(protected_processes=("bg_secret",))
    with pytest.raises(CommandError, match=r"bg_secret is a protected process \(bg_secret\): refused for everyone"):
        h.run(f"{command} bg_secret", safety=guarded)


def global_pid(node: ErlangNode, name: str) -> str:
    """The pid registered globally as ``name`` on a fixture node, as ``<0.N.S>`` (asked through its REPL)."""
    return str(node.eval(f"pid_to_list(global:whereis_name({name})).", pretty=True)).strip('"')


@pytest.mark.parametrize("line", ["state {}", "messages {}", "info {} messages"])
def test_global_protected_processes_are_refused_on_the_node(target: ErlangNode, h: Harness, line: str) -> None:
    target.eval(
        "{ok, _} = gen_server:start({global, bg_vault}, bg_plant, #{secret => 1}, []), "
        "{ok, _} = gen_server:start({global, 'Elixir.MyApp.Vault'}, bg_plant, #{secret => 2}, []), ok."
    )
    vault, elixir_vault = global_pid(target, "bg_vault"), global_pid(target, "'Elixir.MyApp.Vault'")
    h.run(line.format(vault))  # not protected by default
    guarded = SafetyConfig(protected_processes=("global:bg_vault", "global:MyApp.Vault"))
    for proc, entry in (
        (vault, "global:bg_vault"),
        ("global:bg_vault", "global:bg_vault"),
        (elixir_vault, "global:MyApp.Vault"),
        ("global:MyApp.Vault", "global:MyApp.Vault"),
    ):
        with pytest.raises(CommandError, match=rf"^{proc} is a protected process \({entry}\): refused for everyone$"):
            h.run(line.format(proc), safety=guarded)
    # An entry naming an atom the node has never seen protects nothing there, and creates no atom.
    atoms = target.eval_int("erlang:system_info(atom_count).")
    h.run(line.format(vault), safety=SafetyConfig(protected_processes=("global:bg_never_seen_q7",)))
    assert target.eval_int("erlang:system_info(atom_count).") == atoms


def test_messages_of_a_short_mailbox(target: ErlangNode, h: Harness) -> None:
    target.eval(
        "P = spawn(fun() -> receive stop -> ok end end), register(bg_box, P), "
        '[P ! {job, I, <<"data">>} || I <- lists:seq(1, 3)], ok.'
    )
    out = h.run("messages bg_box")
    assert out.json["queue_len"] == 3
    assert out.json["messages"] == ['{job,1,<<"data">>}', '{job,2,<<"data">>}', '{job,3,<<"data">>}']
    two = h.run("messages bg_box 2")
    assert len(two.json["messages"]) == 2 and "the first 2" in two.text
    with pytest.raises(CommandError, match=r"3 messages queued, above the cap of 2"):
        h.run("messages bg_box", safety=SafetyConfig(messages_cap=2))
    assert target.eval_int("element(2, process_info(whereis(bg_box), message_queue_len)).") == 3


def test_kill_asks_for_the_pid_and_kills_only_on_a_match(target: ErlangNode, h: Harness) -> None:
    assert REGISTRY["kill"].privileged
    target.eval("bg_plant:worker(bg_victim), ok.")
    pid = pid_of(target, "bg_victim")

    h.confirm_answer = "<0.1.0>"
    with pytest.raises(CommandError, match=f"kill cancelled: {pid} left alone"):
        h.run("kill bg_victim")
    assert h.prompts[-1].startswith(f"kill {pid} (bg_victim, gen_server:loop/")
    h.confirm_answer = None
    with pytest.raises(CommandError, match="kill cancelled"):
        h.run("kill bg_victim")
    assert target.eval_bool("is_process_alive(whereis(bg_victim)).")

    h.confirm_answer = pid.strip("<>")  # any spelling of the same pid
    out = h.run("kill bg_victim")
    assert out.json == {"pid": pid, "name": "bg_victim", "killed": True, "reason": "killed"}
    assert wait_until(lambda: target.eval("whereis(bg_victim).") == "undefined", 5)


def test_kill_refuses_protected_processes_by_pid_and_name(target: ErlangNode, h: Harness) -> None:
    target.eval("bg_plant:worker(bg_keep), {ok, _} = gen_server:start({global, bg_gvault}, bg_plant, #{}, []), ok.")
    keep, gvault = pid_of(target, "bg_keep"), global_pid(target, "bg_gvault")
    h.confirm_answer = keep
    guarded = SafetyConfig(protected_processes=("bg_keep", "global:bg_gvault"))
    for proc, entry in ((keep, "bg_keep"), ("bg_keep", "bg_keep"), (gvault, "global:bg_gvault")):
        with pytest.raises(CommandError, match=rf"^{proc} is a protected process \({entry}\): refused for everyone$"):
            h.run(f"kill {proc}", safety=guarded)
    assert not h.prompts  # refused before asking
    assert target.eval_bool(
        f'is_process_alive(list_to_pid("{keep}")) andalso is_process_alive(list_to_pid("{gvault}")).'
    )


def test_kill_of_a_process_that_exited_meanwhile_is_not_reported_killed(target: ErlangNode, h: Harness) -> None:
    target.eval("bg_plant:worker(bg_brief), ok.")
    pid = pid_of(target, "bg_brief")
    h.confirm_answer = pid
    h.while_confirming = lambda: target.eval("gen_server:stop(bg_brief), ok.")
    with pytest.raises(CommandError, match=rf"^{pid} had already exited; nothing was killed$"):
        h.run("kill bg_brief")


def test_kill_checks_protection_again_at_the_point_of_action(target: ErlangNode, h: Harness) -> None:
    # Unnamed when described and confirmed; registered as a protected name while the user types.
    pid = target.eval("pid_to_list(spawn(fun() -> receive stop -> ok end end)).", pretty=True).strip('"')
    h.confirm_answer = pid
    h.while_confirming = lambda: target.eval(f'register(bg_late_keep, list_to_pid("{pid}")), ok.')
    guarded = SafetyConfig(protected_processes=("bg_late_keep",))
    with pytest.raises(CommandError, match=rf"^{pid} is a protected process \(bg_late_keep\): refused for everyone$"):
        h.run(f"kill {pid}", safety=guarded)
    assert h.prompts  # asked: the process was not protected then
    assert target.eval_bool(f'is_process_alive(list_to_pid("{pid}")) andalso whereis(bg_late_keep) =/= undefined.')
    target.eval("bg_late_keep ! stop, ok.")


def test_kill_refuses_processes_the_node_needs(target: ErlangNode, h: Harness) -> None:
    h.confirm_answer = "anything"
    for name in ("code_server", "net_kernel", "application_controller", "init", "kernel_sup"):
        with pytest.raises(CommandError, match=r"refused: .* is vital to the node"):
            h.run(f"kill {name}")
    assert not h.prompts
    assert target.eval_bool("is_process_alive(whereis(code_server)).")
