"""Completion candidates come from the registry, filtered by what the user may run (pure unit tests)."""

from __future__ import annotations

from commands import REGISTRY
from commands.spec import Command, Flag, Param
from gateway.shell_completion import candidates

NODES = ["app@host1", "app@host2", "db@host3"]


def everything(name: str) -> bool:
    return True


def complete(text: str, may_run=everything, registry=REGISTRY) -> list[str]:  # type: ignore[no-untyped-def]
    return candidates(text, registry, may_run, NODES)[1]


async def _noop(ctx, inv):  # type: ignore[no-untyped-def]
    return None


PROC_COUNT = Command(
    name="proc_count",
    summary="",
    shows="",
    when="",
    cost="",
    run=_noop,
    render=lambda r, i: "",
    params=(
        Param("ATTR", "choice", "attribute", choices=("memory", "reductions", "message_queue_len")),
        Param("N", "int", "how many", required=False),
    ),
    flags=(Flag("sort", "choice", "order", choices=("asc", "desc")),),
    fanout=True,
)


def test_command_names() -> None:
    assert complete("") == sorted(REGISTRY)
    assert complete("w") == ["whoami"]
    assert complete("  he") == ["help"]
    assert complete("nothing") == []


def test_only_what_the_user_may_run() -> None:
    assert complete("", may_run=lambda n: n in ("help", "exit")) == ["exit", "help"]
    assert complete("info --", may_run=lambda n: n != "info") == []


def test_arguments_from_the_spec() -> None:
    registry = {**REGISTRY, "proc_count": PROC_COUNT}
    assert complete("proc_count ", registry=registry) == ["memory", "message_queue_len", "reductions"]
    assert complete("proc_count me", registry=registry) == ["memory", "message_queue_len"]
    assert complete("proc_count memory ", registry=registry) == []  # N: no fixed choices
    assert complete("proc_count --sort ", registry=registry) == ["asc", "desc"]
    assert complete("proc_count --sort asc m", registry=registry) == ["memory", "message_queue_len"]
    assert complete("proc_count --", registry=registry) == ["--json", "--node", "--nodes", "--sort"]
    assert complete("proc_count --json --", registry=registry) == ["--node", "--nodes", "--sort"]


def test_node_names_and_command_names_as_values() -> None:
    assert complete("use ") == NODES
    assert complete("use app") == ["app@host1", "app@host2"]
    assert complete("info --node d") == ["db@host3"]
    assert complete("info --node=") == []  # the value is inline; nothing to offer for the flag itself
    assert complete("help wh") == ["whoami"]
    assert complete("help w", may_run=lambda n: n != "whoami") == []
    assert complete("whoami ") == []  # no arguments


def test_the_word_being_completed_is_returned() -> None:
    assert candidates("use app@h", REGISTRY, everything, NODES) == ("app@h", ["app@host1", "app@host2"])
    assert candidates("use ", REGISTRY, everything, NODES)[0] == ""
