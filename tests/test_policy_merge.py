"""Multi-role users: the merge rules of docs/policies.md, case by case.

Each test is one rule or one worked example of the doc ("Merge rules" and
"Worked examples"), using the example role files in ``policies/roles/``
where the doc does, so the doc, the role files and the engine agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.grammar import parse_line
from gateway.config import load_config
from policies import Decision, Denied, Policy, UserPolicy, limits
from tests.support.policy_commands import role_file, spec_registry, write_policy_config

REG = spec_registry()
EXAMPLE_ROLES = "\n".join(role_file(n) for n in ("sre", "contractor", "readonly", "operator", "no_state"))


@pytest.fixture
def example(tmp_path: Path) -> Policy:
    users = {
        "alice": ["sre"],
        "bob": ["contractor"],
        "carol": ["readonly"],
        "dave": ["sre", "operator"],
        "erin": ["sre", "no_state"],
        "frank": ["contractor", "readonly"],
        "gina": ["contractor", "sre"],
    }
    return Policy(load_config(write_policy_config(tmp_path, users, EXAMPLE_ROLES)), REG)


def inline(tmp_path: Path, roles: str, *names: str) -> UserPolicy:
    return Policy(load_config(write_policy_config(tmp_path, {"u": list(names)}, roles)), REG).for_user("u")


def ok(up: UserPolicy, line: str, node: str | None = "app@h1") -> Decision:
    inv = parse_line(line, REG)
    assert inv is not None
    return up.check(inv, node)


def no(up: UserPolicy, line: str, node: str | None = "app@h1") -> Denied:
    inv = parse_line(line, REG)
    assert inv is not None
    with pytest.raises(Denied) as err:
        up.check(inv, node)
    return err.value


# -- rule 1: grants are the union ----------------------------------------------------


def test_grants_are_the_union(tmp_path: Path) -> None:
    roles = '[roles.a]\ncommands = ["info"]\nnodes = ["*"]\n[roles.b]\ncommands = ["apps"]\nnodes = ["*"]\n'
    up = inline(tmp_path, roles, "a", "b")
    ok(up, "info")
    ok(up, "apps")
    assert no(up, "ets").rule == "roles.a.commands, roles.b.commands"


def test_a_command_runs_on_a_node_only_when_one_role_grants_both(example: Policy) -> None:
    """Worked example 1: frank = contractor + readonly."""
    frank = example.for_user("frank")
    ok(frank, "info", "db@h1")  # readonly grants info on every node
    ok(frank, "proc_count memory", "app@h1")  # contractor grants proc_count on app@*
    err = no(frank, "proc_count memory", "db@h1")  # ... and only there: readonly does not grant proc_count
    assert err.rule == "roles.contractor.nodes"
    assert frank.usable_nodes("proc_count") == ["app@h1", "app@h2"]
    assert frank.usable_nodes("info") == ["app@h1", "app@h2", "db@h1"]


# -- rule 2: an explicit deny in any role wins ---------------------------------------


def test_deny_from_a_role_that_grants_nothing_wins(example: Policy) -> None:
    """Worked example 2: erin = sre + no_state."""
    erin = example.for_user("erin")
    assert no(erin, "trace lists:seq/2").rule == 'roles.no_state.deny ("trace")'
    assert no(erin, "state my_server").rule == 'roles.no_state.deny ("state")'
    assert no(erin, "messages my_server").rule == 'roles.no_state.deny ("messages")'
    assert no(erin, "info <0.1.0> binary").rule == "roles.no_state.deny_process_keys"
    assert no(erin, "info <0.1.0> meta").rule == "roles.no_state.deny_process_keys"  # meta shows the dictionary
    ok(erin, "info <0.1.0> registered_name status")
    assert not erin.may_run("trace") and erin.may_run("proc_count")


def test_deny_beats_an_exact_privileged_grant(tmp_path: Path) -> None:
    roles = '[roles.a]\ncommands = ["kill"]\nnodes = ["*"]\n[roles.b]\ndeny = ["kill"]\n'
    assert no(inline(tmp_path, roles, "a", "b"), "kill <0.1.0>").rule == 'roles.b.deny ("kill")'


def test_denied_process_keys_are_the_union(tmp_path: Path) -> None:
    roles = """
[roles.a]
commands = ["info"]
nodes = ["*"]
deny_process_keys = ["binary"]
[roles.b]
commands = ["info"]
nodes = ["*"]
deny_process_keys = ["messages"]
"""
    up = inline(tmp_path, roles, "a", "b")
    assert no(up, "info <0.1.0> binary").rule == "roles.a.deny_process_keys"
    assert no(up, "info <0.1.0> messages").rule == "roles.b.deny_process_keys"


# -- rule 3: everything else is the most permissive among the granting roles ---------


def test_largest_cap_among_granting_roles(tmp_path: Path) -> None:
    roles = """
[roles.a]
commands = ["proc_count"]
nodes = ["*"]
[roles.a.args.proc_count]
max_n = 20
[roles.b]
commands = ["proc_count"]
nodes = ["*"]
[roles.b.args.proc_count]
max_n = 50
[roles.c]
commands = ["apps"]
nodes = ["*"]
[roles.c.args.proc_count]
max_n = 500
"""
    up = inline(tmp_path, roles, "a", "b", "c")
    decision = ok(up, "proc_count memory 400")
    assert decision.invocation.args["n"] == 50  # c's 500 does not count: c does not grant proc_count
    assert decision.notices == ("proc_count: N lowered from 400 to 50 (roles.b.args.proc_count.max_n)",)


def test_a_granting_role_without_a_cap_grants_up_to_the_hard_maximum(example: Policy) -> None:
    """Worked example 3: gina = contractor + sre."""
    gina = example.for_user("gina")
    assert ok(gina, "proc_count memory 1000").invocation.args["n"] == limits.HARD_MAX_BY_KEY["n"]
    assert ok(gina, "proc_window memory 10 20000").invocation.args["ms"] == 20000  # sre's max_ms 30000
    trace = ok(gina, "trace lists:seq/2 --limit 5000 --return").invocation.flags
    assert trace["limit"] == 1000 and trace["return"] is True  # sre's trace caps; sre sets no modules
    ok(gina, "proc_count binary_memory")  # sre sets no allow_attr: any attribute
    assert gina.describe()["deny_process_keys"] == ["dictionary", "messages"]  # contractor's deny still wins
    assert no(gina, "info <0.1.0> messages").rule == "roles.contractor.deny_process_keys"


def test_allowed_values_are_the_union(tmp_path: Path) -> None:
    roles = """
[roles.a]
commands = ["proc_count"]
nodes = ["*"]
[roles.a.args.proc_count]
allow_attr = ["memory"]
[roles.b]
commands = ["proc_count"]
nodes = ["*"]
[roles.b.args.proc_count]
allow_attr = ["reductions"]
"""
    up = inline(tmp_path, roles, "a", "b")
    ok(up, "proc_count memory")
    ok(up, "proc_count reductions")
    assert no(up, "proc_count heap_size").rule == (
        "roles.a.args.proc_count.allow_attr, roles.b.args.proc_count.allow_attr"
    )


def test_fanout_if_any_granting_role_allows_it(example: Policy) -> None:
    """Worked example 4: frank = contractor (fanout = false) + readonly."""
    frank = example.for_user("frank")
    assert ok(frank, "info --nodes '*'", None).nodes == ("app@h1", "app@h2", "db@h1")
    err = no(frank, "proc_count memory --nodes 'app@*'", None)  # only contractor grants proc_count
    assert err.rule == "roles.contractor.fanout = false"


def test_confirmation_only_if_every_granting_role_asks(tmp_path: Path) -> None:
    roles = """
[roles.a]
commands = ["ets"]
nodes = ["*"]
[roles.a.args.ets]
confirm = true
[roles.b]
commands = ["ets"]
nodes = ["*"]
[roles.b.args.ets]
confirm = true
[roles.c]
commands = ["ets"]
nodes = ["*"]
"""
    assert ok(inline(tmp_path, roles, "a", "b"), "ets").confirm is not None
    assert ok(inline(tmp_path, roles, "a", "c"), "ets").confirm is None


def test_expensive_is_the_most_permissive_granting_role(tmp_path: Path) -> None:
    roles = """
[roles.strict]
commands = ["bin_leak"]
nodes = ["*"]
expensive = "refuse"
[roles.asks]
commands = ["bin_leak"]
nodes = ["*"]
expensive = "confirm"
[roles.loose]
commands = ["apps"]
nodes = ["*"]
expensive = "allow"
"""
    assert no(inline(tmp_path, roles, "strict"), "bin_leak").rule == 'roles.strict.expensive = "refuse"'
    confirm = ok(inline(tmp_path, roles, "strict", "asks"), "bin_leak").confirm
    assert confirm is not None and confirm.rule == 'roles.asks.expensive = "confirm"'
    # loose does not grant bin_leak, so its "allow" does not count.
    assert no(inline(tmp_path, roles, "strict", "loose"), "bin_leak").rule == 'roles.strict.expensive = "refuse"'


def test_expensive_example_roles(tmp_path: Path) -> None:
    """Worked example 5: readonly refuses expensive runs; with contractor, bin_leak is confirmed."""
    nodes = ("app@h1", "app@h2", "app@h3", "app@h4", "app@h5", "app@h6", "db@h1")
    users = {"carol": ["readonly"], "frank": ["contractor", "readonly"]}
    policy = Policy(load_config(write_policy_config(tmp_path, users, EXAMPLE_ROLES, nodes=nodes)), REG)
    carol, frank = policy.for_user("carol"), policy.for_user("frank")
    assert ok(carol, "info --nodes 'app@h[1-5]'", None).confirm is None
    err = no(carol, "info --nodes '*'", None)
    assert err.rule == 'roles.readonly.expensive = "refuse"'
    assert "it runs on 7 nodes at once" in str(err)
    assert not carol.may_run("bin_leak")
    confirm = ok(frank, "bin_leak").confirm
    assert confirm is not None and confirm.rule == 'roles.contractor.expensive = "confirm"'


def test_trace_caps_merge(tmp_path: Path) -> None:
    roles = """
[roles.a]
commands = ["trace"]
nodes = ["*"]
trace = { max_messages = 50, max_rate = 200, max_seconds = 30, modules = ["my_app_*"], allow_return = false }
[roles.b]
commands = ["trace"]
nodes = ["*"]
trace = { max_messages = 500, modules = ["Elixir.MyApp.*"], allow_pid_all = false }
"""
    up = inline(tmp_path, roles, "a", "b")
    flags = ok(up, "trace my_app_x MyApp.Worker --limit 9999 --rate 9999/1 --for 9999 --return").invocation.flags
    # messages: b's 500; rate: a's 200 (b sets none: safety.trace_defaults' 20); seconds: b's default 60 > a's 30
    assert flags["limit"] == 500 and flags["rate"] == (200, 1) and flags["for"] == 60
    assert no(up, "trace lists --pid new").rule == "roles.a.trace.modules, roles.b.trace.modules"
    desc = next(c for c in up.describe()["commands"] if c["name"] == "trace")["trace"]
    assert desc["modules"] == ["my_app_*", "Elixir.MyApp.*"]
    assert desc["allow_return"] is True and desc["allow_pid_all"] is True


# -- privileged commands -------------------------------------------------------------


def test_kill_needs_the_operator_role_and_its_nodes(example: Policy) -> None:
    """Worked example 6: dave = sre + operator; alice = sre alone."""
    alice, dave = example.for_user("alice"), example.for_user("dave")
    assert "privileged" in str(no(alice, "kill <0.1.0>"))
    decision = ok(dave, "kill <0.1.0>")
    assert decision.confirm is not None and decision.confirm.answer == "<0.1.0>"
    assert no(dave, "kill <0.1.0>", "db@h1").rule == "roles.operator.nodes"  # operator: app@* only
    assert no(dave, "kill auth").rule == "safety.protected_processes"


def test_state_auth_is_refused_for_every_example_user(example: Policy) -> None:
    for user in ("alice", "bob", "carol", "dave", "erin", "frank", "gina"):
        with pytest.raises(Denied):
            ok(example.for_user(user), "state auth")


# -- rights are merged per node: a role's limits never reach another role's nodes -----


def test_a_role_granting_trace_elsewhere_does_not_loosen_the_contractors_trace(tmp_path: Path) -> None:
    """A staging role granting trace on staging@* leaves the contractor's limits on app@* as they are."""
    roles = role_file("contractor") + '\n[roles.staging]\ncommands = ["trace"]\nnodes = ["staging@*"]\n'
    nodes = ("app@h1", "app@h2", "staging@h1")
    config = load_config(write_policy_config(tmp_path, {"u": ["contractor", "staging"]}, roles, nodes=nodes))
    up = Policy(config, REG).for_user("u")
    err = no(up, "trace lists:seq/2 --pid new")
    assert err.rule == "roles.contractor.trace.modules"
    assert str(err).startswith("trace: module lists is outside your modules Elixir.MyApp.*, my_app_*")
    assert no(up, "trace my_app_x --pid new --return").rule == "roles.contractor.trace.allow_return = false"
    assert no(up, "trace my_app_x").rule == "roles.contractor.trace.allow_pid_all = false"
    decision = ok(up, "trace my_app_x --pid new --limit 1000 --rate 100/1 --for 600")
    assert (decision.invocation.flags["limit"], decision.invocation.flags["rate"]) == (50, (10, 1))
    assert decision.invocation.flags["for"] == 60 and decision.rule == "roles.contractor.commands"
    # on staging@h1 the staging role alone decides: any module, --return, all processes, the default limits
    flags = ok(up, "trace lists:seq/2 --return --limit 1000", "staging@h1").invocation.flags
    assert (flags["return"], flags["limit"], "pid" in flags) == (True, 100, False)
    # policy shows one trace line per group of nodes, each with its own limits
    traces = [c for c in up.describe()["commands"] if c["name"] == "trace"]
    assert [(c["nodes"], c["granted_by"], c["trace"]["modules"], c["trace"]["allow_return"]) for c in traces] == [
        (["app@h1", "app@h2"], ["contractor"], ["Elixir.MyApp.*", "my_app_*"], False),
        (["staging@h1"], ["staging"], None, True),
    ]


FANOUT_ROLES = """
[roles.app]
commands = ["proc_count", "scheduler_usage", "info"]
nodes = ["app@*"]
expensive = "refuse"
[roles.app.args.proc_count]
max_n = 20
allow_attr = ["memory"]
[roles.db]
commands = ["proc_count", "scheduler_usage", "info"]
nodes = ["db@*"]
expensive = "allow"
[roles.db.args.proc_count]
max_n = 100
"""


def test_a_fanout_is_checked_under_each_nodes_rights(tmp_path: Path) -> None:
    """One invocation on every node: lowered to the smallest cap, refused if any node's rights refuse it."""
    up = inline(tmp_path, FANOUT_ROLES, "app", "db")
    decision = ok(up, "proc_count memory 50 --nodes '*'", None)
    assert decision.nodes == ("app@h1", "app@h2", "db@h1")
    assert decision.invocation.args["n"] == 20 and decision.invocation.clamped == {"n": (50, 20)}
    assert decision.notices == ("proc_count: N lowered from 50 to 20 (roles.app.args.proc_count.max_n)",)
    assert decision.rule == "roles.app.commands, roles.db.commands"
    assert ok(up, "proc_count memory 50", "db@h1").invocation.args["n"] == 50  # db's own cap, on db alone
    assert ok(up, "proc_count reductions 50", "db@h1").invocation.args["n"] == 50
    err = no(up, "proc_count reductions --nodes '*'", None)
    assert err.rule == "roles.app.args.proc_count.allow_attr"
    assert str(err).endswith("; this applies on 2 nodes (app@h1, app@h2): narrow --nodes to leave them out")
    assert ok(up, "proc_count reductions --nodes 'db@*'", None).nodes == ("db@h1",)
    # expensive: the strictest setting among the groups decides
    err = no(up, "scheduler_usage 20000 --nodes '*'", None)
    assert err.rule == 'roles.app.expensive = "refuse"'
    assert ok(up, "scheduler_usage 20000 --nodes 'db@*'", None).confirm is None


def test_a_fanout_runs_only_where_a_role_covering_the_node_allows_it(tmp_path: Path) -> None:
    roles = FANOUT_ROLES.replace('expensive = "refuse"', 'expensive = "refuse"\nfanout = false')
    up = inline(tmp_path, roles, "app", "db")
    assert ok(up, "info --nodes '*'", None).nodes == ("db@h1",)  # db's fan-out does not open app's nodes
    err = no(up, "info --nodes 'app@*'", None)
    assert err.rule == "roles.app.fanout = false"
    assert str(err) == (
        "info --nodes app@*: fan-out is not allowed on the matching nodes you may run info on "
        "(roles.app.fanout = false)"
    )
    ok(up, "info", "app@h1")  # one node at a time is still app's grant
