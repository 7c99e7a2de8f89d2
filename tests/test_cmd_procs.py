"""Process diagnostics on real nodes (OTP 25 and 28): each finds the problem planted for it.

The problems are the ones "Erlang in Anger" teaches to look for: a mailbox
that never drains, a process sitting on refc binaries it no longer needs, a
process burning CPU. Every expectation is checked against the node's own
view, through its fixture REPL.
"""

from __future__ import annotations

import time

import pytest

from commands.errors import CommandError
from commands.grammar import UsageError
from gateway.config import SafetyConfig
from tests.support.erlang import ErlangNode
from tests.support.harness import Harness, pid_of

#: The fixtures h (a harness on target, with bg_plant loaded) and beams.
pytest_plugins = ("tests.support.fixtures",)

ROW_KEYS = {"pid", "value", "name", "current_function", "initial_call"}


def test_flooded_mailbox_tops_message_queue_len_and_messages_refuses(target: ErlangNode, h: Harness) -> None:
    target.eval("bg_plant:flood(50000), ok.")
    flooded = pid_of(target, "bg_flooded")

    out = h.run("proc_count message_queue_len 3")
    top = out.json[0]
    assert set(top) == ROW_KEYS
    assert (top["pid"], top["value"], top["name"]) == (flooded, 50000, "bg_flooded")
    assert top["current_function"] == "bg_plant:hold/0"
    assert len(out.json) == 3
    assert flooded in out.text.splitlines()[2] and "50,000" in out.text

    with pytest.raises(CommandError, match=r"50,000 messages queued, above the cap of 100 \(safety.messages_cap\)"):
        h.run("messages bg_flooded")
    with pytest.raises(CommandError, match="50,000 messages"):
        h.run(f"messages {flooded}")
    assert target.eval_int("element(2, process_info(whereis(bg_flooded), message_queue_len)).") == 50000


def test_refc_binaries_top_binary_memory_and_bin_leak(target: ErlangNode, h: Harness) -> None:
    target.eval("bg_plant:leak(20, 1000000), ok.")
    leaker = pid_of(target, "bg_leaker")

    top = h.run("proc_count binary_memory 5").json[0]
    assert (top["pid"], top["name"]) == (leaker, "bg_leaker")
    assert top["value"] == 20 * 1000000

    leak = h.run("bin_leak 5")
    first = leak.json[0]
    assert (first["pid"], first["name"], first["value"]) == (leaker, "bg_leaker", 20)
    assert first["bytes_freed"] == 20 * 1000000
    assert "garbage-collected" in leak.text and "19.1 MiB" in leak.text
    # The node's own view: the references are gone after the forced GC.
    assert target.eval("process_info(whereis(bg_leaker), binary).") == "{binary,[]}"
    after = h.run("proc_count binary_memory 5").json
    assert all(row["pid"] != leaker or row["value"] == 0 for row in after)


def test_busy_loop_tops_proc_window_reductions(target: ErlangNode, h: Harness) -> None:
    target.eval("bg_plant:busy(), ok.")
    busy = pid_of(target, "bg_busy")
    try:
        out = h.run("proc_window reductions 3 500")
        assert (out.json[0]["pid"], out.json[0]["name"]) == (busy, "bg_busy")
        assert out.json[0]["value"] > 10 * max(row["value"] for row in out.json[1:])
        assert out.json[0]["current_function"] == "bg_plant:spin/1"
        assert "gained over 500 ms" in out.text
    finally:
        target.eval("bg_plant:stop(whereis(bg_busy)).")


def test_proc_window_counts_processes_born_during_the_window(target: ErlangNode, h: Harness) -> None:
    pending = h.submit("proc_window reductions 2 3000")
    time.sleep(1.0)
    target.eval("bg_plant:busy(), ok.")
    try:
        out = pending.result(60)
        assert out.json[0]["name"] == "bg_busy"
    finally:
        target.eval("bg_plant:stop(whereis(bg_busy)).")


def test_proc_count_excludes_beamgate_worker_and_sorts(h: Harness) -> None:
    rows = h.run("proc_count memory 20").json
    values = [r["value"] for r in rows]
    assert values == sorted(values, reverse=True) and len(rows) == 20
    # The worker holds the process list: it must not rank itself, nor its runner (prim_eval receive).
    assert not any(r["current_function"] in ("prim_eval:receive/2", "erl_eval:do_apply/7") for r in rows)


def test_info_proc_groups_and_binary_only_on_request(target: ErlangNode, h: Harness) -> None:
    target.eval("bg_plant:worker(bg_worker), ok.")
    pid = pid_of(target, "bg_worker")
    info = h.run("info bg_worker").json
    assert info["pid"] == pid
    assert set(info) == {"pid", "meta", "signals", "location", "memory_used", "work"}
    assert info["meta"]["registered_name"] == "bg_worker"
    assert info["meta"]["status"] == "waiting"
    assert info["location"]["initial_call"] == "proc_lib:init_p/5"
    assert info["location"]["current_stacktrace"][0].startswith("gen_server:loop/")
    assert info["memory_used"]["memory"] == target.eval_int("element(2, process_info(whereis(bg_worker), memory)).")
    assert "binary" not in info["memory_used"] and "messages" not in str(info)
    dictionary = dict(info["meta"]["dictionary"]["entries"])
    assert dictionary["'$initial_call'"] == "{bg_plant,init,1}"

    only = h.run(f"info {pid} binary work").json
    assert set(only) == {"pid", "memory_used", "work"}
    assert only["memory_used"]["binary"] == {"count": 0, "bytes": 0, "largest": []}
    text = h.run("info bg_worker").text
    assert "registered_name: bg_worker" in text and "reductions:" in text


def test_stack_shows_where_a_process_is(target: ErlangNode, h: Harness) -> None:
    target.eval("bg_plant:hung(), ok.")
    time.sleep(0.2)
    out = h.run("stack bg_hung")
    assert out.json["name"] == "bg_hung"
    assert out.json["stack"][0].startswith("timer:sleep/1")
    assert any(frame.startswith("bg_plant:handle_cast/2 (") for frame in out.json["stack"])


@pytest.mark.parametrize("command", ["info", "stack", "state", "messages", "kill"])
def test_unknown_names_and_pids_are_clear_errors_and_create_no_atom(
    target: ErlangNode, h: Harness, command: str
) -> None:
    name = f"bg_never_{command}_x91"
    with pytest.raises(CommandError, match=f"no such process: {name} on "):
        h.run(f"{command} {name}")
    with pytest.raises(CommandError, match=f"no such process: global:{name} on "):
        h.run(f"{command} global:{name}")
    with pytest.raises(CommandError, match=r"no such process: <0\.999999\.0> on "):
        h.run(f"{command} <0.999999.0>")
    with pytest.raises(CommandError, match="process of another node"):
        h.run(f"{command} <5.1.0>")
    # Names travel as binaries: the lookup must not have created the atom.
    assert target.eval(f'catch list_to_existing_atom("{name}").').startswith("{'EXIT',{badarg,")


def test_usage_errors(h: Harness) -> None:
    with pytest.raises(UsageError, match="ATTR must be one of memory, reductions"):
        h.run("proc_count bogus")
    with pytest.raises(UsageError, match="N must be at most 1000"):
        h.run("proc_count memory 5000")
    with pytest.raises(UsageError, match="MS must be at least 10"):
        h.run("proc_window memory 5 1")
    with pytest.raises(UsageError, match="not a name"):
        h.run("stack 'x y'z")


def test_budget_too_small_kills_the_query_and_the_node_stays_healthy(target: ErlangNode, h: Harness) -> None:
    target.eval("bg_plant:idle(100000).")
    tiny = SafetyConfig(max_heap=1024 * 1024)
    with pytest.raises(CommandError, match=r"killed on .*: it needed more than 1 MiB of heap \(safety.max_heap\)"):
        h.run("proc_count memory 5", safety=tiny)
    assert target.eval_int("erlang:system_info(process_count).") > 100000
    assert len(h.run("proc_count memory 5").json) == 5
    assert h.run("info").json["process_count"] > 100000


def test_remote_text_with_control_characters_arrives_sanitized(target: ErlangNode, h: Harness) -> None:
    pid = target.eval("pid_to_list(bg_plant:evil()).", pretty=True).strip('"')
    outputs = [
        h.run("proc_count memory 200"),
        h.run(f"info {pid}"),
        h.run(f"stack {pid}"),
        h.run(f"state {pid}"),
        h.run("messages bg_evil_box"),
        h.run("ets 200"),
    ]
    for out in outputs:
        for shown in (out.text, str(out.json)):
            assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in shown), out.inv.line
    names = {row["name"] for row in outputs[0].json}
    assert "bg_\\x1b[31mevil\\x1b[0m" in names
    assert "bg_\\x1b[31mevil\\x1b[0m" in outputs[0].text
    # Printed by the node as Erlang source (~tP): escapes, never raw control characters.
    assert '<<"\\e[2Jcleared\\r\\n">>' in outputs[3].json["state"]
    assert outputs[4].json["messages"][0].startswith('<<"\\e]0;title"')
    assert any(row["name"] == "bg_\\x1b[31mevil\\x1b[0m" for row in outputs[5].json)
