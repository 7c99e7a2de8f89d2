"""``trace`` on the gateway alone: pattern parsing, plans and limits, refusals, output."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands import REGISTRY
from commands.grammar import UsageError, parse_line
from commands.tracing.output import (
    TraceStopped,
    event_json,
    event_line,
    failure_message,
    stopped_json,
    stopped_line,
)
from commands.tracing.pattern import WILDCARD, PatternError, parse_pattern
from commands.tracing.plan import MAX_BACKLOG, Limits, make_plan
from commands.tracing.relay import TAG, Failed, Ready, Stopped, TraceEvent, decode
from gateway.config import TraceLimits
from gateway.dist.terms import Atom, Pid

DEFAULTS = TraceLimits(max_messages=100, max_rate=20, max_seconds=60)
NODE = "app@host"


def plan_for(line: str, caps: TraceLimits = DEFAULTS):
    inv = parse_line(line, REGISTRY)
    assert inv is not None
    return make_plan({**inv.flags, **inv.args}, DEFAULTS, caps)


# -- --match patterns -------------------------------------------------------------------


def test_pattern_literals_and_wildcards() -> None:
    p = parse_pattern("[3, _]")
    assert p.arity == 2
    assert p.tree == (Atom("list"), [(Atom("lit"), 3), WILDCARD])
    p = parse_pattern('[{error, _Reason}, "ab", <<"GET">>, <<1,2>>, -1.5e3, 16#ff, $a, #{k => [x | _]}]')
    items = p.tree[1]
    assert items[0] == (Atom("tuple"), [(Atom("atom"), b"error"), WILDCARD])
    assert items[1] == (Atom("lit"), [97, 98])
    assert items[2] == (Atom("lit"), b"GET")
    assert items[3] == (Atom("lit"), b"\x01\x02")
    assert items[4] == (Atom("lit"), -1500.0)
    assert items[5] == (Atom("lit"), 255)
    assert items[6] == (Atom("lit"), 97)
    assert items[7] == (Atom("map"), [((Atom("atom"), b"k"), (Atom("cons"), [(Atom("atom"), b"x")], WILDCARD))])


def test_pattern_atoms_travel_as_binaries_never_atoms() -> None:
    """User atoms must reach the node as binaries (SPEC rule 3): no Atom in the tree but fixed tags."""
    tree = parse_pattern("['Quoted Atom', plain, [nested]]").tree
    tags = {Atom("list"), Atom("atom"), Atom("lit"), Atom("tuple"), Atom("cons"), Atom("map"), WILDCARD}

    def atoms(t: object) -> set[str]:
        if isinstance(t, Atom):
            return {t}
        if isinstance(t, tuple | list):
            return set().union(*(atoms(x) for x in t)) if t else set()
        return set()

    assert atoms(tree) <= tags
    assert (Atom("atom"), b"Quoted Atom") in tree[1]


def test_pattern_any_arguments_and_open_tail() -> None:
    assert parse_pattern("_").arity is None
    assert parse_pattern("[a | _]").arity is None
    assert parse_pattern("[a | [b]]").arity == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[X, _]", "variable"),
        ("[foo(), _]", "only literals"),
        ("[1 * 2]", "only literals"),
        ("[1 + 2]", "operators"),
        ("[1 2]", "expected ','"),
        ("{a, b}", "must be a list"),
        ("['$1']", "not allowed"),
        ("['_']", "not allowed"),
        ("[:ok]", "Erlang syntax"),
        ("[a] when true", "unexpected text"),
        ("[#{_ => 1}]", "map keys"),
        ("[#{a := 1}]", "=>"),
        ("[<<300>>]", "0 to 255"),
        ('["open', "unterminated"),
        ("[end]", "reserved word"),
        ("[" * 40 + "]" * 40, "deeper"),
        ("[", "ends too early"),
    ],
)
def test_pattern_refusals(text: str, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        parse_pattern(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}<>#|,_-.$\"'\\ aZ09x=:e+(")), max_size=40) | st.text(max_size=30))
def test_pattern_parser_fails_only_cleanly(text: str) -> None:
    """Whatever the text, the parser returns a pattern or raises PatternError, nothing else."""
    with contextlib.suppress(PatternError):
        parse_pattern(text)


# -- plans: limits and refusals ---------------------------------------------------------


def test_limits_default_from_safety_and_capped() -> None:
    assert plan_for("trace m:f/1").limits == Limits(messages=100, rate=20, per_seconds=1, seconds=60)
    # without a role cap, nothing exceeds the safety defaults
    assert plan_for("trace m:f/1 --limit 5000 --rate 500/1 --for 900").limits == Limits(100, 20, 1, 60)
    assert plan_for("trace m:f/1 --limit 5 --rate 10/2 --for 3").limits == Limits(5, 10, 2, 3)
    # a role cap (published by the policy) replaces the defaults as the ceiling
    caps = TraceLimits(max_messages=1000, max_rate=100, max_seconds=300)
    assert plan_for("trace m:f/1 --limit 5000 --rate 500/1 --for 900", caps).limits == Limits(1000, 100, 1, 300)
    assert plan_for("trace m:f/1 --rate 50/2", caps).limits == Limits(100, 50, 2, 60)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("trace \"'_'\"", "every module"),
        ("trace \"'_':handle_call\"", "every module"),
        ("trace lists", "every function of lists"),
        ("trace erlang:'_'", "every function of erlang"),
        ("trace ets --pid all", "every function of ets"),
        ("trace io --match _", "every function of io"),
        ("trace erlang --match '[_|_]'", "every function of erlang"),
        ("trace erlang --match '[_]'", "every function of erlang"),
        ("trace lists --match '[_, _]'", "every function of lists"),
        ("trace ets --match '[_, _ | _]'", "every function of ets"),
        ("trace erlang --match '[]'", "every function of erlang"),  # erlang:self/0, node/0...: all hot
        ("trace queue:in/2 --match '[a]'", "has 1 arguments but queue:in/2 takes 2"),
        ("trace m:f --pid '<1.2.3>'", "on another node"),
        ("trace m:f --pid 'bad name!'", "--pid"),
        ("trace m:f --match '[X]'", "--match"),
    ],
)
def test_dangerous_and_bad_lines_refused(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plan_for(line)


def test_busy_module_allowed_when_narrowed() -> None:
    assert plan_for("trace lists --pid my_server").single_process
    assert plan_for("trace ets --match '[foo, _]'").pattern is not None
    assert plan_for("trace erlang --match '[_, {_, _}]'").pattern is not None  # the 2nd argument is a pair
    assert plan_for("trace erlang --match '[_ | [1]]'").pattern is not None
    assert plan_for("trace lists:seq/2").specs[0].function == "seq"


def test_bindings_are_data_only() -> None:
    plan = plan_for("trace MyApp.Worker.handle_call/3 :queue.in/2 my_mod --pid '<0.44.0>' --return --local")
    owner = Pid(Atom("gw@h"), 1, 0, 1)
    b = plan.bindings(owner, "alice", 1_000_000)
    assert b["Specs"] == [
        (b"Elixir.MyApp.Worker", b"handle_call", 3),
        (b"queue", b"in", 2),
        (b"my_mod", WILDCARD, WILDCARD),
    ]
    assert b["Procs"] == (Atom("pid"), 44, 0)
    assert b["Scope"] == Atom("local") and b["Return"] is True and b["User"] == b"alice"
    assert plan_for("trace m:f --pid MyApp.Worker").bindings(owner, "a", 1)["Procs"] == (
        Atom("name"),
        b"Elixir.MyApp.Worker",
    )


def test_usage_lists_every_option() -> None:
    usage = REGISTRY["trace"].usage()
    for option in (
        "--limit N",
        "--rate N/SECONDS",
        "--for SECONDS",
        "--pid PROC|new|existing|all",
        "--return",
        "--match",
        "--local",
    ):
        assert option in usage
    assert REGISTRY["trace"].streaming


# -- output -----------------------------------------------------------------------------


def event(kind: str = "call", module: str = "queue", **kw: object) -> TraceEvent:
    base: dict[str, object] = dict(ts_us=1_700_000_074_086_078, pid="<0.44.0>", kind=kind, module=module)
    base.update(function="in", arity=2, args="a, {[],[]}" if kind == "call" else None)
    base.update(result="{[a],[]}" if kind == "return" else None)
    base.update(kw)
    return TraceEvent(**base)  # type: ignore[arg-type]


def test_recon_style_lines() -> None:
    assert event_line(event()) == "22:14:34.086078 <0.44.0> queue:in(a, {[],[]})"
    assert event_line(event("return")) == "22:14:34.086078 <0.44.0> queue:in/2 --> {[a],[]}"
    elixir = event(module="Elixir.MyApp.Worker", function="handle_call", arity=3, args="get, {<0.1.0>,x}, #{}")
    assert event_line(elixir).endswith(" MyApp.Worker.handle_call(get, {<0.1.0>,x}, #{})")
    assert event(function="-fun-0-").mfa == "queue:'-fun-0-'/2"


def test_json_shapes() -> None:
    assert event_json(event()) == {
        "ts": "2023-11-14T22:14:34.086078Z",
        "pid": "<0.44.0>",
        "kind": "call",
        "mfa": "queue:in/2",
        "args": "a, {[],[]}",
        "result": None,
    }
    assert event_json(event("return"))["result"] == "{[a],[]}"
    stopped = TraceStopped("rate", 10, Limits(100, 10, 1, 60), NODE)
    assert stopped_json(stopped) == {"event": "stopped", "reason": "rate", "count": 10}
    assert (
        stopped_line(stopped) == "trace stopped after 10 messages: rate limit tripped: more than 10 messages within 1s"
    )
    backlog = TraceStopped("rate", 3, Limits(100, 10, 1, 60), NODE, "backlog")
    assert stopped_json(backlog) == {"event": "stopped", "reason": "rate", "count": 3, "detail": "backlog"}
    assert stopped_line(backlog) == (
        f"trace stopped after 3 messages: rate limit tripped: trace messages came faster than the node "
        f"could relay them (more than {MAX_BACKLOG} waiting)"
    )
    json.dumps(event_json(event()))


def test_remote_text_is_sanitized() -> None:
    pid = Pid(Atom(NODE), 44, 0, 1)
    relay = Pid(Atom(NODE), 99, 0, 1)
    evil = (TAG, relay, (Atom("call"), 1, pid, Atom("m\x1b[2J"), Atom("f"), 1, "\x1b]0;pwned\x07\u202e".encode()))
    decoded = decode(evil, relay, NODE)
    assert isinstance(decoded, TraceEvent)
    line = event_line(decoded)
    assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    assert "\\x1b]0;pwned\\x07\\u202e" in line and "<0.44.0>" in line


def test_decode_only_from_our_relay() -> None:
    relay = Pid(Atom(NODE), 99, 0, 1)
    other = Pid(Atom(NODE), 98, 0, 1)
    cleaner = Pid(Atom(NODE), 97, 0, 1)
    assert decode((TAG, relay, (Atom("ready"), 1, True, cleaner)), relay, NODE) == Ready(1, True, cleaner)
    assert decode((TAG, other, (Atom("ready"), 1, True, cleaner)), relay, NODE) is None
    assert decode((TAG, relay, (Atom("ready"), 1, True, Atom("x"))), relay, NODE) is None
    assert decode((TAG, relay, (Atom("stopped"), Atom("limit"), 5)), relay, NODE) == Stopped("limit", 5)
    backlog = (Atom("stopped"), Atom("rate"), 5, Atom("backlog"))
    assert decode((TAG, relay, backlog), relay, NODE) == Stopped("rate", 5, "backlog")
    assert decode((TAG, relay, (Atom("failed"), Atom("busy"), (b"bob", 1000, 2000))), relay, NODE) == Failed(
        "busy", (b"bob", 1000, 2000)
    )
    assert decode("junk", relay, NODE) is None


def test_failure_messages() -> None:
    assert failure_message("no_such_module", (b"nosuch", b"f", 1), NODE) == (
        "no such function nosuch:f/1 on app@host (no module nosuch)"
    )
    assert failure_message("no_such_module", (b"nosuch", WILDCARD, WILDCARD), NODE) == (
        "no such module nosuch on app@host"
    )
    assert failure_message("no_such_function", (b"Elixir.A.B", b"go", WILDCARD), NODE) == (
        "no such function A.B.go on app@host"
    )
    busy = failure_message("busy", (b"alice", 12_000, 48_000), NODE)
    assert busy is not None and "started by alice 12s ago" in busy and "within 48s" in busy
    assert failure_message("raised", "x", NODE) is None
