"""Logging set-up: one line per record on stderr, with every cookie redacted (SPEC rule 1)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from .secret import Cookie

_TRACEBACKS = logging.Formatter()


class RedactCookies(logging.Filter):
    """Replaces any cookie in a record's final text, and in its traceback, with ``[REDACTED]``."""

    def __init__(self, cookies: Iterable[Cookie]) -> None:
        super().__init__()
        self.cookies = list(cookies)

    def _redact(self, text: str) -> str:
        for cookie in self.cookies:
            text = cookie.redact(text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        redacted = self._redact(text)
        if redacted != text:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:  # an exception's message may hold remote text
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


def setup_logging(level: str = "INFO", cookies: Iterable[Cookie] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactCookies(cookies))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
