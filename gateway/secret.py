"""The cluster cookie, held so that it cannot leak by accident (SPEC safety rule 1).

A :class:`Cookie` has no readable ``repr``/``str``, refuses pickling and
copying into text, and exposes exactly two operations: the MD5 challenge
digest of the distribution handshake, and :meth:`Cookie.redact`, which
replaces the cookie wherever it occurs in text bound for a user, a recording,
an audit line or a log.

Remote data reaches that text through printers that escape and cut: Erlang's
``~p`` and JSON put a backslash before a quote or a backslash (twice over
when a JSON document carries an Erlang-printed state), the terminal
sanitizer doubles backslashes, and depth or size limits show only the first
characters of a long string followed by ``...``. So :meth:`Cookie.redact`
matches the cookie with any run of backslashes before each of its quotes
and backslashes, and also a cut-off display of it: its first
:data:`MIN_SHOWN` or more characters directly followed by an ellipsis. A
match gives back the quotes and backslashes it begins or ends with (they
may be the printer's own, such as the escaped quote closing a string in a
JSON document), so redacting never breaks the quoting of what it redacts.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from pathlib import Path
from typing import NoReturn

REDACTED = "[REDACTED]"
#: A cookie is an atom on the nodes: at most 255 characters.
MAX_LENGTH = 255
#: The characters printers escape (with backslashes).
_ESCAPED = "\\\"'"
#: A cut-off display (``<<"abcd"...>>``) is redacted when it shows at least this many characters of the cookie.
MIN_SHOWN = 4
#: What follows a cut-off display: the closing quote (maybe escaped), a space, the ellipsis.
_CUT = r'(?=\\*"?\s?\.\.\.)'


def _char(ch: str) -> str:
    """One character of the cookie as it may be printed: escaped any number of times if it is a quote or ``\\``."""
    if ch == "\\":
        return r"\\+"
    if ch in _ESCAPED:
        return r"\\*" + re.escape(ch)
    return re.escape(ch)


def _pattern(secret: str) -> re.Pattern[str]:
    """The cookie, escaped or not; or its first ``MIN_SHOWN`` to ``len - 1`` characters before an ellipsis."""
    chars = [_char(ch) for ch in secret]
    whole = "".join(chars)
    if len(chars) <= MIN_SHOWN:
        return re.compile(whole)
    longer = ""
    for ch in reversed(chars[MIN_SHOWN:-1]):
        longer = f"(?:{ch}{longer})?"
    return re.compile(f"{whole}|{''.join(chars[:MIN_SHOWN])}{longer}{_CUT}")


def _redacted(match: re.Match[str]) -> str:
    """The marker for one match, giving back the quotes and backslashes at its ends (see the module comment)."""
    text = match.group()
    lead = len(text) - len(text.lstrip(_ESCAPED))
    trail = len(text) - len(text.rstrip(_ESCAPED))
    if lead + trail >= len(text):
        return REDACTED  # a cookie of quotes and backslashes only: nothing to give back
    return text[:lead] + REDACTED + text[len(text) - trail :]


class CookieError(Exception):
    """The cookie file cannot be used; the message says why and what to do."""


class Cookie:
    __slots__ = ("_printed", "_value")
    _value: bytes
    _printed: re.Pattern[str]

    def __init__(self, value: bytes) -> None:
        if not value:
            raise CookieError("the cookie is empty")
        if any(b < 0x20 or b > 0x7E for b in value):
            raise CookieError("the cookie must be printable ASCII (no control characters)")
        if len(value) > MAX_LENGTH:
            raise CookieError(f"the cookie is longer than {MAX_LENGTH} characters, the limit of an Erlang atom")
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "_printed", _pattern(value.decode("ascii")))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Cookie:
        """Read a cookie file, refusing it unless its mode is 0400 or 0600."""
        p = Path(path)
        try:
            st = p.stat()
        except FileNotFoundError:
            raise CookieError(f"cookie file {p} does not exist") from None
        except PermissionError:
            raise CookieError(f"cookie file {p} is not readable by this user") from None
        if not stat.S_ISREG(st.st_mode):
            raise CookieError(f"cookie file {p} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode not in (0o400, 0o600):
            raise CookieError(f"cookie file {p} has mode {mode:04o}; it must be 0400 or 0600 (run: chmod 600 {p})")
        try:
            raw = p.read_bytes()
        except PermissionError:
            raise CookieError(f"cookie file {p} is not readable by this user") from None
        value = raw.split(b"\n", 1)[0].strip()
        try:
            return cls(value)
        except CookieError as exc:
            raise CookieError(f"cookie file {p}: {exc}") from None

    def digest(self, challenge: int) -> bytes:
        """``gen_digest(Challenge, Cookie)``: MD5 of the cookie then the challenge as text."""
        return hashlib.md5(self._value + str(challenge).encode("ascii")).digest()

    def verify(self, challenge: int, digest: bytes) -> bool:
        return hmac.compare_digest(self.digest(challenge), digest)

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the cookie replaced by ``[REDACTED]``: escaped or cut off too."""
        return self._printed.sub(_redacted, text)

    def pending_prefix(self, text: str) -> int:
        """Length of the longest tail of ``text`` that could begin the cookie (0 if none).

        A stream redactor (the session recorder) holds that tail back until the
        next chunk shows whether the cookie follows, so a cookie split across
        keystrokes or writes is still caught.
        """
        secret = self._value.decode("ascii")
        for n in range(min(len(text), len(secret) - 1), 0, -1):
            if text.endswith(secret[:n]):
                return n
        return 0

    def redact_bytes(self, data: bytes) -> bytes:
        return data.replace(self._value, REDACTED.encode()) if self._value in data else data

    def occurs_in(self, data: bytes | str) -> bool:
        if isinstance(data, str):
            return self._value.decode("ascii") in data
        return self._value in data

    def __repr__(self) -> str:
        return "Cookie(<redacted>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cookie) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._value).digest())

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Cookie is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Cookie cannot be pickled")

    def __copy__(self) -> Cookie:
        return self

    def __deepcopy__(self, memo: object) -> Cookie:
        return self
