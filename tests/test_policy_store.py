"""Config reload: new policy from the next command, a broken file keeps the old one, SIGHUP wiring."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from commands.grammar import parse_line
from gateway.config import ConfigError
from policies import Denied, PolicyStore, ReloadResult
from tests.support.policy_commands import spec_registry, write_policy_config

REG = spec_registry()
V1 = '[roles.r]\ncommands = ["help", "info"]\nnodes = ["app@*"]\n'
V2 = '[roles.r]\ncommands = ["help", "info", "proc_count"]\nnodes = ["*"]\n'


def allowed(store: PolicyStore, user: str, line: str, node: str = "app@h1") -> bool:
    """One command of a session: the store is asked for the user's policy each time."""
    inv = parse_line(line, REG)
    assert inv is not None
    try:
        store.for_user(user).check(inv, node)
    except Denied:
        return False
    return True


def test_reload_applies_from_the_next_command(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_policy_config(tmp_path, {"bob": ["r"]}, V1)
    store = PolicyStore.load(path, REG)
    assert store.generation == 1
    assert not allowed(store, "bob", "proc_count memory")
    assert not allowed(store, "bob", "info", "db@h1")
    before = store.for_user("bob")  # what a command already running holds

    write_policy_config(tmp_path, {"bob": ["r"]}, V2)
    with caplog.at_level(logging.INFO, logger="beamgate.policy"):
        result = store.reload()
    assert result == ReloadResult(True, 2, f"config reloaded from {path}: generation 2, 1 user(s), 1 role(s)")
    assert caplog.messages == [result.message]
    assert allowed(store, "bob", "proc_count memory")
    assert allowed(store, "bob", "info", "db@h1")
    assert not before.may_run("proc_count")  # a decision already taken is not changed under a running command


def test_broken_config_is_rejected_and_the_old_one_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_policy_config(tmp_path, {"bob": ["r"]}, V1)
    store = PolicyStore.load(path, REG)
    good = path.read_text()
    for broken, first_issue in (
        (good + "\n[roles.r.args.info\n", "is not valid TOML"),  # a TOML syntax error
        (good.replace('roles = ["r"]', 'roles = ["ghost"]'), "users.bob.roles: unknown role 'ghost'"),
        (good.replace('"info"]', '"info", "infoo"]'), "roles.r.commands[2]: unknown command 'infoo'"),
    ):
        path.write_text(broken)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="beamgate.policy"):
            result = store.reload()
        assert not result.ok and result.generation == 1
        assert caplog.records[0].levelno == logging.ERROR
        assert caplog.messages[0].startswith(f"config reload rejected: 1 problem(s) in {path}; ")
        assert caplog.messages[0].endswith("keeping the previous config (generation 1)")
        assert first_issue in caplog.messages[1]
        assert allowed(store, "bob", "info") and not allowed(store, "bob", "proc_count memory")
    path.write_text(good)
    assert store.reload().ok and store.generation == 2


def test_removed_user_and_changed_roles(tmp_path: Path) -> None:
    path = write_policy_config(tmp_path, {"bob": ["r"], "eve": ["r"]}, V1)
    store = PolicyStore.load(path, REG)
    assert allowed(store, "eve", "help")
    write_policy_config(tmp_path, {"bob": ["r"]}, V1)
    assert store.reload().ok
    assert not allowed(store, "eve", "help")  # gone from the config: her session can run nothing more
    assert allowed(store, "bob", "help")


def test_sections_that_need_a_restart_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_policy_config(tmp_path, {"bob": ["r"]}, V1)
    store = PolicyStore.load(path, REG)
    write_policy_config(tmp_path, {"bob": ["r"]}, V1, extra='[audit]\npath = "elsewhere.jsonl"\n')
    with caplog.at_level(logging.INFO, logger="beamgate.policy"):
        result = store.reload()
    assert result.ok and result.restart_needed == ("audit",)
    assert caplog.messages[-1] == "config reload: changes to audit take effect only after a restart"


def test_a_reload_keeps_the_running_clusters(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Cookies and connections are set up at start: the policy's node map stays that of the running clusters."""
    roles = '[roles.r]\ncommands = ["help", "info"]\nnodes = ["*"]\nclusters = ["prod"]\n'
    path = write_policy_config(tmp_path, {"bob": ["r"]}, roles)
    store = PolicyStore.load(path, REG)
    started = {"app@h1": "prod", "app@h2": "prod", "db@h1": "prod"}
    assert store.policy.nodes == started
    # app@h3 added to prod; app@h2 moved to a cluster of its own (another cookie), which r does not grant
    cookie = tmp_path / "prod.cookie"
    staging = f'[clusters.staging]\ncookie_file = "{cookie}"\nnodes = ["app@h2"]\n'
    write_policy_config(tmp_path, {"bob": ["r"]}, roles, nodes=("app@h1", "app@h3", "db@h1"), extra=staging)
    with caplog.at_level(logging.INFO, logger="beamgate.policy"):
        result = store.reload()
    assert result.ok and result.restart_needed == ("clusters",)
    assert store.policy.nodes == started
    assert store.for_user("bob").usable_nodes() == ["app@h1", "app@h2", "db@h1"]
    assert not allowed(store, "bob", "info", "app@h3")  # unknown until a restart: denied like any unconfigured node
    assert allowed(store, "bob", "info", "app@h2")  # still reached through prod's connection and cookie
    assert caplog.messages[-1] == (
        "config reload: changes to clusters are ignored until a restart "
        "(the nodes, their clusters and cookies stay as started: prod: app@h1 app@h2 db@h1)"
    )
    # the role changes of a file that still differs in its clusters do apply
    write_policy_config(
        tmp_path, {"bob": ["r"]}, roles.replace('"info"', '"info", "apps"'), nodes=("app@h1", "app@h3", "db@h1")
    )
    assert store.reload().ok and allowed(store, "bob", "apps")
    assert store.policy.nodes == started


def test_load_refuses_a_file_check_config_would_refuse(tmp_path: Path) -> None:
    path = write_policy_config(tmp_path, {"bob": ["r"]}, V1 + '[roles.spare]\ncommands = ["help"]\nnodes = ["web@*"]\n')
    with pytest.raises(ConfigError, match=r"roles\.spare\.nodes\[0\]: 'web@\*' matches no configured node"):
        PolicyStore.load(path, REG)


def test_revoking_access_is_accepted_with_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Deleting the only contractor, or emptying a user's roles, must go through: old access must not stay."""
    roles = V1 + '[roles.contractor]\ncommands = ["help", "info", "proc_count"]\nnodes = ["app@*"]\n'
    path = write_policy_config(tmp_path, {"alice": ["r"], "bob": ["contractor"], "carl": ["contractor"]}, roles)
    store = PolicyStore.load(path, REG)
    assert allowed(store, "bob", "proc_count memory") and allowed(store, "carl", "proc_count memory")

    write_policy_config(tmp_path, {"alice": ["r"], "carl": []}, roles)  # bob deleted, carl's roles emptied
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="beamgate.policy"):
        result = store.reload()
    assert (result.ok, result.generation) == (True, 2)
    assert [str(w) for w in result.warnings] == [
        "users.carl.roles: no roles: this user can log in but may run nothing",
        "roles.contractor: no user has this role",
    ]
    assert [(r.levelno, r.getMessage()) for r in caplog.records[1:]] == [
        (logging.WARNING, "config warning: users.carl.roles: no roles: this user can log in but may run nothing"),
        (logging.WARNING, "config warning: roles.contractor: no user has this role"),
    ]
    assert "bob" not in store.config.users
    assert not allowed(store, "bob", "help") and not allowed(store, "carl", "help")
    assert allowed(store, "alice", "info")


def test_warnings_are_logged_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_policy_config(tmp_path, {"bob": ["r"], "carl": []}, V1)
    with caplog.at_level(logging.INFO, logger="beamgate.policy"):
        PolicyStore.load(path, REG)
    assert caplog.messages == ["config warning: users.carl.roles: no roles: this user can log in but may run nothing"]


def test_sighup_reloads_while_a_session_keeps_running(tmp_path: Path) -> None:
    path = write_policy_config(tmp_path, {"bob": ["r"]}, V1)
    store = PolicyStore.load(path, REG)
    results: list[ReloadResult] = []

    async def session(outcomes: list[bool], stop: asyncio.Event) -> None:
        while not stop.is_set():
            outcomes.append(allowed(store, "bob", "proc_count memory"))
            await asyncio.sleep(0.01)

    async def wait_for(count: int) -> None:
        for _ in range(500):
            if len(results) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("no reload after SIGHUP")

    async def main() -> list[bool]:
        remove = store.watch_sighup(asyncio.get_running_loop(), results.append)
        outcomes: list[bool] = []
        stop = asyncio.Event()
        task = asyncio.create_task(session(outcomes, stop))
        try:
            await asyncio.sleep(0.05)
            write_policy_config(tmp_path, {"bob": ["r"]}, V2)
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_for(1)
            await asyncio.sleep(0.05)
            path.write_text("this is not toml [")
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_for(2)
            await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task
            remove()
        return outcomes

    outcomes = asyncio.run(main())
    assert [r.ok for r in results] == [True, False]
    assert store.generation == 2
    # The same session saw the old policy, then the new one, and kept it after the broken reload.
    first_allowed = outcomes.index(True)
    assert first_allowed > 0 and not any(outcomes[:first_allowed]) and all(outcomes[first_allowed:])
