"""Pure units: process references, function specs, the line grammar, sanitizing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands import REGISTRY
from commands.format import quote, sanitize, term_text
from commands.grammar import UsageError, parse_line, split_words
from commands.refs import FunSpec, GlobalRef, NameRef, PidRef, RefError, format_mfa, parse_funspec, parse_proc
from gateway.dist.terms import Atom, ImproperList, Pid


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("<0.123.0>", PidRef(0, 123, 0)),
        ("0.123.0", PidRef(0, 123, 0)),
        ("#PID<0.123.0>", PidRef(0, 123, 0)),
        ("<5.7.9>", PidRef(5, 7, 9)),
        ("my_server", NameRef("my_server")),
        ("MyApp.Worker", NameRef("Elixir.MyApp.Worker")),
        ("Elixir.MyApp.Worker", NameRef("Elixir.MyApp.Worker")),
        ("'Weird Name'", NameRef("Weird Name")),
        ("global:my_global", GlobalRef("my_global")),
        ("global:MyApp.Registry", GlobalRef("Elixir.MyApp.Registry")),
    ],
)
def test_proc_refs(text: str, ref: object) -> None:
    assert parse_proc(text) == ref


@pytest.mark.parametrize(
    "text", ["", "<0.1>", "<a.b.c>", "#PID<0.1.x>", "9.9.99999999999", "bad name", "x\x1b", "Foo-Bar", "a" * 300]
)
def test_bad_proc_refs(text: str) -> None:
    with pytest.raises(RefError):
        parse_proc(text)


@pytest.mark.parametrize(
    ("text", "spec", "shown"),
    [
        ("queue:in/2", FunSpec("queue", "in", 2), "queue:in/2"),
        ("queue:in", FunSpec("queue", "in"), "queue:in"),
        ("queue", FunSpec("queue"), "queue"),
        (":queue.in/2", FunSpec("queue", "in", 2), "queue:in/2"),
        (":queue", FunSpec("queue"), "queue"),
        ("MyApp.Worker.handle_call/3", FunSpec("Elixir.MyApp.Worker", "handle_call", 3), "MyApp.Worker.handle_call/3"),
        ("Elixir.MyApp.Worker.handle_call/3", FunSpec("Elixir.MyApp.Worker", "handle_call", 3), None),
        ("Elixir.MyApp.Worker:handle_call/3", FunSpec("Elixir.MyApp.Worker", "handle_call", 3), None),
        ("MyApp.Worker", FunSpec("Elixir.MyApp.Worker"), "MyApp.Worker"),
        ("MyApp.Worker.valid?/1", FunSpec("Elixir.MyApp.Worker", "valid?", 1), "MyApp.Worker.valid?/1"),
        ("'my mod':'f f'/1", FunSpec("my mod", "f f", 1), "'my mod':'f f'/1"),
    ],
)
def test_funspecs(text: str, spec: FunSpec, shown: str | None) -> None:
    assert parse_funspec(text) == spec
    assert str(spec) == (shown or "MyApp.Worker.handle_call/3")


@pytest.mark.parametrize("text", ["", "mod/2", "mod:fun/x", "mod:fun/999", "mod:Fun-x/1", "1abc", "a:b:c"])
def test_bad_funspecs(text: str) -> None:
    with pytest.raises(RefError):
        parse_funspec(text)


def test_format_mfa_elixir_and_erlang() -> None:
    assert format_mfa("Elixir.A.B", "run", 0) == "A.B.run/0"
    assert format_mfa("gen_server", "call", 3) == "gen_server:call/3"


def test_grammar_options_and_errors() -> None:
    inv = parse_line("help info --json", REGISTRY)
    assert inv is not None and inv.args == {"cmd": "info"} and inv.json
    inv = parse_line("info --node=app@host", REGISTRY)
    assert inv is not None and inv.node == "app@host"
    assert parse_line("   ", REGISTRY) is None
    for line, message in [
        ("nosuch", "unknown command"),
        ("info --node a@b --node c@d", "given twice"),
        ("info --node=", "non-empty"),
        ("info --node", "needs a value"),
        ("info --json=yes", "takes no value"),
        ("info --bogus", "unknown option"),
        ("help a b", "unexpected argument"),
        ("info --node 'not a node'", "not a node name"),
        ("help 'unclosed", "cannot split"),
        ("info --node a@b --nodes 'a*'", "not both"),
        ("x" * 5000, "line too long"),
        ("help \x1b[31m", "control characters"),
        ("trace lists --limit \u0661\u0660", "whole number"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_line(line, REGISTRY)


def test_double_dash_ends_options() -> None:
    inv = parse_line("help -- --json", REGISTRY)
    assert inv is not None
    assert inv.args["cmd"] == "--json"
    assert not inv.json


@settings(max_examples=3000, deadline=None)
@given(st.text(max_size=300))
def test_parser_only_raises_usage_errors(line: str) -> None:
    with contextlib.suppress(UsageError):
        parse_line(line, REGISTRY)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(["info", "help", "--node", "--json", "--nodes", "=", "a@b", "'", '"', "\\", "x"]), max_size=12
    )
)
def test_parser_token_soup(words: list[str]) -> None:
    with contextlib.suppress(UsageError):
        parse_line(" ".join(words), REGISTRY)


def test_split_words_quotes() -> None:
    assert split_words("trace 'a b' \"c d\" e\\ f") == ["trace", "a b", "c d", "e f"]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),
        ("line\nbreak", "line\\nbreak"),
        ("\x9b31m", "\\x9b31m"),
        ("abc\u202edcb", "abc\\u202edcb"),
        ("back\\slash", "back\\\\slash"),
        ("plain ünïcode", "plain ünïcode"),
    ],
)
def test_sanitize(raw: str, shown: str) -> None:
    assert sanitize(raw) == shown


@given(st.text())
def test_sanitized_text_has_no_controls(text: str) -> None:
    out = sanitize(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in out)
    assert not any(c in out for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def test_term_text() -> None:
    pid = Pid(Atom("n@h"), 7, 0, 1)
    assert term_text((Atom("ok"), [1, 2], b"bin", pid), local_node="n@h") == '{ok,[1,2],<<"bin">>,<0.7.0>}'
    assert term_text(Atom("with space")) == "'with space'"
    assert term_text(b"\x1b[31m") == '<<"\\x1b[31m">>'
    assert term_text(ImproperList((1,), Atom("t"))) == "[1|t]"
    assert term_text(list(range(1000)), limit=50).endswith("...")
    assert quote("it's", "'") == "'it\\'s'"
