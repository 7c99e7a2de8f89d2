"""Logging set-up: one line per record on stderr, with every cookie redacted (SPEC rule 1)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from .secret import Cookie


class RedactCookies(logging.Filter):
    """Replaces any cookie in a record's final text with ``[REDACTED]``."""

    def __init__(self, cookies: Iterable[Cookie]) -> None:
        super().__init__()
        self.cookies = list(cookies)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        redacted = text
        for cookie in self.cookies:
            redacted = cookie.redact(redacted)
        if redacted != text:
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str = "INFO", cookies: Iterable[Cookie] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactCookies(cookies))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
