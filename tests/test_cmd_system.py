"""Node-wide diagnostics on real nodes (OTP 25 and 28): allocators, schedulers, ETS, ports, apps."""

from __future__ import annotations

import re
import time

import pytest

from commands.allocators import UTIL_ALLOCATORS
from tests.support.erlang import ErlangNode
from tests.support.harness import Harness

#: The fixtures h (a harness on target, with bg_plant loaded) and beams.
pytest_plugins = ("tests.support.fixtures",)


def numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", text)]


def close(a: float, b: float, rel: float = 0.1, slack: int = 1 << 20) -> bool:
    return abs(a - b) <= max(rel * max(a, b), slack)


def test_alloc_memory_agrees_with_the_node(target: ErlangNode, h: Harness) -> None:
    target.eval("bg_plant:leak(10, 1000000), ok.")  # give binary_alloc something to hold
    memory = h.run("alloc memory --json").json
    types = {r["allocator"]: r["bytes"] for r in h.run("alloc memory allocated_types").json["allocated_types"]}
    # Independently computed on the node (tests/erlang/bg_plant.erl) right after.
    figures = target.eval("bg_plant:alloc_figures().")
    used, allocated = numbers(figures)[:2]
    total = numbers(figures)[-1]
    assert close(memory["used"], used) and close(memory["allocated"], allocated)
    assert memory["unused"] == memory["allocated"] - memory["used"]
    assert memory["usage"] == pytest.approx(memory["used"] / memory["allocated"])
    # erlang:memory(total) counts these blocks and a little more (literal_alloc, exec_alloc, ...).
    assert 0.4 * total <= memory["used"] <= 1.05 * total
    independent_types = dict((name, int(size)) for name, size in re.findall(r"\{(\w+_alloc),(\d+)\}", figures))
    assert set(types) == set(UTIL_ALLOCATORS) == set(independent_types)
    for name in UTIL_ALLOCATORS:
        assert close(types[name], independent_types[name]), name
    assert types["binary_alloc"] >= 10 * 1000000
    assert sum(types.values()) == pytest.approx(memory["allocated"], rel=0.1)

    instances = h.run("alloc memory allocated_instances max").json["allocated_instances"]
    assert [r["instance"] for r in instances] == list(range(len(instances)))
    peak = h.run("alloc memory used max").json["used"]
    assert peak >= memory["used"] * 0.9


def test_alloc_views(h: Harness) -> None:
    text = h.run("alloc memory").text
    assert re.search(r"used:\s+\d+\.\d MiB", text) and re.search(r"usage:\s+\d+\.\d%", text)
    for line in ("alloc fragmentation", "alloc fragmentation max", "alloc sbcs_to_mbcs current"):
        rows = h.run(line).json
        assert {r["allocator"] for r in rows} == set(UTIL_ALLOCATORS)
    frag = h.run("alloc fragmentation current").json
    weights = [
        (1 - r["sbcs_usage"]) * r["sbcs_carriers_size"] + (1 - r["mbcs_usage"]) * r["mbcs_carriers_size"] for r in frag
    ]
    assert weights == sorted(weights, reverse=True)
    averages = h.run("alloc average_block_sizes max").json
    assert [r["allocator"] for r in averages] == sorted(UTIL_ALLOCATORS)
    assert all(set(r) == {"allocator", "mbcs", "sbcs"} for r in averages)
    hits = h.run("alloc cache_hit_rates").json
    assert hits and all((0 <= r["hit_rate"] <= 1 and r["hits"] <= r["calls"]) or r["calls"] == 0 for r in hits)


def wall_time_on(node: ErlangNode) -> bool:
    return node.eval("erlang:statistics(scheduler_wall_time).") != "undefined"


def test_scheduler_usage_sees_a_busy_loop_and_restores_the_flag(target: ErlangNode, h: Harness) -> None:
    assert not wall_time_on(target)
    target.eval("bg_plant:busy(), ok.")
    try:
        out = h.run("scheduler_usage 500")
    finally:
        target.eval("bg_plant:stop(whereis(bg_busy)).")
    normal = [s for s in out.json["schedulers"] if s["type"] == "normal"]
    assert len(normal) == target.eval_int("erlang:system_info(schedulers).")
    assert max(s["usage"] for s in normal) > 0.3
    assert 0 < out.json["total"] <= 1
    assert not wall_time_on(target), "the flag was off before: it must be off after"

    target.eval("Holder = bg_plant:wall_time_holder(), ok.")
    assert wall_time_on(target)
    h.run("scheduler_usage 100")
    assert wall_time_on(target), "another process had it on: it must stay on"
    target.eval("bg_plant:stop(Holder).")
    time.sleep(0.1)
    assert not wall_time_on(target)


def test_a_million_row_table_tops_ets(target: ErlangNode, h: Harness) -> None:
    owner = target.eval("pid_to_list(bg_plant:big_ets(1000000)).", pretty=True).strip('"')
    out = h.run("ets 3")
    top = out.json[0]
    assert (top["name"], top["size"], top["type"], top["protection"], top["owner"]) == (
        "bg_big",
        1000000,
        "set",
        "public",
        owner,
    )
    words = target.eval_int("ets:info(bg_big, memory).")
    assert top["memory"] == words * target.eval_int("erlang:system_info(wordsize).")
    assert out.json[1]["memory"] < top["memory"]
    assert "bg_big" in out.text.splitlines()[2] and "1,000,000" in out.text


def test_ports_inet_and_port_info(target: ErlangNode, h: Harness) -> None:
    target.eval(
        "{ok, L} = gen_tcp:listen(0, [binary, {active, false}]), {ok, Port} = inet:port(L), "
        "{ok, C} = gen_tcp:connect({127,0,0,1}, Port, [binary]), {ok, S} = gen_tcp:accept(L), "
        "ok = gen_tcp:send(C, binary:copy(<<1>>, 3000000)), ok."
    )
    client = target.eval("C.", pretty=True)
    types = {r["type"]: r["count"] for r in h.run("ports").json}
    assert types["tcp_inet"] == target.eval_int(
        'length([P || P <- erlang:ports(), erlang:port_info(P, name) =:= {name, "tcp_inet"}]).'
    )

    top = h.run("inet_count send_oct 2").json[0]
    assert top["port"] == client and top["value"] == 3000000
    assert top["stats"] == {"send_oct": 3000000} and top["peer"].startswith("127.0.0.1:")

    pending = h.submit("inet_window oct 2 1500")
    time.sleep(0.5)
    target.eval("ok = gen_tcp:send(C, binary:copy(<<1>>, 500000)), {ok, _} = gen_tcp:recv(S, 0), ok.")
    window = pending.result(60).json
    assert window[0]["value"] >= 500000 and window[0]["port"] in (client, target.eval("S.", pretty=True))

    info = h.run(f"port_info {client}").json
    assert info["meta"]["name"] == "tcp_inet"
    assert 3500000 <= info["io"]["output"] < 3500000 + 4096  # OTP 28 counts a few control bytes too
    assert info["type"]["peername"] == top["peer"]
    assert info["type"]["options"]["mode"] == "binary"
    number = client.removeprefix("#Port<0.").removesuffix(">")
    assert h.run(f"port_info {number}").json["port"] == client


def test_apps_match_the_node(target: ErlangNode, h: Harness) -> None:
    apps = {r["name"]: r["version"] for r in h.run("apps").json}
    assert apps["kernel"] == target.eval(
        "element(3, lists:keyfind(kernel, 1, application:which_applications())).", pretty=True
    ).strip('"')
    assert "stdlib" in apps
