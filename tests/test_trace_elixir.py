"""``trace`` on an Elixir node: Elixir specs in, Elixir module names out.

Debian's Elixir (built for OTP 24/25) runs on the OTP 25 runtime; the node
has Elixir's ``ebin`` and the compiled ``tests/erlang/bg_trace_worker.ex``
on its code path.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from commands.errors import CommandError
from tests.support.elixir import compile_elixir, elixir_ebin
from tests.support.erlang import ERLANG_SRC, ErlangNode, Runtime, compile_erlang, wait_until
from tests.support.trace_harness import CLEAN, Gateway, leftovers


@pytest.fixture
def elixir_node(otp25_runtime: Runtime, node_factory: Callable[..., ErlangNode]) -> ErlangNode:
    ebin = elixir_ebin()
    if ebin is None:
        pytest.fail("Elixir is not installed: run scripts/setup.sh")
    worker = compile_elixir(ERLANG_SRC / "bg_trace_worker.ex")
    compile_erlang(ERLANG_SRC / "bg_traced.erl")
    node = node_factory(otp25_runtime, extra_code_paths=[ebin, worker])
    node.eval("'Elixir.BgTrace.Worker':start_loop('Elixir.BgTrace.Loop', 20), ok.")
    node.eval("{module, bg_traced} = code:ensure_loaded(bg_traced), bg_traced:start(loop_a, 20, a), ok.")
    return node


def test_elixir_specs_and_output(elixir_node: ErlangNode) -> None:
    async def main() -> None:
        gw = Gateway(elixir_node)
        run = gw.trace("trace BgTrace.Worker.handle_call/3 --limit 4 --return --pid BgTrace.Loop")
        result = await run.run()
        assert result.count == 4
        cmd = run.inv.command
        call, ret = run.trace_events()[:2]
        assert call.mfa == "BgTrace.Worker.handle_call/3"
        call_line = cmd.render(call, run.inv)
        assert re.search(
            r" <0\.\d+\.0> BgTrace\.Worker\.handle_call\(\{get,\d+\}, <0\.\d+\.0>, #\{count => \d+,name => "
            r'<<"w\\e\[1m">>\}\)$',
            call_line,
        ), call_line
        assert re.search(r" BgTrace\.Worker\.handle_call/3 --> \{reply,\d+,#\{", cmd.render(ret, run.inv))
        assert cmd.to_json(call, run.inv)["mfa"] == "BgTrace.Worker.handle_call/3"

        never = gw.trace("trace BgTrace.Worker.valid?/1 --limit 2 --match '[-1]' --for 1")
        stopped = await never.run()
        assert (stopped.reason, stopped.count) == ("duration", 0)
        any_valid = gw.trace("trace BgTrace.Worker.valid? --limit 2")
        await any_valid.run()
        assert [e.mfa for e in any_valid.trace_events()] == ["BgTrace.Worker.valid?/1"] * 2

        erlang_in_elixir_syntax = gw.trace("trace :bg_traced.work/2 --limit 2")
        await erlang_in_elixir_syntax.run()
        assert [e.mfa for e in erlang_in_elixir_syntax.trace_events()] == ["bg_traced:work/2"] * 2

        with pytest.raises(CommandError, match=r"no such function BgTrace\.Worker\.handle_cal/3"):
            await gw.trace("trace BgTrace.Worker.handle_cal/3").run()
        with pytest.raises(CommandError, match=r"no such module BgTrace\.Wrker"):
            await gw.trace("trace BgTrace.Wrker").run()
        gw.close()

    asyncio.run(main())
    assert wait_until(lambda: leftovers(elixir_node) == CLEAN, 2.0), leftovers(elixir_node)
    assert elixir_node.eval('catch binary_to_existing_atom(<<"Elixir.BgTrace.Wrker">>, utf8).').startswith(
        "{'EXIT',{badarg"
    )
