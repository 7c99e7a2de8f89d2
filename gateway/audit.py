"""The audit log: JSON lines, append-only (SPEC "Recording and audit").

Each event has at least ``ts`` (RFC 3339 UTC), ``event``, ``user``,
``session``, ``client`` and ``key_fingerprint``; command events add ``node``,
``line``, ``decision``, ``outcome``, ``duration_ms`` and ``recording``.
Text is passed through ``redact`` (the cookies) before it is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import AuditConfig

EVENTS = frozenset(
    {
        "auth_ok", "auth_fail", "session_start", "session_end", "command", "denied",
        "trace_start", "trace_stop", "refused_channel", "config_reload", "retention",
        "recording_failed", "server_start", "server_stop",
    }
)  # fmt: skip


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditError(Exception):
    """The audit log cannot be written."""


class AuditLog:
    def __init__(self, config: AuditConfig, redact: Callable[[str], str] | None = None) -> None:
        self.path = Path(config.path)
        self._redact = redact or (lambda text: text)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditError(f"cannot open audit log {self.path}: {exc.strerror}") from None
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event; returns the record as written."""
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        record: dict[str, Any] = {"ts": now_rfc3339(), "event": event, **fields}
        line = self._redact(json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str))
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as exc:
            raise AuditError(f"cannot write audit log {self.path}: {exc.strerror}") from None
        return record

    def close(self) -> None:
        self._file.close()
