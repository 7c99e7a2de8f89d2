"""What users are told: ``policy`` (and ``whoami``'s permissions), ``help`` listing only what they may run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from commands import REGISTRY
from commands import policy as policy_command
from commands.context import Context, Identity, NodeStatus
from commands.errors import CommandError
from commands.grammar import parse_line
from gateway.config import SafetyConfig, load_config
from policies import Policy, UserPolicy
from tests.support.policy_commands import role_file, spec_registry, write_policy_config

REG = spec_registry()


class Session:
    """The session view commands need (``policy`` and ``help`` read none of it)."""

    current_node = None

    def select_node(self, name: str) -> None:
        raise AssertionError("not used")

    def allowed_nodes(self) -> Sequence[str]:
        return []

    async def node_status(self, names: Sequence[str]) -> list[NodeStatus]:
        return []

    def request_exit(self) -> None:
        raise AssertionError("not used")


def run(up: UserPolicy, line: str) -> tuple[Any, str]:
    inv = parse_line(line, up.registry)
    assert inv is not None
    decision = up.check(inv, None)
    ctx = Context(Identity(up.user, tuple(r.name for r in up.roles), "SHA256:x"), up.registry, Session(), up,
                  SafetyConfig())  # fmt: skip
    result = asyncio.run(inv.command.run(ctx, decision.invocation))
    return result, inv.command.render(result, decision.invocation)


@pytest.fixture
def bob(tmp_path: Path) -> UserPolicy:
    roles = "\n".join(role_file(n) for n in ("contractor", "operator"))
    path = write_policy_config(tmp_path, {"bob": ["contractor"], "op": ["operator"]}, roles)
    return Policy(load_config(path), REG).for_user("bob")


def test_policy_prints_effective_permissions_with_caps(bob: UserPolicy) -> None:
    result, text = run(bob, "policy")
    json.dumps(result)  # --json prints it as one document
    lines = text.splitlines()
    assert lines[0] == "user: bob (roles: contractor)"
    assert lines[1] == "nodes: app@h1, app@h2"
    assert lines[2] == "commands you may run:"
    by_name = {line.split()[0]: line for line in lines[3:] if line.startswith("  ")}
    assert list(by_name)[:12] == [
        "help", "whoami", "policy", "nodes", "use", "info", "proc_count", "proc_window", "bin_leak", "alloc",
        "trace", "exit",
    ]  # fmt: skip
    assert by_name["proc_count"].split(None, 1)[1] == (
        "on app@h1, app@h2; N <= 20; ATTR only memory, reductions, message_queue_len; "
        "--nodes fan-out not allowed; (roles: contractor)"
    )
    assert "N <= 10" in by_name["bin_leak"] and "confirmation: when expensive" in by_name["bin_leak"]
    assert by_name["trace"].split(None, 1)[1] == (
        "on app@h1, app@h2; at most 50 messages, 10/s, 60 s (default 50, 10/s, 60 s); "
        "modules Elixir.MyApp.*, my_app_*; --return not allowed; all processes not allowed (give --pid); "
        "(roles: contractor)"
    )
    assert "not allowed: scheduler_usage, ports, inet_count, inet_window, ets, stack, state, messages, apps, kill" in (
        text
    )
    assert "denied process keys (info PROC KEY...): dictionary, messages" in text
    assert "protected processes (state, messages, kill refuse them): auth, net_kernel" in text


def test_policy_command_is_registered_local_and_in_every_example_role() -> None:
    assert REGISTRY["policy"] is policy_command.COMMAND
    assert not policy_command.COMMAND.remote
    for name in ("contractor", "readonly"):
        assert '"policy"' in role_file(name)


def test_help_lists_only_what_the_user_may_run(bob: UserPolicy) -> None:
    result, text = run(bob, "help")
    assert [c["name"] for c in result["commands"]] == [n for n in REG if bob.may_run(n)]
    assert "kill" not in text and "state" not in text
    inv = parse_line("help kill", REG)
    assert inv is not None
    with pytest.raises(CommandError, match="or you may not run it"):
        run(bob, "help kill")
    _, proc_count = run(bob, "help proc_count")
    assert proc_count.startswith("usage: proc_count ATTR [N]")
