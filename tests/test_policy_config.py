"""Role parsing (gateway/config.py) and policy validation (``beamgate check-config``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from commands import REGISTRY
from commands.spec import Flag, Param
from gateway.config import CommandRules, ConfigError, RoleTrace, load_config
from policies import config_warnings, limits, validate_config
from policies.vocabulary import registry_issues
from tests.support.policy_commands import cmd, role_file, spec_registry, write_policy_config

REG = spec_registry()
ROOT = Path(__file__).resolve().parents[1]


def issues(tmp_path: Path, roles: str, users: dict[str, list[str]] | None = None, **kwargs: object) -> list[str]:
    users = users if users is not None else {"u": ["r"]}
    config = load_config(write_policy_config(tmp_path, users, roles, **kwargs))  # type: ignore[arg-type]
    return [str(i) for i in validate_config(config, REG)]


def load_errors(tmp_path: Path, roles: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(write_policy_config(tmp_path, {"u": ["r"]}, roles))
    return [str(i) for i in err.value.issues]


# -- parsing -------------------------------------------------------------------------


def test_role_is_parsed(tmp_path: Path) -> None:
    roles = """
[roles.r]
commands = ["info", "trace"]
nodes = ["app@*"]
clusters = ["prod"]
deny = ["kill"]
deny_process_keys = ["messages"]
fanout = false
expensive = "refuse"
trace = { max_messages = 50, max_rate = 10, max_seconds = "1m", modules = ["my_*"], allow_return = false }
[roles.r.args.info]
fanout = true
confirm = true
[roles.r.args.proc_count]
max_n = 20
allow_attr = ["memory"]
"""
    role = load_config(write_policy_config(tmp_path, {"u": ["r"]}, roles)).roles["r"]
    assert role.commands == ("info", "trace") and role.nodes == ("app@*",) and role.clusters == ("prod",)
    assert role.deny == ("kill",) and role.deny_process_keys == ("messages",)
    assert role.fanout is False and role.expensive == "refuse"
    assert role.trace == RoleTrace(50, 10, 60.0, ("my_*",), allow_return=False, allow_pid_all=True)
    assert role.args == {
        "info": CommandRules(fanout=True, confirm=True),
        "proc_count": CommandRules(max={"n": 20}, allow={"attr": ("memory",)}),
    }


def test_role_defaults(tmp_path: Path) -> None:
    role = load_config(write_policy_config(tmp_path, {"u": ["r"]}, "[roles.r]\n")).roles["r"]
    assert role.commands == () and role.nodes == () and role.clusters == ("*",)
    assert role.trace is None and role.args == {} and role.fanout is True and role.expensive == "confirm"


def test_role_type_errors_have_key_paths(tmp_path: Path) -> None:
    roles = """
[roles.r]
commands = "info"
expensive = "sometimes"
fanout = "no"
privileged = ["kill"]
trace = { max_messages = 0, max_rate = "fast", max_seconds = "0s", modules = "my_*", limit = 3 }
[roles.r.args.proc_count]
max_n = -1
allow_attr = "memory"
confirm = "yes"
frobnicate = 1
[roles.r.args]
info = 3
"""
    assert sorted(load_errors(tmp_path, roles)) == sorted(
        [
            "roles.r.trace.max_messages: must be a positive integer",
            "roles.r.trace.max_rate: expected an integer, got str",
            "roles.r.trace.max_seconds: must be a positive duration",
            "roles.r.trace.modules: expected a list, got str",
            "roles.r.trace.limit: unknown key",
            "roles.r.args.info: expected a table, got int",
            "roles.r.args.proc_count.allow_attr: expected a list, got str",
            "roles.r.args.proc_count.max_n: must be a positive integer",
            "roles.r.args.proc_count.confirm: expected true or false, got str",
            "roles.r.args.proc_count.frobnicate: unknown key",
            "roles.r.expensive: must be one of 'refuse', 'confirm', 'allow'",
            "roles.r.commands: expected a list, got str",
            "roles.r.fanout: expected true or false, got str",
            "roles.r.privileged: unknown key",
        ]
    )


# -- validation ----------------------------------------------------------------------


def test_example_roles_are_valid(tmp_path: Path) -> None:
    roles = "\n".join(role_file(n) for n in ("sre", "contractor", "readonly", "operator", "no_state"))
    users = {"a": ["sre", "operator"], "b": ["contractor"], "c": ["readonly", "no_state"]}
    assert issues(tmp_path, roles, users) == []


def test_unknown_commands_and_globs(tmp_path: Path) -> None:
    roles = '[roles.r]\ncommands = ["info", "infoo", "zz*", "k*", "in fo", "proc_[count"]\ndeny = ["nope", "x*"]\n'
    assert issues(tmp_path, roles) == [
        "roles.r.commands[1]: unknown command 'infoo'",
        "roles.r.commands[2]: 'zz*' matches no command",
        "roles.r.commands[3]: 'k*' matches only privileged commands (kill); a glob never grants them: "
        "name each one exactly",
        "roles.r.commands[4]: 'in fo' is not a valid pattern (letters, digits and the glob characters * ? [ ] only)",
        "roles.r.commands[5]: 'proc_[count' has an unclosed '['",
        "roles.r.deny[0]: unknown command 'nope'",
        "roles.r.deny[1]: 'x*' matches no command",
    ]


def test_star_is_fine_though_it_skips_privileged_commands(tmp_path: Path) -> None:
    assert issues(tmp_path, '[roles.r]\ncommands = ["*"]\nnodes = ["*"]\n') == []


def test_node_and_cluster_globs(tmp_path: Path) -> None:
    roles = '[roles.r]\ncommands = ["info"]\nnodes = ["app@*", "web@*", "a b"]\nclusters = ["prod", "stag*"]\n'
    assert issues(tmp_path, roles) == [
        "roles.r.nodes[1]: 'web@*' matches no configured node",
        "roles.r.nodes[2]: 'a b' is not a valid pattern (letters, digits and the glob characters * ? [ ] only)",
        "roles.r.clusters[1]: 'stag*' matches no configured cluster",
    ]


def test_unknown_attributes_and_values(tmp_path: Path) -> None:
    roles = """
[roles.r]
commands = ["proc_count", "trace", "apps", "state"]
nodes = ["*"]
[roles.r.args.proc_count]
max_n = 20
max_ms = 100
allow_attr = ["memory", "colour"]
allow_mode = ["x"]
[roles.r.args.trace]
max_limit = 5
[roles.r.args.state]
fanout = false
allow_node = []
[roles.r.args.ets]
max_n = 5
[roles.r.args.frob]
max_n = 5
"""
    assert issues(tmp_path, roles) == [
        "roles.r.args.proc_count.max_ms: unknown attribute: proc_count has no integer argument 'ms' (it has: n)",
        "roles.r.args.proc_count.allow_attr: not among memory, reductions, message_queue_len, total_heap_size, "
        "heap_size, binary_memory: colour",
        "roles.r.args.proc_count.allow_mode: unknown attribute: proc_count has no choice argument 'mode' "
        "(it has: attr)",
        "roles.r.args.trace.max_limit: trace's --limit is capped by the role's trace table "
        "(max_messages, max_rate, max_seconds, ...)",
        "roles.r.args.state.allow_node: unknown attribute: state has no choice argument 'node' (it has: none)",
        "roles.r.args.state.fanout: state does not fan out (it has no --nodes option)",
        "roles.r.args.ets: the role does not grant ets, so these constraints have no effect",
        "roles.r.args.frob: unknown command 'frob'",
    ]


def test_caps_above_hard_maxima(tmp_path: Path) -> None:
    roles = """
[roles.r]
commands = ["proc_window", "messages", "trace"]
nodes = ["*"]
trace = { max_messages = 20000, max_rate = 5000, max_seconds = "2h" }
[roles.r.args.proc_window]
max_n = 1001
max_ms = 120000
[roles.r.args.messages]
max_n = 101
"""
    assert sorted(issues(tmp_path, roles)) == sorted(
        [
            "roles.r.trace.max_messages: 20000 is above the hard maximum 10000",
            "roles.r.trace.max_rate: 5000 is above the hard maximum 1000",
            "roles.r.trace.max_seconds: 7200 is above the hard maximum 3600",
            "roles.r.args.proc_window.max_n: 1001 is above the hard maximum 1000",
            "roles.r.args.proc_window.max_ms: 120000 is above the hard maximum 60000",
            "roles.r.args.messages.max_n: 101 is above the hard maximum 100",  # safety.messages_cap
        ]
    )
    defaults = "[safety.trace_defaults]\nmax_messages = 20000\n"
    assert "safety.trace_defaults.max_messages: 20000 is above the hard maximum 10000" in issues(
        tmp_path, '[roles.r]\ncommands = ["info"]\nnodes = ["*"]\n', extra=defaults
    )


def test_trace_table_checks(tmp_path: Path) -> None:
    roles = '[roles.r]\ncommands = ["info"]\nnodes = ["*"]\ntrace = { modules = ["ok_*", "bad mod"] }\n'
    roles += '[roles.s]\ncommands = ["trace"]\nnodes = ["*"]\ntrace = { modules = [] }\n'
    assert issues(tmp_path, roles, {"u": ["r", "s"]}) == [
        "roles.r.trace: the role does not grant trace, so its trace caps have no effect",
        "roles.r.trace.modules[1]: 'bad mod' is not a valid pattern (letters, digits and the glob characters * ? [ ] "
        "only)",
        "roles.s.trace.modules: an empty list allows no module; deny trace instead",
    ]


def test_process_keys(tmp_path: Path) -> None:
    roles = '[roles.r]\ncommands = ["info"]\nnodes = ["*"]\ndeny_process_keys = ["messages", "dictonary"]\n'
    assert issues(tmp_path, roles) == ["roles.r.deny_process_keys[1]: unknown process key 'dictonary'"]


def test_users_without_roles_and_roles_without_users_are_warnings(tmp_path: Path) -> None:
    """What an offboarding leaves behind is never an error: a reload or start that revokes access goes through."""
    roles = '[roles.r]\ncommands = ["info"]\nnodes = ["*"]\n[roles.spare]\ncommands = ["info"]\nnodes = ["*"]\n'
    config = load_config(write_policy_config(tmp_path, {"u": ["r"], "nobody": []}, roles))
    assert validate_config(config, REG) == []
    assert [str(i) for i in config_warnings(config)] == [
        "users.nobody.roles: no roles: this user can log in but may run nothing",
        "roles.spare: no user has this role",
    ]


def test_protected_process_names(tmp_path: Path) -> None:
    extra = (
        '[safety]\nprotected_processes = ["MyApp.Vault", "global:leader", "<0.1.0>", "global:MyApp.Vault", '
        '"global:<0.1.0>", "global:", "0.1.0"]\n'
    )
    found = issues(tmp_path, '[roles.r]\ncommands = ["info"]\nnodes = ["*"]\n', extra=extra)
    assert [f.split(": ", 1)[0] for f in found] == [f"safety.protected_processes[{i}]" for i in (2, 4, 5, 6)]
    assert "protect a process by its registered name or global:NAME" in found[0]


def test_registry_mismatches_are_reported() -> None:
    assert registry_issues(REG) == []
    assert registry_issues(REGISTRY) == []  # what is registered today (help, info, policy)
    odd = {
        "trace": cmd(
            "trace",
            Param("SPEC", "word", "x"),
            flags=(Flag("count", "int", "x"), Flag("rate", "int", "x"), Flag("for", "int", "x")),
        ),
        "state": cmd("state", Param("NAME", "word", "x")),
    }
    assert registry_issues(odd) == [
        "trace has no --limit option, which the trace caps are applied to",
        "trace --rate is of kind int; the policy engine expects ['rate']",
        "trace has no --pid option, which the trace caps are applied to",
        "trace has no --return option, which the trace caps are applied to",
        "trace has no funspec argument, which the modules cap is applied to",
        "state has no process argument, which protected processes are checked against",
    ]


def test_hard_maxima_live_in_one_place() -> None:
    assert limits.TRACE_MAX_MESSAGES == 10_000 and limits.TRACE_MAX_RATE == 1_000
    assert limits.TRACE_MAX_SECONDS == 3_600 and limits.HARD_MAX_BY_KEY == {"n": 1_000, "ms": 60_000, "timeout": 30_000}


# -- the CLI -------------------------------------------------------------------------


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_check_config_reports_policy_issues(tmp_path: Path) -> None:
    roles = '[roles.r]\ncommands = ["info", "proc_cuont"]\nnodes = ["web@*"]\n[roles.spare]\ncommands = ["help"]\n'
    result = check_config(write_policy_config(tmp_path, {"u": ["r"]}, roles))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "error: roles.r.commands[1]: unknown command 'proc_cuont'",
        "error: roles.r.nodes[0]: 'web@*' matches no configured node",
        "warning: roles.spare: no user has this role",
    ]
    assert result.stderr == f"2 problem(s) in {tmp_path / 'beamgate.toml'}\n"


def test_check_config_passes_with_only_warnings(tmp_path: Path) -> None:
    """Offboarding bob (the only contractor) and emptying carl's roles: exit 0, each warning on its own line."""
    roles = '[roles.r]\ncommands = ["help", "info"]\nnodes = ["*"]\n[roles.contractor]\ncommands = ["help"]\n'
    result = check_config(write_policy_config(tmp_path, {"u": ["r"], "carl": []}, roles))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "warning: users.carl.roles: no roles: this user can log in but may run nothing",
        "warning: roles.contractor: no user has this role",
        "ok: 1 cluster(s), 3 node(s), 2 user(s), 2 role(s); 2 warning(s)",
    ]


def test_check_config_accepts_a_sound_policy(tmp_path: Path) -> None:
    roles = '[roles.r]\ncommands = ["help", "info", "policy"]\nnodes = ["app@*"]\n'
    result = check_config(write_policy_config(tmp_path, {"u": ["r"]}, roles))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: 1 cluster(s), 3 node(s), 1 user(s), 1 role(s)")
