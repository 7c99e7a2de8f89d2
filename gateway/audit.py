"""The audit log: JSON lines, append-only and hash-chained (SPEC "Recording and audit").

Every line is one ASCII JSON object::

    {"ts": RFC 3339 UTC, "event": ..., "user": ..., "session": ..., "client": ...,
     "key_fingerprint": ..., <event fields>, "seq": N, "prev": SHA256-hex}

``seq`` counts lines from 1 and ``prev`` is the SHA-256 of the previous line's
bytes (without its newline); the first line of a log has ``prev`` = 64 zeros
(:data:`GENESIS`). Changing, removing, inserting or reordering any line
breaks the chain at the next line (:mod:`gateway.audit_read` checks it).

Theory of operation: each :meth:`AuditLog.emit` takes an exclusive ``flock``
on the file, continues the chain from the file's last line (cached while no
one else wrote), appends its line in one ``write`` and releases the lock, so
several writers (processes) keep one valid chain. If the path stops naming
our file (rotated away by logrotate, or deleted) the log is reopened and the
new file's first line continues the old file's chain; if it cannot be
reopened (the path now names a directory, say), that emit fails and the
next one tries again. Every string, keys
included, goes through ``redact`` before encoding (SPEC rule 1), then the
whole line once more. A line that cannot be written raises
:class:`AuditError`: the caller must not go on unaudited. With
``[audit.syslog]`` each line is also forwarded, best effort, to a collector
(:mod:`gateway.syslog`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import AuditConfig

log = logging.getLogger(__name__)

EVENTS = frozenset(
    {
        "auth_ok", "auth_fail", "session_start", "session_end", "command", "denied",
        "trace_start", "trace_stop", "refused_channel", "config_reload", "retention",
        "recording_failed", "server_start", "server_stop", "access_revoked",
    }
)  # fmt: skip
IDENTITY = ("user", "session", "client", "key_fingerprint")
RESERVED = frozenset({"ts", "event", "seq", "prev"})
GENESIS = "0" * 64


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def line_hash(line: bytes) -> str:
    """The ``prev`` value of the line after ``line`` (``line`` without its newline)."""
    return hashlib.sha256(line).hexdigest()


class AuditError(Exception):
    """The audit log cannot be written."""


class AuditLog:
    def __init__(self, config: AuditConfig, redact: Callable[[str], str] | None = None) -> None:
        self.path = Path(config.path)
        self._redact = redact or (lambda text: text)
        self._tail: tuple[int, int, str] | None = None  # (file size, seq, hash) after our last line
        self._closed = False
        #: ``(seq, hash)`` a new file continues, while reopening it fails (retried at each emit).
        self._orphan: tuple[int, str] = (0, GENESIS)
        self._fd = self._open()
        self._forwarder = None
        if config.syslog is not None:
            from .syslog import SyslogForwarder

            self._forwarder = SyslogForwarder(config.syslog)

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event; returns the record as written (redacted, with ``seq`` and ``prev``)."""
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        if RESERVED & fields.keys():
            raise ValueError(f"audit fields {sorted(RESERVED & fields.keys())} are set by the log itself")
        record: dict[str, Any] = {"ts": now_rfc3339(), "event": event}
        for key in IDENTITY:
            record[key] = self._clean(fields.pop(key, None))
        for key, value in fields.items():
            record[self._redact(key)] = self._clean(value)
        try:
            with self._locked():
                seq, prev = self._last()
                record["seq"], record["prev"] = seq + 1, prev
                text = self._redact(json.dumps(record, ensure_ascii=True, separators=(",", ":")))
                line = text.encode("ascii", "backslashreplace")
                size = self._append(line + b"\n")
                self._tail = (size, seq + 1, line_hash(line))
        except OSError as exc:
            raise AuditError(f"cannot write audit log {self.path}: {exc.strerror or exc}") from None
        if self._forwarder is not None:
            self._forwarder.send(text, event=event, ts=record["ts"])
        written: dict[str, Any] = json.loads(text)
        return written

    def close(self) -> None:
        self._closed = True
        if self._forwarder is not None:
            self._forwarder.close()
            self._forwarder = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- internals ------------------------------------------------------------------

    def _clean(self, value: Any) -> Any:
        """JSON-ready with every string redacted (before encoding: a cookie may contain ``"`` or ``\\``)."""
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)  # NaN is not JSON
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, Mapping):
            return {self._redact(str(k)): self._clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._clean(v) for v in value]
        return self._redact(str(value))

    def _open(self) -> int:
        try:
            if not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise AuditError(f"cannot open audit log {self.path}: {exc.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise AuditError(f"audit log {self.path} is not a regular file")
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
            log.warning("audit log %s was readable by others; set to mode 0600", self.path)
        return fd

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._closed:
            raise AuditError(f"audit log {self.path} is closed")
        if self._fd < 0:
            self._reopen()  # the last reopening failed: try again
        else:
            self._follow_rotation()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _follow_rotation(self) -> None:
        """Reopen if the path no longer names our file; the new file continues our chain."""
        mine = os.fstat(self._fd)
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                return
        except FileNotFoundError:
            log.warning("audit log %s disappeared; starting a new file that continues its chain", self.path)
        self._orphan = self._last()
        os.close(self._fd)
        self._fd = -1  # never left naming a closed descriptor (the number may be reused)
        self._reopen()

    def _reopen(self) -> None:
        self._fd = self._open()  # AuditError if it cannot be opened: -1 stays, and the next emit retries
        self._tail = (0, *self._orphan)

    def _last(self) -> tuple[int, str]:
        """``(seq, hash)`` of the file's last line: what the next line continues."""
        size = os.fstat(self._fd).st_size
        if self._tail is not None and (self._tail[0] == size or size == 0):
            return self._tail[1], self._tail[2]  # ours, or truncated under us (copytruncate)
        if self._tail is not None and size < self._tail[0]:
            # Cut short under us, not emptied: continue our own chain, so that
            # ``audit --verify`` reports the lines that were removed.
            log.error("audit log %s shrank from %d to %d bytes under the gateway", self.path, self._tail[0], size)
            return self._tail[1], self._tail[2]
        if size == 0:
            return 0, GENESIS
        line, complete = _last_line(self._fd, size)
        if not complete:
            os.write(self._fd, b"\n")  # our line must not be glued to a torn one
        try:
            seq = json.loads(line)["seq"]
            if not isinstance(seq, int):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            seq = 0
        return seq, line_hash(line)

    def _append(self, data: bytes) -> int:
        before = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)  # leave no torn line behind
            raise
        return before + len(data)


def _last_line(fd: int, size: int) -> tuple[bytes, bool]:
    """The last line's bytes (without newline), and whether it ended with a newline."""
    complete = os.pread(fd, 1, size - 1) == b"\n"
    end = size - 1 if complete else size
    chunks: list[bytes] = []
    pos = end
    while pos > 0:
        step = min(8192, pos)
        chunk = os.pread(fd, step, pos - step)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            chunks.append(chunk[cut + 1 :])
            break
        chunks.append(chunk)
        pos -= step
    return b"".join(reversed(chunks)), complete
