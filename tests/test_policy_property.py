"""Property: whatever a user types, a denied command never reaches a node, and what does is within the role.

For each example role (and a multi-role user), hypothesis generates at least
10,000 command lines: well-formed ones for every command, malformed ones,
arbitrary unicode, lines around the length limit, option injection (``--node``
twice, ``--node=``, ``--node=a --node b``, ``--nodes``), and quoting (single,
double, unbalanced, backslashes). Each line goes through the path the
dispatcher takes (parse, policy check, confirmation, run on the decided
nodes); remote work goes through a counting wrapper around a *real*
:class:`~gateway.target.BoundedTarget` connected to a real OTP node.

What is asserted, independently of the engine's code, from the role as a
reviewer reads it (``ROLES`` below restates each role file):

* the parser raises nothing but ``UsageError``; the check nothing but
  ``Denied``/``UsageError``;
* a denied, malformed or unconfirmed line makes no remote call;
* every call that reaches the node is a command the role grants, on a node
  its globs match, with values within its caps, allowed attributes and
  trace limits, no denied process key and no protected process; privileged
  and expensive runs only after the user typed the confirmation.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import shlex
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands import REGISTRY
from commands.context import Context, Identity, NodeStatus
from commands.errors import CommandError
from commands.grammar import MAX_LINE, UsageError, matches_glob, parse_line
from commands.spec import Command, Flag, Param
from gateway.config import SafetyConfig, load_config
from gateway.dist.node import LocalNode
from gateway.dist.rpc import RemoteNode, RpcClient, Snippet
from gateway.secret import Cookie
from gateway.target import BoundedTarget, TargetError
from policies import Denied, Policy, UserPolicy
from tests.support.erlang import ErlangNode, Runtime, short_host
from tests.support.policy_commands import INFO_KEYS, role_file, spec_registry, write_policy_config

REG = spec_registry()
NODES = ("app@h1", "app@h2", "db@h1")
EXAMPLES = 10_000
BATCH = 1_000

# -- the roles, restated as a reviewer reads the role files ---------------------------

ALL_REMOTE = {n for n, c in REG.items() if c.remote}


@dataclass(frozen=True)
class Expect:
    roles: tuple[str, ...]
    #: Remote commands whose calls may reach a node, and the node globs they may reach.
    remote: frozenset[str]
    nodes: tuple[str, ...]
    #: (command, key) -> largest value that may reach a node.
    caps: Mapping[tuple[str, str], int] = field(default_factory=dict)
    attrs: Mapping[str, frozenset[str]] = field(default_factory=dict)
    trace: tuple[int, int, int] = (0, 0, 0)  # messages, per second, seconds
    modules: tuple[str, ...] | None = None
    trace_return: bool = True
    trace_pid_all: bool = True
    denied_keys: frozenset[str] = frozenset()
    fanout: bool = True
    #: Some line can need a confirmation (so "cancelled" is an outcome).
    can_confirm: bool = True
    #: Lines a narrow grant lets through that the generator draws too rarely to count on
    #: (a contractor's trace: about 3 lines in 10,000). They go through the same checks.
    seeded: tuple[str, ...] = ()


HARD = {("messages", "n"): 100, ("state", "timeout"): 30_000}
ROLES = {
    "contractor": Expect(
        roles=("contractor",),
        remote=frozenset({"info", "proc_count", "proc_window", "bin_leak", "alloc", "trace"}),
        nodes=("app@*",),
        caps={("proc_count", "n"): 20, ("proc_window", "n"): 20, ("proc_window", "ms"): 5000, ("bin_leak", "n"): 10},
        attrs={"proc_count": frozenset({"memory", "reductions", "message_queue_len"})},
        trace=(50, 10, 60),
        modules=("Elixir.MyApp.*", "my_app_*"),
        trace_return=False,
        trace_pid_all=False,
        denied_keys=frozenset({"messages", "dictionary", "meta"}),
        fanout=False,
        seeded=("trace my_app_db:query/2 --pid my_server --limit 5 --rate 1/1 --for 5",),
    ),
    "sre": Expect(
        roles=("sre",),
        remote=frozenset(ALL_REMOTE - {"kill"}),
        nodes=("*",),
        caps={**HARD, ("proc_window", "ms"): 30_000},
        trace=(1000, 100, 300),
    ),
    "readonly": Expect(
        roles=("readonly",),
        remote=frozenset({"info", "alloc", "apps", "ports", "ets"}),
        nodes=("*",),
        caps={("ets", "n"): 20},
        can_confirm=False,
    ),
    "sre+operator+no_state": Expect(
        roles=("sre", "operator", "no_state"),
        remote=frozenset(ALL_REMOTE - {"trace", "state", "messages"}),
        nodes=("*",),
        caps={**HARD, ("proc_window", "ms"): 30_000},
        denied_keys=frozenset({"messages", "dictionary", "binary", "meta"}),
    ),
}
KILL_NODES = ("app@*",)  # operator's nodes
PROTECTED = {"auth", "net_kernel"}


@dataclass
class Call:
    node: str
    snippet: str
    bindings: Mapping[str, Any] | None
    confirmed: bool


def check_call(expect: Expect, call: Call) -> None:
    """Everything that reached a node is within the role (independent of the engine's code)."""
    assert any(matches_glob(call.node, g) for g in expect.nodes), call
    if call.snippet == "info_node":  # the real node overview
        assert "info" in expect.remote, call
        return
    assert call.bindings is not None
    name, pairs = call.bindings["Args"]
    values = dict(pairs)
    assert name in expect.remote, call
    if REG[name].privileged:
        assert call.confirmed, call
        assert any(matches_glob(call.node, g) for g in KILL_NODES), call
    if name == "bin_leak" or (isinstance(values.get("ms"), int) and values["ms"] > 10_000):
        assert call.confirmed, call
    for (command, key), top in expect.caps.items():
        if command == name and isinstance(values.get(key), int):
            assert values[key] <= top, call
    for key, value in values.items():
        if isinstance(value, int) and key in ("n", "ms", "timeout"):
            assert value <= {"n": 1000, "ms": 60_000, "timeout": 30_000}[key], call
    if name in expect.attrs:
        assert values["attr"] in expect.attrs[name], call
    if name in ("state", "messages", "kill"):
        assert values["proc"] not in PROTECTED, call
    if name == "info" and values.get("proc") != "none":
        assert not set(values["key"]) & expect.denied_keys, call
    if name == "trace":
        messages, per_second, seconds = expect.trace
        count, period = values["rate"]
        assert values["limit"] <= messages and values["for"] <= seconds and count <= per_second * period, call
        assert expect.trace_return or values.get("return") != "true", call
        assert expect.trace_pid_all or values.get("pid", "none") not in ("none", "all"), call
        if expect.modules is not None:
            assert all(any(matches_glob(m, g) for g in expect.modules) for m, _, _ in values["spec"]), call


# -- the path a line takes (what gateway/dispatch.py does) ---------------------------


class CountingTarget:
    """A real BoundedTarget, counting and recording every call that reaches the node."""

    def __init__(self, inner: BoundedTarget, node: str, calls: list[Call], confirmed: bool) -> None:
        self.inner, self.node, self.calls, self.confirmed = inner, node, calls, confirmed

    @property
    def name(self) -> str:
        return self.node

    @property
    def owner(self) -> Any:
        return self.inner.owner

    async def otp_release(self) -> str:
        self.calls.append(Call(self.node, "otp_release", None, self.confirmed))
        return await self.inner.otp_release()

    async def run(self, snippet: Snippet, bindings: Mapping[str, Any] | None = None, **limits: Any) -> Any:
        self.calls.append(Call(self.node, snippet.name, bindings, self.confirmed))
        return await self.inner.run(snippet, bindings, **limits)


class Session:
    current_node = "app@h1"

    def select_node(self, name: str) -> None:
        pass

    def allowed_nodes(self) -> list[str]:
        return []

    async def node_status(self, names: Any) -> list[NodeStatus]:
        return []

    def request_exit(self) -> None:
        pass


async def dispatch(up: UserPolicy, target: BoundedTarget, line: str, accept: bool, calls: list[Call]) -> str:
    try:
        inv = parse_line(line, REG)
    except UsageError:
        return "usage"
    if inv is None:
        return "empty"
    node = inv.node or Session.current_node
    try:
        decision = up.check(inv, node)
    except Denied:
        return "denied"
    except UsageError:
        return "usage"
    if decision.confirm is not None and not accept:
        return "cancelled"
    confirmed = decision.confirm is not None
    for where in decision.nodes or (None,):
        ctx = Context(
            Identity(up.user, tuple(r.name for r in up.roles), "SHA256:test"),
            REG,
            Session(),
            up,
            SafetyConfig(),
            target=None if where is None else CountingTarget(target, where, calls, confirmed),
        )
        try:
            await inv.command.run(ctx, decision.invocation)
        except (CommandError, TargetError):
            return "failed"  # exit 1: the command ran and failed (its calls are checked like any other)
    return "ran"


# -- generating lines ----------------------------------------------------------------
# Pools of words (valid ones, near misses, and odd unicode) keep each example to a few
# cheap draws: 10,000 lines per role must stay fast on a shared 2-core machine.

JUNK = ("", " ", "-", "--", "\u00e9t\u00e9", "\u4e2d\u6587", "\u202etxt", "\U0001f600", "a\u0301", "\u200b",
        "x" * 300, "\\x1b[31m", "${HOME}", "$(id)", "`id`", "a;b", "a|b", "*", "?", "'", '"', "\\", "%s",
        "\u0663", "NaN")  # fmt: skip
PROCS = ("<0.1.0>", "0.42.0", "#PID<0.3.0>", "my_server", "MyApp.Worker", "Elixir.MyApp.Worker", "global:leader",
         "auth", "net_kernel", "'net_kernel'", ":auth", "<0.1>", "global:", "all", "new", "existing")  # fmt: skip
FUNSPECS = ("lists:seq/2", "MyApp.Worker.handle_call/3", ":queue.in/2", "my_app_db:query", "erlang", "ets:lookup/2",
            "Elixir.MyApp.Repo:all/1", "my_app_x", "MyApp", "'my_app_q':f/1", "my_app_*", "lists:seq/x")  # fmt: skip
RATES = ("10/1", "500/10", "1/1", "0/1", "5/0", "999999999/1", "1/999999", "10", "a/b")
GLOBS = ("*", "app@*", "db@*", "app@h[12]", "zz@*", "app@h1", "[", "*@*")
NODE_VALUES = (*NODES, "nope@h9", "app@", "@h1", "APP@H1")
INTS = ("1", "5", "10", "20", "21", "100", "101", "1000", "1001", "5000", "5001", "10001", "30000", "60000")
BAD_INTS = ("0", "-1", "1e3", "0x10", "\u0663", "\uff11\uff12", "99999999999999", "1_000", "+5", "60001")
NAMES = (*REG, *REG, *REG, "eval", "os:cmd", "Kill", "kill\u200b", "proc_count;rm", "--node", "infoo", "trace*")
INJECTED = (
    ("--node", "app@h1", "--node", "db@h1"),
    ("--node=db@h1",),
    ("--node=",),
    ("--node=app@h1", "--node", "db@h1"),
    ("--node", "db@h1"),
    ("--node", "app@h2"),
    ("--node",),
    ("--nodes", "*"),
    ("--nodes=app@*",),
    ("--node", "app@h2", "--nodes", "*"),
    ("--json", "--json"),
    ("--",),
    ("--", "--node", "db@h1"),
    ("--unknown-option",),
    ("-n", "5"),
)


def pool(spec: Param | Flag) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Candidate words for one argument: (valid ones, near misses and odd ones)."""
    kind = spec.kind
    table: dict[str, tuple[str, ...]] = {
        "int": INTS, "proc": PROCS, "funspec": FUNSPECS, "node": NODE_VALUES, "rate": RATES, "glob": GLOBS,
        "word": (*INFO_KEYS, "meta", "binary"), "command": tuple(REG), "text": ("[3, _]", "[{error, _}, _]", "_"),
    }  # fmt: skip
    valid = spec.choices or table.get(kind, ("x",))
    bad = (*JUNK, "near_" + valid[0])
    if kind == "int":
        low, high = spec.min or 0, spec.max or 10**9
        valid = tuple(v for v in INTS if low <= int(v) <= high)
        bad = (*bad, *BAD_INTS, *(v for v in INTS if v not in valid))
    return valid, bad


def pick(rng: random.Random, candidates: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    words = candidates[rng.random() < 0.08]
    return words[rng.randrange(len(words))]


def option_pool(command: Command) -> tuple[tuple[tuple[str, ...], ...], ...]:
    """Per option of ``command``: its variants (with a valid value, a bad one, ``--name=value``)."""
    per_flag = []
    for flag in command.all_flags():
        if flag.kind == "bool":
            per_flag.append(((f"--{flag.name}",),))
            continue
        valid, bad = pool(flag)
        variants = [(f"--{flag.name}", v) for v in valid[:12]] + [(f"--{flag.name}", v) for v in bad[:2]]
        per_flag.append((*variants, (f"--{flag.name}={valid[0]}",)))
    return tuple(per_flag)


POOLS = {name: ({p.key: (p.required, pool(p)) for p in c.params}, option_pool(c)) for name, c in REG.items()}


def quoted(words: list[str], mode: int, rng: random.Random) -> str:
    """Join words into a line; ``mode`` picks the quoting (mostly plain, sometimes broken on purpose)."""
    if mode == 1:
        return " ".join(shlex.quote(w) for w in words)
    if mode == 2:
        return " ".join(
            '"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' if rng.random() < 0.5 else w for w in words
        )
    if mode == 3:
        i = rng.randrange(len(words))
        words = [*words[:i], "'" + words[i], *words[i + 1 :]]  # an unbalanced quote
    if mode == 4:
        return " ".join(words) + "\\"  # a trailing backslash
    return " ".join(words)


SHAPES = st.integers(0, 24)
RAW = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
LONG_UNITS = st.sampled_from(["info ", "a" * 40, "--node app@h1 ", "'x y' ", "\u00e9\u4e2d ", "help "])
LONG_LENGTHS = st.integers(MAX_LINE - 50, MAX_LINE + 50)
NAME_CHOICE = st.sampled_from(NAMES)
SEEDS = st.integers(0, 2**32)
ODD_WORD = st.text(max_size=12)
MODES = st.sampled_from([0] * 10 + [1, 1, 2, 2, 3, 4])


@st.composite
def command_lines(draw: st.DrawFn) -> str:
    shape = draw(SHAPES)
    if shape == 0:
        return draw(RAW)
    if shape == 1:
        unit = draw(LONG_UNITS)
        length = draw(LONG_LENGTHS)
        return (unit * (length // len(unit) + 1))[:length].rstrip()
    name = draw(NAME_CHOICE)
    pool_name = name if name in POOLS else "info"
    params = POOLS[pool_name][0]
    rng = random.Random(draw(SEEDS))
    words = [name]
    for required, candidates in params.values():
        if rng.random() < (0.95 if required else 0.6):
            words += [pick(rng, candidates) for _ in range(1 + (rng.random() < 0.1))]
    flags = POOLS[pool_name][1]
    for variants in rng.sample(flags, min(len(flags), rng.choice((0, 0, 1, 1, 2, 3)))):
        words += rng.choice(variants)
    if rng.random() < 0.15:
        words += rng.choice(INJECTED)
    if shape == 2:
        words.insert(rng.randrange(1, len(words) + 1), draw(ODD_WORD))
    if shape == 3:
        rest = words[1:]
        rng.shuffle(rest)
        words = [name, *rest]
    return quoted(words, draw(MODES), rng)


# -- the test ------------------------------------------------------------------------


@pytest.fixture
def real_target(otp25_runtime: Runtime, node_factory: Callable[..., ErlangNode]) -> Any:
    node = node_factory(otp25_runtime)
    loop = asyncio.new_event_loop()
    local = LocalNode(f"bgpol_{secrets.token_hex(3)}@{short_host()}", Cookie(node.cookie.encode()))
    remote = RemoteNode(local, node.name, RpcClient(local))
    target = BoundedTarget(remote, local.spawn(), SafetyConfig(eval_timeout=5.0))
    yield loop, target
    local.close()
    loop.close()


@pytest.mark.slow
@pytest.mark.parametrize("who", list(ROLES))
def test_denied_lines_never_reach_a_node(tmp_path: Path, real_target: Any, who: str) -> None:
    loop, target = real_target
    expect = ROLES[who]
    roles = "\n".join(role_file(n) for n in ("sre", "contractor", "readonly", "operator", "no_state"))
    path = write_policy_config(tmp_path, {"u": list(expect.roles)}, roles)
    up = Policy(load_config(path), REG).for_user("u")
    calls: list[Call] = []
    outcomes: Counter[str] = Counter()
    ran_commands: Counter[str] = Counter()

    def check_line(line: str, accept: bool) -> str:
        before = len(calls)
        outcome = loop.run_until_complete(dispatch(up, target, line, accept, calls))
        outcomes[outcome] += 1
        new = calls[before:]
        if outcome not in ("ran", "failed"):
            assert new == [], (line, outcome, new)
        for call in new:
            check_call(expect, call)
            ran_commands[call.snippet if call.bindings is None else call.bindings["Args"][0]] += 1
        if not expect.fanout:
            assert len(new) <= 1, (line, new)
        return outcome

    @settings(
        max_examples=BATCH,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(line=command_lines(), accept=st.booleans())
    def one_line(line: str, accept: bool) -> None:
        check_line(line, accept)

    for _ in range(EXAMPLES // BATCH):  # batches: hypothesis slows down as one run's history grows
        one_line()
    for line in expect.seeded:
        assert check_line(line, True) in ("ran", "failed"), line
    total = sum(outcomes.values())
    assert total >= EXAMPLES, outcomes
    # Every path is reached (the generator, plus the seeded lines), so the property is not vacuous.
    paths = ("ran", "denied", "usage", "cancelled") if expect.can_confirm else ("ran", "denied", "usage")
    for outcome in paths:
        assert outcomes[outcome] >= total // 1000, outcomes
    assert set(ran_commands) >= {"info_node", *expect.remote - {"info"}}, ran_commands
    print(f"\n{who}: {total} lines {dict(outcomes)}; {len(calls)} remote calls; by command {dict(ran_commands)}")


@settings(max_examples=2_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(line=command_lines())
def test_the_parser_raises_only_usage_errors_with_the_real_registry(line: str) -> None:
    """The same lines against what is registered today (help, info, policy)."""
    with contextlib.suppress(UsageError):
        parse_line(line, REGISTRY)
