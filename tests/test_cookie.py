"""The cookie: refused unless its file is private, and never printable (SPEC safety rule 1)."""

from __future__ import annotations

import copy
import hashlib
import logging
import pickle
from pathlib import Path

import pytest

from gateway.secret import REDACTED, Cookie, CookieError

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


@pytest.mark.parametrize(("content", "message"), [("\n", "empty"), ("bad\tcookie\n", "printable ASCII")])
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
