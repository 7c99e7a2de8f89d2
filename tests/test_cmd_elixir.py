"""An Elixir node (Debian's elixir 1.14): Elixir names read as Elixir, and a GenServer's state prints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.errors import CommandError
from tests.support.elixir import ElixirNode, elixir
from tests.support.harness import Harness, harness_for

pytestmark = pytest.mark.skipif(elixir() is None, reason="Debian's elixir is not installed (scripts/setup.sh)")


@pytest.fixture
def ex(tmp_path: Path) -> Iterator[ElixirNode]:
    node = ElixirNode(tmp_path).start()
    yield node
    node.stop()


@pytest.fixture
def h(ex: ElixirNode) -> Iterator[Harness]:
    harness = harness_for(ex)
    yield harness
    harness.close()


def worker_pid(ex: ElixirNode) -> str:
    return ex.eval("Process.whereis(MyApp.Worker) |> :erlang.pid_to_list() |> List.to_string()").strip('"')


def test_genserver_appears_as_myapp_worker(ex: ElixirNode, h: Harness) -> None:
    pid = worker_pid(ex)
    rows = h.run("proc_count memory 200").json
    row = next(r for r in rows if r["pid"] == pid)
    assert row["name"] == "MyApp.Worker"
    assert row["current_function"].startswith("gen_server:loop/")
    assert "MyApp.Worker" in h.run("proc_count memory 200").text
    assert "Elixir.MyApp.Worker" not in str(rows)


def test_info_stack_and_state_of_an_elixir_genserver(ex: ElixirNode, h: Harness) -> None:
    pid = worker_pid(ex)
    for ref in ("MyApp.Worker", "Elixir.MyApp.Worker", pid):
        info = h.run(f"info {ref}").json
        assert info["pid"] == pid and info["meta"]["registered_name"] == "MyApp.Worker"
    entries = dict(h.run("info MyApp.Worker meta").json["meta"]["dictionary"]["entries"])
    assert entries["'$initial_call'"] == "{'Elixir.MyApp.Worker',init,1}"

    assert h.run("stack MyApp.Worker").json["stack"][0].startswith("gen_server:loop/")

    assert ex.eval("GenServer.call(MyApp.Worker, :bump)") == "1"
    state = h.run("state MyApp.Worker")
    assert state.json["name"] == "MyApp.Worker"
    assert state.json["state"] == '#{arg => fixture,count => 1,note => <<"elixir state">>}'
    assert state.text.startswith(f"state of {pid} (MyApp.Worker):")


def test_unknown_elixir_names(ex: ElixirNode, h: Harness) -> None:
    with pytest.raises(CommandError, match=r"no such process: MyApp\.Nope on "):
        h.run("state MyApp.Nope")
    probe = 'try do :erlang.binary_to_existing_atom("Elixir.MyApp.Nope") rescue _ -> :none end'
    assert ex.eval(probe) == ":none", "the lookup must not create the atom"
