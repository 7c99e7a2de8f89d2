"""The policy engine, one constraint at a time, on parsed command lines.

Each test writes a small config (TOML, as an operator would), loads it with
the real loader, and checks lines parsed by the real grammar against the
SPEC-shaped command declarations in ``tests/support/policy_commands.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.grammar import UsageError, parse_line
from commands.spec import Param
from gateway.config import load_config
from policies import Decision, Denied, Policy, UserPolicy, limits
from tests.support.policy_commands import cmd, spec_registry, write_policy_config

REG = spec_registry()


def user(tmp_path: Path, roles: str, *names: str, registry: dict | None = None, **kwargs: object) -> UserPolicy:
    """User ``u`` with roles ``names`` from ``roles`` (TOML)."""
    path = write_policy_config(tmp_path, {"u": list(names)}, roles, **kwargs)  # type: ignore[arg-type]
    return Policy(load_config(path), registry or REG).for_user("u")


def ok(up: UserPolicy, line: str, node: str | None = "app@h1") -> Decision:
    inv = parse_line(line, up.registry)
    assert inv is not None
    return up.check(inv, node)


def no(up: UserPolicy, line: str, node: str | None = "app@h1") -> Denied:
    inv = parse_line(line, up.registry)
    assert inv is not None
    with pytest.raises(Denied) as err:
        up.check(inv, node)
    return err.value


# -- commands ------------------------------------------------------------------------


def test_grant_by_name_and_glob(tmp_path: Path) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["info", "proc_*"]\nnodes = ["*"]', "r")
    assert ok(up, "info").rule == "roles.r.commands"
    assert ok(up, "proc_window memory").nodes == ("app@h1",)
    err = no(up, "ets")
    assert err.rule == "roles.r.commands"
    assert str(err) == "no role of u grants ets (roles.r.commands)"
    assert up.may_run("proc_count") and not up.may_run("ets")


def test_user_without_roles_and_unknown_user(tmp_path: Path) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["*"]\nnodes = ["*"]')
    err = no(up, "help")
    assert err.rule == "users.roles" and "u has no roles" in str(err)
    stranger = Policy(load_config(tmp_path / "beamgate.toml"), REG).for_user("mallory")
    assert not any(stranger.may_run(name) for name in REG)


def test_privileged_never_through_globs(tmp_path: Path) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["*", "k*", "?ill", "[k]ill"]\nnodes = ["*"]', "r")
    err = no(up, "kill <0.1.0>")
    assert "kill is privileged: a role must name it exactly, a glob never grants it" in str(err)
    assert not up.may_run("kill")
    assert up.may_run("state")


def test_privileged_by_exact_name_is_always_confirmed(tmp_path: Path) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["kill"]\nnodes = ["app@*"]\nexpensive = "allow"', "r")
    decision = ok(up, "kill <0.42.0>")
    assert decision.confirm is not None
    assert decision.confirm.answer == "<0.42.0>"
    assert "kill <0.42.0> on app@h1 changes the node" in decision.confirm.prompt
    assert "Ends the process" in decision.confirm.prompt  # the command's cost, stated
    assert decision.confirm.rule == "built-in: privileged commands are always confirmed"
    assert ok(up, "kill MyApp.Worker").confirm.answer == "MyApp.Worker"  # type: ignore[union-attr]


def test_a_privileged_command_that_confirms_itself_is_not_asked_twice(tmp_path: Path) -> None:
    """The real kill resolves the pid and has it typed back: the policy adds no second prompt."""
    from commands import REGISTRY

    assert REGISTRY["kill"].privileged and REGISTRY["kill"].confirms
    up = user(tmp_path, '[roles.r]\ncommands = ["kill"]\nnodes = ["app@*"]', "r", registry=REGISTRY)
    assert ok(up, "kill <0.42.0>").confirm is None


def test_deny_wins_over_exact_grant_and_privileged(tmp_path: Path) -> None:
    roles = '[roles.r]\ncommands = ["*", "kill"]\nnodes = ["*"]\ndeny = ["k*", "state"]'
    up = user(tmp_path, roles, "r")
    err = no(up, "kill <0.1.0>")
    assert err.rule == 'roles.r.deny ("k*")'
    assert str(err) == 'kill is denied to u by roles.r.deny ("k*")'
    assert no(up, "state <0.1.0>").rule == 'roles.r.deny ("state")'


def test_unregistered_command_object_is_denied(tmp_path: Path) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["*"]\nnodes = ["*"]', "r")
    impostor = cmd("info")  # same name, not the registered object
    inv = parse_line("info", {"info": impostor})
    assert inv is not None
    with pytest.raises(Denied, match="not a registered command"):
        up.check(inv, "app@h1")


# -- nodes and clusters --------------------------------------------------------------


def test_node_globs(tmp_path: Path) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["info"]\nnodes = ["app@*"]', "r")
    assert ok(up, "info", "app@h2").nodes == ("app@h2",)
    err = no(up, "info", "db@h1")
    assert err.rule == "roles.r.nodes"
    assert "may not run info on db@h1" in str(err)
    assert "not configured" in str(no(up, "info", "app@ghost"))  # same answer: no enumeration of nodes
    assert up.usable_nodes() == ["app@h1", "app@h2"]


def test_local_commands_need_no_node(tmp_path: Path) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["help", "whoami"]', "r")
    assert ok(up, "help", None).nodes == ()
    assert ok(up, "whoami", "db@h1").nodes == ()


def test_remote_command_without_resolved_node_is_a_programming_error(tmp_path: Path) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["info"]\nnodes = ["*"]', "r")
    with pytest.raises(ValueError, match="resolve its node"):
        ok(up, "info", None)


def test_clusters_restrict_nodes(tmp_path: Path) -> None:
    extra = '[clusters.staging]\ncookie_file = "prod.cookie"\nnodes = ["app@s1"]\n'
    up = user(tmp_path, '[roles.r]\ncommands = ["info"]\nnodes = ["app@*"]\nclusters = ["staging"]', "r", extra=extra)
    assert ok(up, "info", "app@s1").nodes == ("app@s1",)
    assert no(up, "info", "app@h1").rule == "roles.r.nodes"


def test_use_node_argument(tmp_path: Path) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["use", "info"]\nnodes = ["app@*"]', "r")
    ok(up, "use app@h2")
    err = no(up, "use db@h1")
    assert "db@h1 is not a node u may use" in str(err)


def test_fanout_is_narrowed_to_granted_nodes(tmp_path: Path) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["info"]\nnodes = ["app@*"]', "r")
    assert ok(up, "info --nodes '*'", None).nodes == ("app@h1", "app@h2")
    assert no(up, "info --nodes 'db@*'", None).rule == "roles.r.nodes"
    with pytest.raises(UsageError, match="matches no configured node"):
        ok(up, "info --nodes 'zz@*'", None)


def test_fanout_switches(tmp_path: Path) -> None:
    roles = """
[roles.r]
commands = ["info", "apps"]
nodes = ["*"]
fanout = false
[roles.r.args.apps]
fanout = true
"""
    up = user(tmp_path, roles, "r")
    err = no(up, "info --nodes '*'", None)
    assert err.rule == "roles.r.fanout = false"
    assert ok(up, "apps --nodes '*'", None).nodes == ("app@h1", "app@h2", "db@h1")
    assert ok(up, "info --node db@h1", "db@h1").nodes == ("db@h1",)


# -- allowed values ------------------------------------------------------------------


def test_allowed_attributes(tmp_path: Path) -> None:
    roles = '[roles.r]\ncommands = ["proc_count", "alloc"]\nnodes = ["*"]\n'
    roles += '[roles.r.args.proc_count]\nallow_attr = ["memory", "reductions"]\n'
    roles += '[roles.r.args.alloc]\nallow_mode = ["max"]\n'
    up = user(tmp_path, roles, "r")
    ok(up, "proc_count reductions")
    err = no(up, "proc_count binary_memory")
    assert err.rule == "roles.r.args.proc_count.allow_attr"
    assert "ATTR binary_memory is not allowed; you may use memory, reductions" in str(err)
    ok(up, "alloc memory max")
    # The parser fills MODE's declared default (current): the filled value is checked too.
    assert no(up, "alloc memory").rule == "roles.r.args.alloc.allow_mode"
    assert up.allowed_values("proc_count", "attr") == ("memory", "reductions")
    assert up.allowed_values("alloc", "what") is None


def test_restricted_value_with_no_default_must_be_given(tmp_path: Path) -> None:
    registry = {**REG, "sample": cmd("sample", Param("MODE", "word", "mode", required=False))}
    roles = '[roles.r]\ncommands = ["sample"]\nnodes = ["*"]\n[roles.r.args.sample]\nallow_mode = ["fast"]\n'
    up = user(tmp_path, roles, "r", registry=registry)
    ok(up, "sample fast")
    assert "give MODE explicitly" in str(no(up, "sample"))


# -- integer caps --------------------------------------------------------------------


def test_int_caps_lower_values_and_record_them(tmp_path: Path) -> None:
    roles = (
        '[roles.r]\ncommands = ["proc_window"]\nnodes = ["*"]\n[roles.r.args.proc_window]\nmax_n = 20\nmax_ms = 5000\n'
    )
    up = user(tmp_path, roles, "r")
    inv = parse_line("proc_window memory 500 9000", REG)
    assert inv is not None
    decision = up.check(inv, "app@h1")
    assert decision.invocation.args == {"attr": "memory", "n": 20, "ms": 5000}
    assert decision.invocation.clamped == {"n": (500, 20), "ms": (9000, 5000)}
    assert inv.args["n"] == 500 and inv.clamped == {}  # the parsed invocation is untouched
    assert decision.notices == (
        "proc_window: N lowered from 500 to 20 (roles.r.args.proc_window.max_n)",
        "proc_window: MS lowered from 9000 to 5000 (roles.r.args.proc_window.max_ms)",
    )
    assert decision.audit == "allowed by roles.r.commands; n 500->20; ms 9000->5000"
    within = ok(up, "proc_window memory 5 100")
    assert within.invocation.args == {"attr": "memory", "n": 5, "ms": 100} and within.notices == ()
    # Omitted values get the declared default (10 rows, 1000 ms), within the caps.
    assert ok(up, "proc_window memory").invocation.args == {"attr": "memory", "n": 10, "ms": 1000}


def test_int_cap_fills_a_value_without_default(tmp_path: Path) -> None:
    registry = {**REG, "top": cmd("top", Param("N", "int", "rows", required=False))}
    roles = '[roles.r]\ncommands = ["top"]\nnodes = ["*"]\n[roles.r.args.top]\nmax_n = 7\n'
    decision = ok(user(tmp_path, roles, "r", registry=registry), "top")
    assert decision.invocation.args == {"n": 7}
    assert decision.notices == ("top: N set to 7, your cap (roles.r.args.top.max_n)",)


def test_option_caps(tmp_path: Path) -> None:
    roles = '[roles.r]\ncommands = ["state"]\nnodes = ["*"]\n[roles.r.args.state]\nmax_timeout = 2000\n'
    decision = ok(user(tmp_path, roles, "r"), "state my_server --timeout 9000")
    assert decision.invocation.flags == {"timeout": 2000}
    assert decision.notices == ("state: --timeout lowered from 9000 to 2000 (roles.r.args.state.max_timeout)",)


def test_mailbox_cap_is_a_hard_maximum(tmp_path: Path) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["messages"]\nnodes = ["*"]', "r", extra="[safety]\nmessages_cap = 50\n")
    decision = ok(up, "messages my_server 5000")
    assert decision.invocation.args["n"] == 50
    assert decision.notices == ("messages: N lowered from 5000 to 50 (the hard maximum for messages n)",)


def test_hard_maximum_applies_even_when_a_cap_is_higher(tmp_path: Path) -> None:
    roles = '[roles.r]\ncommands = ["proc_count"]\nnodes = ["*"]\n[roles.r.args.proc_count]\nmax_n = 100000\n'
    decision = ok(user(tmp_path, roles, "r"), "proc_count memory 1000")
    assert decision.invocation.args["n"] == 1000 == limits.HARD_MAX_BY_KEY["n"]


# -- trace ---------------------------------------------------------------------------

CONTRACTOR_TRACE = """
[roles.c]
commands = ["trace"]
nodes = ["*"]
[roles.c.trace]
max_messages = 50
max_rate = 10
max_seconds = 60
modules = ["Elixir.MyApp.*", "my_app_*"]
allow_return = false
allow_pid_all = false
"""


def test_trace_limits_always_apply(tmp_path: Path) -> None:
    up = user(tmp_path, CONTRACTOR_TRACE, "c", extra="[safety.trace_defaults]\nmax_messages = 20\nmax_rate = 50\n")
    decision = ok(up, "trace MyApp.Worker.handle_call/3 --pid my_server")
    # Not given: the safer of safety.trace_defaults and the role's cap.
    assert decision.invocation.flags["limit"] == 20
    assert decision.invocation.flags["rate"] == (10, 1)
    assert decision.invocation.flags["for"] == 60
    assert decision.notices == ()


def test_trace_caps_clamp(tmp_path: Path) -> None:
    up = user(tmp_path, CONTRACTOR_TRACE, "c")
    decision = ok(up, "trace my_app_db:query --pid new --limit 500 --rate 500/10 --for 3600")
    flags = decision.invocation.flags
    assert flags["limit"] == 50 and flags["for"] == 60
    assert flags["rate"] == (100, 10)  # 10 per second, over the user's own period
    assert decision.invocation.clamped == {"limit": (500, 50), "rate": ((500, 10), (100, 10)), "for": (3600, 60)}
    assert "trace: --rate lowered from 500/10 to 100/10 (roles.c.trace.max_rate)" in decision.notices
    small = ok(up, "trace my_app_db:query --pid new --limit 5 --rate 1/1 --for 2")
    assert small.invocation.clamped == {}


def test_trace_refusals(tmp_path: Path) -> None:
    up = user(tmp_path, CONTRACTOR_TRACE, "c")
    err = no(up, "trace lists:seq/2 --pid new")
    assert err.rule == "roles.c.trace.modules"
    assert "module lists is outside your modules Elixir.MyApp.*, my_app_*" in str(err)
    assert no(up, "trace MyApp.Worker my_app_x lists --pid new").rule == "roles.c.trace.modules"
    assert no(up, "trace MyApp.Worker --pid new --return").rule == "roles.c.trace.allow_return = false"
    assert no(up, "trace MyApp.Worker --pid all").rule == "roles.c.trace.allow_pid_all = false"
    assert "give --pid" in str(no(up, "trace MyApp.Worker"))  # no --pid means all processes


def test_trace_without_role_caps_uses_safety_defaults(tmp_path: Path) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["trace"]\nnodes = ["*"]', "r")
    flags = ok(up, "trace lists:seq/2 --limit 100000 --return --pid all").invocation.flags
    assert flags["limit"] == 100 and flags["rate"] == (20, 1) and flags["for"] == 60  # SafetyConfig defaults
    assert flags["return"] is True


def test_trace_caps_above_hard_maximum_are_clamped(tmp_path: Path) -> None:
    roles = '[roles.r]\ncommands = ["trace"]\nnodes = ["*"]\ntrace = { max_messages = 999999, max_seconds = "2d" }'
    decision = ok(user(tmp_path, roles, "r"), "trace lists --limit 999999 --for 86400")
    assert decision.invocation.flags["limit"] == limits.TRACE_MAX_MESSAGES
    assert decision.invocation.flags["for"] == limits.TRACE_MAX_SECONDS
    assert "the hard maximum trace.max_messages" in decision.notices[0]


def test_trace_caps_published_for_the_trace_command(tmp_path: Path) -> None:
    """The trace command reads the same merged caps the engine clamps to (no second, lower cap)."""
    from commands.trace import role_caps
    from gateway.config import SafetyConfig, TraceLimits

    roles = '[roles.r]\ncommands = ["trace"]\nnodes = ["*"]\ntrace = { max_messages = 1000, max_rate = 100 }'
    up = user(tmp_path, roles, "r")
    caps = up.trace_caps()
    assert caps == TraceLimits(1000, 100, 60)
    decision = ok(up, "trace lists:seq/2 --pid new --limit 800")
    assert decision.invocation.flags["limit"] == 800

    class Ctx:
        policy = up

    assert role_caps(Ctx(), SafetyConfig().trace_defaults).max_messages == 1000  # type: ignore[arg-type]
    other = tmp_path / "other"
    other.mkdir()
    assert user(other, '[roles.n]\ncommands = ["info"]\nnodes = ["*"]', "n").trace_caps() is None


# -- process keys and protected processes --------------------------------------------

KEYS = '[roles.r]\ncommands = ["info", "messages"]\nnodes = ["*"]\ndeny_process_keys = ["messages", "dictionary"]'


def test_denied_process_key(tmp_path: Path) -> None:
    up = user(tmp_path, KEYS, "r")
    err = no(up, "info <0.1.0> messages")
    assert err.rule == "roles.r.deny_process_keys"
    assert str(err) == "info: process key messages is denied by roles.r.deny_process_keys"
    assert no(up, "info <0.1.0> reductions dictionary").rule == "roles.r.deny_process_keys"
    assert "meta shows dictionary" in str(no(up, "info <0.1.0> meta"))
    assert ok(up, "info <0.1.0> registered_name status").invocation.args["key"] == ["registered_name", "status"]


def test_messages_key_denies_the_messages_command(tmp_path: Path) -> None:
    err = no(user(tmp_path, KEYS, "r"), "messages my_server")
    assert str(err) == "messages shows process key messages, which roles.r.deny_process_keys denies"


def test_default_keys_are_narrowed(tmp_path: Path) -> None:
    decision = ok(user(tmp_path, KEYS, "r"), "info <0.1.0>")
    keys = decision.invocation.args["key"]
    assert "dictionary" not in keys and "meta" not in keys
    assert keys[:3] == ["registered_name", "group_leader", "status"]
    assert "signals" in keys and "work" in keys
    assert decision.notices[0].endswith("(keys denied by roles.r.deny_process_keys left out)")
    assert ok(user(tmp_path, KEYS, "r"), "info").invocation.args["key"] == []  # node overview: no process


def test_narrowing_refused_when_the_command_cannot_take_single_keys(tmp_path: Path) -> None:
    single = cmd("pinfo", Param("PROC", "proc", "p"), Param("KEY", "word", "k", required=False))
    up = user(tmp_path, KEYS.replace('"info"', '"pinfo"'), "r", registry={**REG, "pinfo": single})
    assert "name the keys you need" in str(no(up, "pinfo <0.1.0>"))
    ok(up, "pinfo <0.1.0> reductions")


@pytest.mark.parametrize("line", ["state auth", "state net_kernel", "messages auth", "kill net_kernel"])
def test_protected_processes_for_every_role(tmp_path: Path, line: str) -> None:
    up = user(tmp_path, '[roles.r]\ncommands = ["*", "kill"]\nnodes = ["*"]\nexpensive = "allow"', "r")
    err = no(up, line)
    assert err.rule == "safety.protected_processes"
    assert "for every role" in str(err)


def test_configured_protected_processes(tmp_path: Path) -> None:
    extra = '[safety]\nprotected_processes = ["MyApp.Vault", "global:leader", "secrets_srv"]\n'
    up = user(tmp_path, '[roles.r]\ncommands = ["*"]\nnodes = ["*"]', "r", extra=extra)
    for line in ("state MyApp.Vault", "state Elixir.MyApp.Vault", "messages global:leader", "state secrets_srv"):
        assert no(up, line).rule == "safety.protected_processes", line
    ok(up, "state other_srv")
    ok(up, "state <0.77.0>")  # a pid cannot be resolved here: the command checks it on the target
    ok(up, "stack auth")  # only state, messages and kill refuse protected processes


def test_global_protected_processes_match_however_they_are_written(tmp_path: Path) -> None:
    extra = '[safety]\nprotected_processes = ["global:MyApp.Vault", "global:Elixir.MyApp.Keys", "global:vault"]\n'
    up = user(tmp_path, '[roles.r]\ncommands = ["*", "kill"]\nnodes = ["*"]', "r", extra=extra)
    for line in (
        "state global:MyApp.Vault",
        "messages global:Elixir.MyApp.Vault",
        "info global:MyApp.Vault messages",
        "kill global:MyApp.Keys",
        "state global:Elixir.MyApp.Keys",
        "state global:vault",
    ):
        assert no(up, line).rule == "safety.protected_processes", line
    ok(up, "state MyApp.Vault")  # the local name is another process
    assert up.protected_names() == {
        "auth",
        "net_kernel",
        "global:Elixir.MyApp.Vault",
        "global:Elixir.MyApp.Keys",
        "global:vault",
    }


# -- cost: expensive commands and confirmations --------------------------------------


def test_expensive_modes(tmp_path: Path) -> None:
    for mode in ("refuse", "confirm", "allow"):
        up = user(tmp_path, f'[roles.r]\ncommands = ["bin_leak"]\nnodes = ["*"]\nexpensive = "{mode}"', "r")
        if mode == "refuse":
            err = no(up, "bin_leak")
            assert err.rule == 'roles.r.expensive = "refuse"'
            assert "garbage collection of every process" in str(err)
            continue
        decision = ok(up, "bin_leak")
        if mode == "allow":
            assert decision.confirm is None
        else:
            assert decision.confirm is not None and decision.confirm.answer == "yes"
            assert "bin_leak on app@h1 is expensive: it forces a garbage collection" in decision.confirm.prompt
            assert "Cost on the node: Heavy: garbage-collects every process." in decision.confirm.prompt


def test_long_windows_and_wide_fanout_are_expensive(tmp_path: Path) -> None:
    nodes = tuple(f"app@h{i}" for i in range(1, 8))
    up = user(tmp_path, '[roles.r]\ncommands = ["*"]\nnodes = ["*"]', "r", nodes=nodes)
    assert ok(up, f"proc_window memory 10 {limits.EXPENSIVE_WINDOW_MS}").confirm is None
    long = ok(up, f"proc_window memory 10 {limits.EXPENSIVE_WINDOW_MS + 1}").confirm
    assert long is not None and "it samples for 10001 ms" in long.prompt
    assert ok(up, "info --nodes 'app@h[1-5]'", None).confirm is None
    wide = ok(up, "info --nodes '*'", None).confirm
    assert wide is not None and "it runs on 7 nodes at once" in wide.prompt and "7 nodes (app@h1, app@h2" in wide.prompt


def test_confirm_per_command(tmp_path: Path) -> None:
    roles = '[roles.r]\ncommands = ["ets", "apps"]\nnodes = ["*"]\n[roles.r.args.ets]\nconfirm = true\n'
    up = user(tmp_path, roles, "r")
    confirm = ok(up, "ets").confirm
    assert confirm is not None and confirm.rule == "roles.r.args.ets.confirm"
    assert ok(up, "apps").confirm is None


# -- what the user is told -----------------------------------------------------------


def test_describe_matches_enforcement(tmp_path: Path) -> None:
    roles = CONTRACTOR_TRACE.replace('commands = ["trace"]', 'commands = ["trace", "proc_count", "help"]')
    roles += '[roles.c.args.proc_count]\nmax_n = 20\nallow_attr = ["memory"]\n'
    up = user(tmp_path, roles, "c")
    desc = up.describe()
    names = [c["name"] for c in desc["commands"]]
    assert names == [n for n in REG if up.may_run(n)] == ["help", "proc_count", "trace"]
    assert set(desc["not_allowed"]) == set(REG) - set(names)
    proc_count = desc["commands"][1]
    assert proc_count["max"] == {"n": 20}
    assert proc_count["allow"] == {"attr": ["memory"]}
    assert proc_count["fanout"] is True
    assert proc_count["nodes"] == ["app@h1", "app@h2", "db@h1"]
    assert proc_count["granted_by"] == ["c"]
    trace = desc["commands"][2]["trace"]
    assert trace == {
        "max_messages": 50,
        "max_rate": 10,
        "max_seconds": 60,
        "defaults": {"messages": 50, "rate": 10, "seconds": 60},
        "modules": ["Elixir.MyApp.*", "my_app_*"],
        "allow_return": False,
        "allow_pid_all": False,
    }
    assert desc["protected_processes"] == ["auth", "net_kernel"]
