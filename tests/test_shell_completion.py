"""Completion candidates come from the registry, filtered by the policy's answers (pure unit tests)."""

from __future__ import annotations

from commands import REGISTRY
from commands.spec import Command, Flag, Param
from gateway.shell_completion import candidates

NODES = ["app@host1", "app@host2", "db@host3"]


class Answers:
    """The three questions completion asks the policy engine, answered from fixed data."""

    def __init__(self, runs=lambda n: True, nodes=NODES, allow=None):  # type: ignore[no-untyped-def]
        self.runs, self.nodes, self.allow = runs, nodes, allow or {}
        self.asked_nodes_for: list[str | None] = []

    def may_run(self, command: str) -> bool:
        return bool(self.runs(command))

    def usable_nodes(self, command: str | None = None) -> list[str]:
        self.asked_nodes_for.append(command)
        return list(self.nodes)

    def allowed_values(self, command: str, key: str) -> tuple[str, ...] | None:
        return self.allow.get((command, key))


def complete(text: str, policy: Answers | None = None, registry=REGISTRY) -> list[str]:  # type: ignore[no-untyped-def]
    return candidates(text, registry, policy or Answers())[1]


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
    assert complete("", Answers(runs=lambda n: n in ("help", "exit"))) == ["exit", "help"]
    assert complete("info --", Answers(runs=lambda n: n != "info")) == []


def test_arguments_from_the_spec() -> None:
    registry = {**REGISTRY, "proc_count": PROC_COUNT}
    assert complete("proc_count ", registry=registry) == ["memory", "message_queue_len", "reductions"]
    assert complete("proc_count me", registry=registry) == ["memory", "message_queue_len"]
    assert complete("proc_count memory ", registry=registry) == []  # N: no fixed choices
    assert complete("proc_count --sort ", registry=registry) == ["asc", "desc"]
    assert complete("proc_count --sort asc m", registry=registry) == ["memory", "message_queue_len"]
    assert complete("proc_count --", registry=registry) == ["--json", "--node", "--nodes", "--sort"]
    assert complete("proc_count --json --", registry=registry) == ["--node", "--nodes", "--sort"]
    narrowed = Answers(allow={("proc_count", "attr"): ("memory", "reductions")})
    assert complete("proc_count ", narrowed, registry=registry) == ["memory", "reductions"]  # the role's allow_attr


def test_node_names_and_command_names_as_values() -> None:
    policy = Answers()
    assert complete("use ", policy) == NODES
    assert complete("use app", policy) == ["app@host1", "app@host2"]
    assert complete("info --node d", policy) == ["db@host3"]
    assert policy.asked_nodes_for == [None, None, "info"]  # --node: the nodes this command may run on
    assert complete("info --node=") == []  # the value is inline; nothing to offer for the flag itself
    assert complete("help wh") == ["whoami"]
    assert complete("help w", Answers(runs=lambda n: n != "whoami")) == []
    assert complete("whoami ") == []  # no arguments


def test_the_word_being_completed_is_returned() -> None:
    assert candidates("use app@h", REGISTRY, Answers()) == ("app@h", ["app@host1", "app@host2"])
    assert candidates("use ", REGISTRY, Answers())[0] == ""
