"""Session recordings: one signed asciicast v2 file per session (SPEC "Recording and audit").

Header: ``version``, ``width``, ``height``, ``timestamp``, ``env`` and a
``beamgate`` object (user, session id, client address, key fingerprint, the
recording key's fingerprint). Events: ``[t, "o", data]`` for what the user's
terminal received, ``[t, "i", data]`` for what they typed, ``[t, "r",
"COLSxROWS"]`` for resizes, ``[t, "m", label]`` markers, and ``[t, "c", ...]``
signed checkpoints (:mod:`gateway.recording_chain`; ``docs/recording-format.md``).

Theory of operation:

- Each record is one ``os.write`` of one complete line on an unbuffered file
  descriptor, so a gateway killed at any instant leaves a valid asciicast
  file ending with the last event written. A failed or partial write is cut
  back (``ftruncate``) to the last complete line and the recorder fails.
- A checkpoint is signed at most ``checkpoint_interval`` seconds after the
  first unsigned record: from an asyncio timer when the recorder was started
  inside a running loop, and in any case on the next record once the interval
  has passed. Checkpoints are ``fdatasync``-ed. ``close()`` writes the final
  checkpoint; a recording without one was not closed (a crash).
- Failure is loud and early: a write error, a full disk or a recording file
  deleted under us (directory removed) raises :class:`RecordingError` from the
  call that hit it and from every later call, is reported to ``on_error``
  when a timer hit it, and is audited (``recording_failed``). The session
  layer records *before* it sends, so nothing reaches a user unrecorded.
- Redaction (SPEC rule 1): every text goes through ``redact``. With
  ``pending`` (e.g. ``Cookie.pending_prefix``), the tail of a stream that
  could begin a secret is held back until the next chunk of the same stream
  decides (or a marker, or the end), so a cookie split across keystrokes or
  writes is still replaced.

A recorder is used from one thread (the session's event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .audit import AuditError, AuditLog
from .config import RecordingConfig
from .recording_chain import (
    Checkpoint,
    RecordingKeyError,
    chain_next,
    chain_start,
    encode_record,
    export_public_key,
    fingerprint,
    load_or_create_signing_key,
    short_digest,
)

log = logging.getLogger(__name__)

Redact = Callable[[str], str]
Pending = Callable[[str], int]
SUFFIX = ".cast"


class RecordingError(Exception):
    """A recording cannot be written: the session must not go on unrecorded."""


@dataclass(frozen=True)
class RecordingSummary:
    """What :meth:`Recorder.close` leaves behind (for the ``session_end`` audit event)."""

    file_name: str
    records: int
    bytes: int
    checkpoints: int
    duration: float
    complete: bool  # the final checkpoint was written
    error: str | None


class Recorder:
    """Writes one session's recording; created by :meth:`RecordingStore.start`."""

    def __init__(
        self,
        path: Path,
        header: dict[str, Any],
        *,
        key: Ed25519PrivateKey,
        key_id: str,
        interval: float,
        redact: Redact,
        pending: Pending | None = None,
        audit: AuditLog | None = None,
        audit_fields: dict[str, Any] | None = None,
        on_error: Callable[[RecordingError], None] | None = None,
        on_close: Callable[[Recorder], None] | None = None,
    ) -> None:
        self.path = path
        self._key, self._key_id, self._interval = key, key_id, interval
        self._redact, self._pending = redact, pending
        self._audit: AuditLog | None = None  # set once the file exists: the store audits failures before that
        self._audit_fields = audit_fields or {}
        self._on_error, self._on_close = on_error, on_close
        self._start = time.monotonic()
        self._held = {"o": "", "i": ""}
        self._error: str | None = None
        self._closed = False
        self._summary: RecordingSummary | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._unsigned_since: float | None = None
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self._fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise RecordingError(f"cannot create recording {path}: {exc.strerror}") from None
        self._fd_open = True
        line = (json.dumps(header, ensure_ascii=False) + "\n").encode("utf-8")
        self._offset = 0
        self._index = 0  # records written, header included
        self._checkpoints = 0
        try:
            self._write(line)
        except RecordingError:
            path.unlink(missing_ok=True)
            raise
        self._audit = audit
        self._chain = chain_start(line)
        self._first = 0  # the record the pending digests start with (header, then each checkpoint)
        self._digests = [short_digest(line)]
        self._index = 1

    # -- what the session layer calls ---------------------------------------------

    @property
    def file_name(self) -> str:
        return self.path.name

    @property
    def offset(self) -> int:
        """Bytes written so far: where the next event starts (for the audit log and ``replay``)."""
        return self._offset

    @property
    def failed(self) -> str | None:
        """Why the recording failed, or None."""
        return self._error

    def output(self, data: str) -> None:
        """Record what the user's terminal receives. Call it before sending."""
        self._stream("o", data)

    def input(self, data: str) -> None:
        """Record what the user typed."""
        self._stream("i", data)

    def resize(self, cols: int, rows: int) -> None:
        self._check()
        self._event("r", f"{int(cols)}x{int(rows)}")

    def marker(self, label: str) -> None:
        """An asciicast marker (players can jump to it), e.g. at the start of each command.

        Text held back until then is written first: it reached the terminal before the marker.
        """
        self._check()
        self._release_held()
        self._event("m", self._redact(label))

    def checkpoint(self) -> None:
        """Sign everything written so far now (normally done on a timer)."""
        self._check()
        if self._unsigned_since is not None:
            self._checkpoint(final=False)

    def close(self) -> RecordingSummary:
        """Flush held-back text, write the final checkpoint, close. Never raises; idempotent."""
        if self._summary is not None:
            return self._summary
        self._closed = True
        self._cancel_timer()
        if self._error is None:
            try:
                self._release_held()
                self._checkpoint(final=True)
            except RecordingError:
                pass  # recorded in self._error and audited
        self._close_fd()
        self._summary = RecordingSummary(
            file_name=self.file_name,
            records=self._index,
            bytes=self._offset,
            checkpoints=self._checkpoints,
            duration=self._now(),
            complete=self._error is None,
            error=self._error,
        )
        if self._on_close is not None:
            self._on_close(self)
        return self._summary

    # -- internals ------------------------------------------------------------------

    def _check(self) -> None:
        if self._error is not None:
            raise RecordingError(self._error)
        if self._closed:
            raise RecordingError(f"recording {self.path} is closed")

    def _now(self) -> float:
        return round(time.monotonic() - self._start, 6)

    def _stream(self, kind: str, data: str) -> None:
        self._check()
        text = self._redact(self._held[kind] + data)
        keep = self._pending(text) if self._pending is not None and text else 0
        self._held[kind] = text[len(text) - keep :] if keep else ""
        if len(text) > keep:
            self._event(kind, text[: len(text) - keep])

    def _release_held(self) -> None:
        for kind, held in self._held.items():
            if held:
                self._held[kind] = ""
                self._event(kind, held)

    def _event(self, kind: str, data: str) -> None:
        self._append(encode_record(self._now(), kind, _valid_unicode(data)))
        now = time.monotonic()
        if self._unsigned_since is None:
            self._unsigned_since = now
            if self._loop is not None and not self._loop.is_closed():
                self._timer = self._loop.call_later(self._interval, self._on_timer)
        elif now - self._unsigned_since >= self._interval:
            self._checkpoint(final=False)

    def _append(self, line: bytes) -> None:
        self._write(line)
        self._chain = chain_next(self._chain, line)
        self._digests.append(short_digest(line))
        self._index += 1

    def _checkpoint(self, *, final: bool) -> None:
        cp = Checkpoint(
            seq=self._checkpoints + 1,
            t=self._now(),
            first=self._first,
            count=self._index,
            end=self._offset,
            chain=self._chain,
            digests=tuple(self._digests),
            final=final,
            key=self._key_id,
        ).signed_by(self._key)
        line = cp.record()
        self._write(line)
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            self._fail(f"cannot sync recording {self.path}: {exc.strerror}")
        self._chain = chain_next(self._chain, line)
        self._first, self._digests = self._index, [short_digest(line)]
        self._index += 1
        self._checkpoints += 1
        self._unsigned_since = None
        self._cancel_timer()

    def _write(self, line: bytes) -> None:
        if self._error is not None:
            raise RecordingError(self._error)
        try:
            if os.fstat(self._fd).st_nlink == 0:
                raise OSError(errno.ENOENT, "the file was deleted (recording directory removed?)")
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._offset)  # keep the file valid up to the last whole line
            self._fail(f"cannot write recording {self.path}: {exc.strerror or exc}")
        self._offset += len(line)

    def _fail(self, message: str) -> None:
        """Record the failure, audit it once, and raise."""
        if self._error is None:
            self._error = message
            log.error("%s", message)
            self._cancel_timer()
            self._close_fd()
            if self._audit is not None:
                audit_failure(self._audit, self._audit_fields, "write", self.file_name, message)
        raise RecordingError(self._error)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed or self._error is not None or self._unsigned_since is None:
            return
        try:
            self._checkpoint(final=False)
        except RecordingError as exc:
            if self._on_error is not None:
                self._on_error(exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close_fd(self) -> None:
        if self._fd_open:
            self._fd_open = False
            os.close(self._fd)


def audit_failure(audit: AuditLog, who: dict[str, Any], stage: str, recording: str | None, error: str) -> None:
    """One ``recording_failed`` event; ``stage`` is ``start`` (the session is refused) or ``write`` (it ends)."""
    try:
        audit.emit("recording_failed", **who, stage=stage, recording=recording, error=error)
    except AuditError as exc:
        log.error("cannot audit the recording failure: %s", exc)


def _valid_unicode(text: str) -> str:
    """``text`` with lone surrogates replaced, so that it encodes as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class RecordingStore:
    """The recording directory and the gateway's signing key.

    ``RecordingStore(config, redact, pending=..., audit=...)`` creates the
    directory (0700) and the key (0600) if missing and raises
    :class:`RecordingError` when either is unusable, so the gateway refuses to
    start rather than serve sessions it cannot record.
    """

    def __init__(
        self,
        config: RecordingConfig,
        redact: Redact | None = None,
        *,
        pending: Pending | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.config = config
        self.dir = Path(config.dir)
        self._redact: Redact = redact or (lambda text: text)
        self._pending = pending
        self._audit = audit
        self._active: set[Path] = set()
        _ensure_private_dir(self.dir)
        try:
            self._key = load_or_create_signing_key(Path(config.signing_key))
        except RecordingKeyError as exc:
            raise RecordingError(str(exc)) from None
        self.key_id = fingerprint(self.public_key)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def public_key_line(self) -> str:
        """The OpenSSH public key line reviewers verify recordings with."""
        return export_public_key(self.public_key)

    def start(
        self,
        *,
        session_id: str,
        user: str,
        client: str,
        key_fingerprint: str,
        width: int = 80,
        height: int = 24,
        term: str = "xterm",
        command: str | None = None,
        on_error: Callable[[RecordingError], None] | None = None,
    ) -> Recorder:
        """Open a new recording; raises :class:`RecordingError` if it cannot be written.

        ``on_error`` is called when a timer-driven checkpoint fails (no session
        call is on the stack then): the session should end.
        """
        started = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
        stem = f"{stamp}-{_UNSAFE_NAME.sub('_', user)}-{_UNSAFE_NAME.sub('_', session_id)}"
        name, n = f"{stem}{SUFFIX}", 1
        while (self.dir / name).exists():  # a session id reused within the second (e.g. after a restart)
            n += 1
            name = f"{stem}-{n}{SUFFIX}"
        r = self._redact
        header: dict[str, Any] = {
            "version": 2,
            "width": width if width > 0 else 80,  # exec without a pty: no size; play it as 80x24
            "height": height if height > 0 else 24,
            "timestamp": int(started),
            "env": {"TERM": r(term), "SHELL": "beamgate"},
        }
        if command is not None:
            header["command"] = r(command)
        header["beamgate"] = {
            "format": 1,
            "user": r(user),
            "session": r(session_id),
            "client": r(client),
            "key_fingerprint": r(key_fingerprint),
            "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "recording_key": self.key_id,
        }
        who = {"user": user, "session": session_id, "client": client, "key_fingerprint": key_fingerprint}
        try:
            self._check_free_space()
            recorder = Recorder(
                self.dir / name,
                header,
                key=self._key,
                key_id=self.key_id,
                interval=self.config.checkpoint_interval,
                redact=self._redact,
                pending=self._pending,
                audit=self._audit,
                audit_fields=who,
                on_error=on_error,
                on_close=lambda rec: self._active.discard(rec.path),
            )
        except RecordingError as exc:
            if self._audit is not None:
                audit_failure(self._audit, who, "start", name, str(exc))
            raise
        self._active.add(recorder.path)
        return recorder

    async def keep_retention(self, every: float = 3600.0) -> None:
        """Sweep now, then every ``every`` seconds, until cancelled (the server runs it as a task)."""
        while True:
            try:
                self.sweep_retention()
            except AuditError as exc:
                log.error("retention sweep stopped: %s", exc)
            await asyncio.sleep(every)

    def _check_free_space(self) -> None:
        try:
            st = os.statvfs(self.dir)
        except OSError as exc:
            raise RecordingError(f"recording directory {self.dir} is unusable: {exc.strerror}") from None
        free = st.f_bavail * st.f_frsize
        if free < self.config.min_free_space:
            raise RecordingError(
                f"recording directory {self.dir} has {free} bytes free, "
                f"less than recording.min_free_space ({self.config.min_free_space})"
            )

    def sweep_retention(self, *, now: float | None = None) -> list[Path]:
        """Remove recordings older than ``retention_days`` (by last write) and audit each (``retention``).

        Open recordings are never removed. Raises ``AuditError`` (after the
        removal it could not audit) so that no further file goes unaudited.
        """
        days = self.config.retention_days
        cutoff = (time.time() if now is None else now) - days * 86400
        removed: list[Path] = []
        for path in sorted(self.dir.glob(f"*{SUFFIX}")):
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if path in self._active or not stat.S_ISREG(st.st_mode) or st.st_mtime >= cutoff:
                continue
            who = _header_identity(path)
            try:
                path.unlink()
            except OSError as exc:
                log.warning("retention: cannot remove %s: %s", path, exc.strerror)
                continue
            removed.append(path)
            if self._audit is not None:
                ended = datetime.fromtimestamp(st.st_mtime, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
                self._audit.emit(
                    "retention", **who, recording=path.name, last_write=ended, bytes=st.st_size, retention_days=days
                )
        return removed


def _header_identity(path: Path) -> dict[str, Any]:
    """User and session from a recording's header, for the retention event (best effort)."""
    try:
        with path.open("rb") as f:
            header = json.loads(f.readline(64 * 1024))
        meta = header["beamgate"]
        return {"user": meta.get("user"), "session": meta.get("session")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {"user": None, "session": None}


def _ensure_private_dir(path: Path) -> None:
    """Create ``path`` mode 0700, or tighten an existing one we own; refuse one owned by someone else."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = path.stat()
    except OSError as exc:
        raise RecordingError(f"cannot create recording directory {path}: {exc.strerror}") from None
    if st.st_uid != os.geteuid():
        raise RecordingError(f"recording directory {path} is owned by uid {st.st_uid}, not the gateway's user")
    if st.st_mode & 0o077:
        try:
            path.chmod(0o700)
        except OSError as exc:
            raise RecordingError(f"cannot make recording directory {path} private: {exc.strerror}") from None
        log.warning("recording directory %s was readable by others; set to mode 0700", path)
