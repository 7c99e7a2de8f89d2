"""``trace`` against real nodes (OTP 25 and OTP 28): limits, filters, and cleanup after every way of stopping.

A fixture module (``tests/erlang/bg_traced.erl``) runs ``bg_traced:work/2``
in a loop in named processes. After each trace the node itself is asked,
through its own REPL and not through beamgate, whether any trace pattern,
trace flag, relay or trace session of ours remains (:func:`leftovers`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from commands import trace as trace_command
from commands.errors import CommandError
from commands.grammar import UsageError
from commands.tracing.output import TraceStarted, TraceStatus, TraceStopped
from commands.tracing.relay import TAG, TraceEvent
from tests.support.erlang import ERLANG_SRC, ErlangNode, compile_erlang, wait_until
from tests.support.trace_harness import CLEAN, Gateway, leftovers

compile_erlang(ERLANG_SRC / "bg_traced.erl")


@pytest.fixture
def node(target: ErlangNode) -> ErlangNode:
    """The target fixture (OTP 25, then OTP 28) with bg_traced loaded and two loops running.

    ``loop_a`` calls ``work(I, a)`` every 5 ms (faster than the default rate
    limit), ``loop_s`` calls ``work(I, s)`` every 50 ms (slower than it):
    traces meant to run until stopped some other way match ``[_, s]``.
    """
    target.eval("{module, bg_traced} = code:ensure_loaded(bg_traced), ok.")
    target.eval("bg_traced:start(loop_a, 5, a), bg_traced:start(loop_s, 50, s), ok.")
    return target


def assert_clean(node: ErlangNode, within: float = 2.0) -> None:
    assert wait_until(lambda: leftovers(node) == CLEAN, within), leftovers(node)


def run_async(node: ErlangNode, body: Callable[[Gateway], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        gw = Gateway(node)
        try:
            return await body(gw)
        finally:
            gw.close()

    return asyncio.run(main())


def pid_text(node: ErlangNode, expr: str) -> str:
    """``<0.N.S>`` of the pid ``expr`` evaluates to on ``node``."""
    return node.eval(f"pid_to_list({expr}).", pretty=True).strip('"')


def calls(events: list[Any]) -> list[TraceEvent]:
    return [e for e in events if isinstance(e, TraceEvent)]


def test_limit_yields_exactly_n_calls(node: ErlangNode) -> None:
    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --limit 5")
        result = await run.run()
        assert isinstance(result, TraceStopped) and (result.reason, result.count) == ("limit", 5)
        assert len(calls(run.events)) == 5
        first = run.events[0]
        assert isinstance(first, TraceStarted) and "at most 5 messages" in run.inv.command.render(first, run.inv)
        line = run.inv.command.render(calls(run.events)[0], run.inv)
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{6} <0\.\d+\.0> bg_traced:work\(\d+, [as]\)", line), line
        # counted and cut on the node: no trace message arrives after the stop
        await asyncio.sleep(0.3)
        late = [await run.owner.receive(0) for _ in range(run.owner.pending())]
        assert not [m for m in late if m[0] == TAG], late

    run_async(node, body)
    assert_clean(node)


def test_rate_trips_and_says_so(node: ErlangNode) -> None:
    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --rate 10/1 --limit 200")
        result = await run.run()
        assert (result.reason, result.count) == ("rate", 10)
        assert "rate limit tripped: more than 10 messages within 1s" in run.inv.command.render(result, run.inv)
        assert len(calls(run.events)) == 10

    run_async(node, body)
    assert_clean(node)


def test_duration_stops_after_about_two_seconds(node: ErlangNode) -> None:
    node.eval("bg_traced:start(loop_slow, 200, slow), ok.")

    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --for 2 --match '[_, slow]'")
        started = time.monotonic()
        result = await run.run()
        elapsed = time.monotonic() - started
        assert result.reason == "duration", result
        assert 1.8 <= elapsed <= 5.0, elapsed
        assert 5 <= result.count <= 15  # one call every 200 ms
        assert all(e.args is not None and e.args.endswith(", slow") for e in calls(run.events))

    run_async(node, body)
    assert_clean(node)


def test_return_values(node: ErlangNode) -> None:
    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --return --limit 6 --pid loop_a")
        await run.run()
        events = calls(run.events)
        assert [e.kind for e in events] == ["call", "return"] * 3
        for call, ret in zip(events[::2], events[1::2], strict=True):
            n = int((call.args or "").split(",")[0])
            assert ret.result == str(2 * n) and ret.mfa == "bg_traced:work/2" and ret.pid == call.pid
            assert run.inv.command.render(ret, run.inv).endswith(f" bg_traced:work/2 --> {2 * n}")

    run_async(node, body)
    assert_clean(node)


def test_match_filters_arguments(node: ErlangNode) -> None:
    node.eval("bg_traced:start(loop_b, 5, b), ok.")

    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --match '[_, b]' --limit 8")
        result = await run.run()
        assert result.reason == "limit"
        assert {e.args.split(", ")[1] for e in calls(run.events) if e.args} == {"b"}
        odd = gw.trace("trace bg_traced:work/2 --match '[7, a]' --for 1")
        assert (await odd.run()).count == 0  # loop_a passed 7 long ago

    run_async(node, body)
    assert_clean(node)


def test_pid_scopes_to_one_process(node: ErlangNode) -> None:
    node.eval("bg_traced:start(loop_b, 5, b), ok.")
    pid_b = pid_text(node, "whereis(loop_b)")

    async def body(gw: Gateway) -> None:
        by_name = gw.trace("trace bg_traced:work/2 --pid loop_b --limit 6")
        await by_name.run()
        assert {e.pid for e in calls(by_name.events)} == {pid_b}
        by_pid = gw.trace(f"trace bg_traced:work/2 --pid '{pid_b}' --limit 4")
        await by_pid.run()
        assert {e.pid for e in calls(by_pid.events)} == {pid_b}
        with pytest.raises(CommandError, match="no such process loop_zz"):
            await gw.trace("trace bg_traced:work/2 --pid loop_zz").run()
        with pytest.raises(CommandError, match=r"no such process <0\.999999\.0>"):
            await gw.trace("trace bg_traced:work/2 --pid '<0.999999.0>'").run()

    run_async(node, body)
    assert_clean(node)


def test_new_processes_only(node: ErlangNode) -> None:
    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --pid new --limit 3 --for 5")
        task = run.start()
        await asyncio.sleep(0.5)
        assert calls(run.events) == []  # loop_a existed before the trace
        new_pid = await asyncio.to_thread(pid_text, node, "bg_traced:start(loop_new, 5, n)")
        result = await task
        assert result.reason == "limit"
        assert {e.pid for e in calls(run.events)} == {new_pid}

    run_async(node, body)
    assert_clean(node)


def test_local_calls_need_local(node: ErlangNode) -> None:
    async def body(gw: Gateway) -> None:
        with pytest.raises(CommandError, match=r"not exported.*--local"):
            await gw.trace("trace bg_traced:inner/1").run()
        run = gw.trace("trace bg_traced:inner/1 --local --limit 3")
        assert (await run.run()).count == 3
        assert all(e.mfa == "bg_traced:inner/1" for e in calls(run.events))

    run_async(node, body)
    assert_clean(node)


def test_whole_module_and_several_specs(node: ErlangNode) -> None:
    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced bg_traced:inner/1 --local --limit 6")
        await run.run()
        started = run.events[0]
        assert isinstance(started, TraceStarted) and started.matched > 2
        # --local applies to every spec: loop/3 calls itself locally
        assert {"work", "inner"} <= {e.function for e in calls(run.events)} <= {"work", "inner", "loop"}

    run_async(node, body)
    assert_clean(node)


def test_misspelt_names_create_no_atom(node: ErlangNode) -> None:
    async def body(gw: Gateway) -> None:
        # warm up: the snippet's own (fixed) atoms exist from here on
        with pytest.raises(CommandError):
            await gw.trace("trace bg_never_mod_warmup:f/1").run()
        before = await asyncio.to_thread(node.eval_int, "erlang:system_info(atom_count).")
        with pytest.raises(CommandError, match=r"no such function bg_nosuch_mod_xyz:go/1 .*no module"):
            await gw.trace("trace bg_nosuch_mod_xyz:go/1").run()
        with pytest.raises(CommandError, match=r"no such module bg_nosuch_mod_xyz"):
            await gw.trace("trace bg_nosuch_mod_xyz").run()
        with pytest.raises(CommandError, match=r"no such function bg_traced:wrok_xyz/2"):
            await gw.trace("trace bg_traced:wrok_xyz/2").run()
        with pytest.raises(CommandError, match=r"no such process bg_no_such_proc_xyz"):
            await gw.trace("trace bg_traced:work/2 --pid bg_no_such_proc_xyz").run()
        with pytest.raises(CommandError, match=r"atom bg_never_seen_xyz, which does not exist"):
            await gw.trace("trace bg_traced:work/2 --match '[_, bg_never_seen_xyz]'").run()
        after = await asyncio.to_thread(node.eval_int, "erlang:system_info(atom_count).")
        assert after == before

    run_async(node, body)
    for name in ("bg_nosuch_mod_xyz", "wrok_xyz", "bg_no_such_proc_xyz", "bg_never_seen_xyz"):
        assert node.eval(f'catch binary_to_existing_atom(<<"{name}">>, utf8).').startswith("{'EXIT',{badarg")
    assert_clean(node)


def test_module_not_loaded_is_refused_not_loaded(node: ErlangNode) -> None:
    # 'array' is in stdlib, so the atom exists, but a fresh node has not loaded it
    assert node.eval("code:is_loaded(array).") == "false"

    async def body(gw: Gateway) -> None:
        with pytest.raises(CommandError, match=r"module array is not loaded.*never loads code"):
            await gw.trace("trace array:new/0").run()

    run_async(node, body)
    assert node.eval("code:is_loaded(array).") == "false"


def test_dangerous_combination_refused_before_the_node(node: ErlangNode) -> None:
    async def body(gw: Gateway) -> None:
        with pytest.raises(UsageError, match="every function of lists"):
            await gw.trace("trace lists").run()

    run_async(node, body)
    assert_clean(node)


def test_probe_sees_a_running_trace(node: ErlangNode) -> None:
    """The cleanliness probe is not vacuous: mid-trace it reports our trace."""

    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --for 20 --match '[_, undefined]'")
        run.start()
        await asyncio.sleep(0.5)
        seen = await asyncio.to_thread(leftovers, node)
        assert seen != CLEAN
        if node.runtime.name == "otp28":
            assert "beamgate_trace" in seen  # a session of ours
        else:
            # our legacy pattern, flags on every process, the registered relay
            assert seen.startswith("{[work],") and not seen.endswith(",undefined}")
        run.owner.close()
        assert (await run.task) is not None  # type: ignore[misc]

    run_async(node, body)
    assert_clean(node)


def test_owner_closed_cleans_up(node: ErlangNode) -> None:
    """The session ends (or Ctrl-C closes the owner): the relay sees it and removes the trace."""

    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --for 30 --match '[_, s]' --return")
        task = run.start()
        await run.wait_for(3)
        run.owner.close()
        result = await task
        assert result.reason == "interrupted"
        await asyncio.to_thread(assert_clean, node)

    run_async(node, body)


def test_cancel_cleans_up_and_says_interrupted(node: ErlangNode) -> None:
    """Ctrl-C cancels the command task: the relay is told to stop, the summary says interrupted."""

    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --for 30 --match '[_, s]'")
        task = run.start()
        await run.wait_for(2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        last = run.events[-1]
        assert isinstance(last, TraceStopped) and last.reason == "interrupted"
        assert run.inv.command.to_json(last, run.inv) == {
            "event": "stopped",
            "reason": "interrupted",
            "count": len(calls(run.events)),
        }
        await asyncio.to_thread(assert_clean, node)

    run_async(node, body)


def test_connection_loss_cleans_up(node: ErlangNode) -> None:
    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --for 30 --match '[_, s]'")
        task = run.start()
        await run.wait_for(2)
        gw.local.connection_for(node.name).close()
        result = await task
        assert result.reason == "node_down"
        await asyncio.to_thread(assert_clean, node)

    run_async(node, body)


def _kill_ours(node: ErlangNode, key: str) -> None:
    node.eval(
        f"""[exit(KillP, kill) || KillP <- processes(),
             case erlang:process_info(KillP, dictionary) of
                 {{dictionary, KillD}} -> lists:keymember({key}, 1, KillD);
                 _ -> false
             end], ok."""
    )


def test_relay_crash_cleaner_cleans_up(node: ErlangNode) -> None:
    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --for 30 --match '[_, s]'")
        task = run.start()
        await run.wait_for(1)
        await asyncio.to_thread(_kill_ours, node, "beamgate_trace")
        result = await task
        assert result.reason == "crashed" and "killed" in result.detail
        await asyncio.to_thread(assert_clean, node)

    run_async(node, body)


def test_cleaner_death_relay_cleans_up(node: ErlangNode) -> None:
    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --for 30 --match '[_, s]'")
        task = run.start()
        await run.wait_for(1)
        await asyncio.to_thread(_kill_ours, node, "beamgate_trace_cleaner")
        result = await task
        assert result.reason == "crashed"
        await asyncio.to_thread(assert_clean, node)

    run_async(node, body)


def test_huge_argument_never_crosses_the_network(node: ErlangNode) -> None:
    node.eval("bg_traced:call_big(big_a), ok.")

    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:big/1 --limit 2 --return")
        result = await run.run()
        assert result.count == 2
        call, ret = calls(run.events)
        assert call.args is not None and call.args.startswith('<<"xxxx') and len(call.args) < 200
        assert ret.result == str(100 * 1024 * 1024)

    run_async(node, body)
    assert_clean(node)


def test_arguments_print_like_recon(node: ErlangNode) -> None:
    term = '{<<"GET">>, "hello", #{k => [1,2]}, lists:seq(1, 100000), <<255,0>>, "tab\\t\\e[31m"}'
    node.eval(f"bg_traced:start_echo(echo_a, {term}), ok.")

    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:echo/1 --limit 2 --return")
        await run.run()
        call, ret = calls(run.events)
        head, tail = '{<<"GET">>,"hello",#{k => [1,2]},[1,2,3,', '|...],<<255,0>>,"tab\\t\\e[31m"}'
        assert call.args is not None and call.args.startswith(head) and call.args.endswith(tail), call.args
        assert ret.result == call.args

    run_async(node, body)
    assert_clean(node)


def test_quiet_trace_says_it_is_still_on(node: ErlangNode, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace_command, "STATUS_EVERY", 0.4)

    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --match '[_, undefined]' --for 2")
        result = await run.run()
        assert (result.reason, result.count) == ("duration", 0)
        statuses = [e for e in run.events if isinstance(e, TraceStatus)]
        assert 2 <= len(statuses) <= 6, run.events
        line = run.inv.command.render(statuses[0], run.inv)
        assert re.fullmatch(
            r"still tracing: 0 messages so far, stops within [01]s \(at most 200 messages, 100 per 1s, for 2s\); "
            r"Ctrl-C stops",
            line,
        ), line
        json_run = gw.trace("trace bg_traced:work/2 --match '[_, undefined]' --for 1 --json")
        await json_run.run()
        assert json_run.events == []  # JSON lines carry trace messages and the final stopped only

    run_async(node, body)
    assert_clean(node)


def test_json_lines(node: ErlangNode) -> None:
    async def body(gw: Gateway) -> None:
        run = gw.trace("trace bg_traced:work/2 --limit 2 --return --json --pid loop_a")
        result = await run.run()
        cmd = run.inv.command
        lines = [cmd.to_json(e, run.inv) for e in run.events] + [cmd.to_json(result, run.inv)]
        assert [set(x) for x in lines[:2]] == [{"ts", "pid", "kind", "mfa", "args", "result"}] * 2
        assert lines[0]["kind"] == "call" and lines[0]["result"] is None and lines[0]["mfa"] == "bg_traced:work/2"
        assert lines[1]["kind"] == "return" and lines[1]["args"] is None
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", lines[0]["ts"])
        assert lines[-1] == {"event": "stopped", "reason": "limit", "count": 2}

    run_async(node, body)
    assert_clean(node)
