"""The cookie: refused unless its file is private, and never printable (SPEC safety rule 1)."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import pickle
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.logs import setup_logging
from gateway.secret import MIN_SHOWN, REDACTED, Cookie, CookieError

SECRET = "s3cr3t-cookie-VALUE"


def cookie_file(tmp_path: Path, mode: int, content: str = SECRET + "\n") -> Path:
    path = tmp_path / "cluster.cookie"
    path.write_text(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o400, 0o600])
def test_private_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    cookie = Cookie.from_file(cookie_file(tmp_path, mode))
    assert cookie == Cookie(SECRET.encode())


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o700, 0o660, 0o444, 0o200, 0o000])
def test_other_modes_are_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = cookie_file(tmp_path, mode)
    with pytest.raises(CookieError) as err:
        Cookie.from_file(path)
    message = str(err.value)
    assert f"has mode {mode:04o}; it must be 0400 or 0600 (run: chmod 600 {path})" in message
    assert SECRET not in message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CookieError, match="does not exist"):
        Cookie.from_file(tmp_path / "nope.cookie")
    folder = tmp_path / "dir.cookie"
    folder.mkdir(mode=0o700)
    with pytest.raises(CookieError, match="not a regular file"):
        Cookie.from_file(folder)


def test_only_the_first_line_is_the_cookie(tmp_path: Path) -> None:
    cookie = Cookie.from_file(cookie_file(tmp_path, 0o600, f"  {SECRET}  \nsecond line\n"))
    assert cookie == Cookie(SECRET.encode())


@pytest.mark.parametrize(
    ("content", "message"),
    [("\n", "empty"), ("bad\tcookie\n", "printable ASCII"), ("x" * 256 + "\n", "longer than 255 characters")],
)
def test_unusable_content(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(CookieError, match=message):
        Cookie.from_file(cookie_file(tmp_path, 0o600, content))


def test_never_revealed_by_printing() -> None:
    cookie = Cookie(SECRET.encode())
    renderings = [
        repr(cookie),
        str(cookie),
        f"{cookie}",
        f"{cookie!r}",
        f"{cookie!s}",
        f"{cookie:>40}",
        format(cookie),
        "%s %r" % (cookie, cookie),  # noqa: UP031
        "{} {!r}".format(cookie, cookie),  # noqa: UP032
        repr([cookie, {"c": cookie}]),
        str(vars(type(cookie)).get("__dict__")),
    ]
    for text in renderings:
        assert SECRET not in text
    assert repr(cookie) == "Cookie(<redacted>)"


def test_never_revealed_by_logging(caplog: pytest.LogCaptureFixture) -> None:
    cookie = Cookie(SECRET.encode())
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("beamgate.test").info("cookie is %s / %r", cookie, cookie)
    assert SECRET not in caplog.text


def test_gateway_logs_redact_messages_and_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    """``beamgate serve``'s log handler: a cookie in an exception's message is redacted in the traceback too."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", [Cookie(SECRET.encode())])
        try:
            raise ValueError(f"handshake with {SECRET!r} failed")
        except ValueError:
            logging.getLogger("beamgate.test").exception("failed for %s", SECRET)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "ERROR beamgate.test: failed for [REDACTED]\nTraceback (most recent call last):" in err
    assert err.rstrip().endswith("ValueError: handshake with '[REDACTED]' failed")
    assert SECRET not in err


def test_cannot_be_pickled_and_copies_are_itself() -> None:
    cookie = Cookie(SECRET.encode())
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(cookie)
    with pytest.raises(TypeError):
        pickle.dumps({"nested": [cookie]})
    assert copy.copy(cookie) is cookie
    assert copy.deepcopy({"c": cookie})["c"] is cookie


def test_immutable() -> None:
    cookie = Cookie(SECRET.encode())
    with pytest.raises(AttributeError):
        cookie._value = b"other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cookie.anything = 1  # type: ignore[attr-defined]


def test_digest_and_verify() -> None:
    cookie = Cookie(SECRET.encode())
    expected = hashlib.md5((SECRET + "4294967295").encode()).digest()
    assert cookie.digest(4294967295) == expected
    assert cookie.verify(4294967295, expected)
    assert not cookie.verify(4294967295, bytes(16))
    assert not cookie.verify(1, expected)


def test_redact() -> None:
    cookie = Cookie(SECRET.encode())
    assert cookie.redact(f"erl -setcookie {SECRET} -sname a; again {SECRET}") == (
        f"erl -setcookie {REDACTED} -sname a; again {REDACTED}"
    )
    assert cookie.redact("nothing here") == "nothing here"
    assert cookie.redact_bytes(b"x" + SECRET.encode() + b"y") == b"x" + REDACTED.encode() + b"y"
    assert cookie.redact_bytes(b"clean") == b"clean"
    assert cookie.occurs_in(f"..{SECRET}..")
    assert cookie.occurs_in(SECRET.encode())
    assert not cookie.occurs_in("clean")


def test_equality_and_hash_do_not_expose() -> None:
    a, b, c = Cookie(SECRET.encode()), Cookie(SECRET.encode()), Cookie(b"other")
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert a != SECRET.encode()


# -- the cookie as printers show it ------------------------------------------------------------


def erlang_string(text: str) -> str:
    """How Erlang's ``~p`` prints ``text`` in a string or binary: backslash and double quote escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def erlang_atom(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def printed(secret: str) -> list[str]:
    """The cookie as diagnostics print it: plain, in Erlang terms, cut by a depth limit, sanitized."""
    return [
        f"state: {secret}",
        f'#{{cookie => "{erlang_string(secret)}",bin => <<"{erlang_string(secret)}">>}}',
        f"{{name,{erlang_atom(secret)}}}",
        secret.replace("\\", "\\\\"),  # the terminal sanitizer doubles backslashes
        *(f'[[<<"{erlang_string(secret[:n])}"...>>]]' for n in range(MIN_SHOWN, len(secret))),
        *(f"{secret[:n]} ..." for n in range(MIN_SHOWN, len(secret))),  # a size cut
    ]


def windows(text: str, n: int = 8) -> set[str]:
    plain = text.replace("\\", "")
    return {plain[i : i + n] for i in range(len(plain) - n + 1)}


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=8, max_size=40))
@settings(max_examples=300, deadline=None)
def test_redact_catches_escaped_and_cut_off_forms_without_breaking_json(secret: str) -> None:
    assume(secret.strip() == secret and secret.strip("\\\"'") and not windows(secret) & windows(REDACTED))
    cookie = Cookie(secret.encode())
    for form in printed(secret):
        for text in (form, json.dumps({"text": form})):  # and inside a JSON document (--json, the audit log)
            redacted = cookie.redact(text)
            assert REDACTED in redacted and not windows(secret) & windows(redacted), (text, redacted)
            if text.startswith('{"text": '):
                decoded = json.loads(redacted)["text"]  # still JSON: the printer's quotes were given back
                assert not windows(secret) & windows(decoded), (text, decoded)


def test_the_longest_cookie_is_redacted_too() -> None:
    secret = ("Ab\"cd\\ef'gh" * 30)[:255]
    cookie = Cookie(secret.encode())
    assert cookie.redact(json.dumps(f'<<"{erlang_string(secret)}">>')) == json.dumps('<<"[REDACTED]">>')
    assert cookie.redact(f'<<"{erlang_string(secret[:200])}"...>>') == '<<"[REDACTED]"...>>'


def test_redact_examples() -> None:
    cookie = Cookie(b"Ab\"cd\\ef'gh12")
    assert cookie.redact('<<"Ab\\"cd\\\\ef\'gh12">>') == '<<"[REDACTED]">>'
    assert cookie.redact("'Ab\"cd\\\\ef\\'gh12'") == "'[REDACTED]'"
    assert cookie.redact('"\\"Ab\\\\\\"cd\\\\\\\\ef\'gh12\\""') == '"\\"[REDACTED]\\""'  # JSON of Erlang
    assert cookie.redact('<<"Ab\\"cd"...>>') == '<<"[REDACTED]"...>>'  # cut at 5 characters
    assert cookie.redact('<<"Ab\\""...>>') == '<<"Ab\\""...>>'  # 3 characters shown: below MIN_SHOWN
    assert cookie.redact('Ab"cd is not cut') == 'Ab"cd is not cut'
