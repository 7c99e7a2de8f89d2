"""Session recordings: one asciicast v2 file per session (SPEC "Recording and audit").

Header: ``version``, ``width``, ``height``, ``timestamp``, ``env`` and a
``beamgate`` object (user, session id, client address, key fingerprint).
Events: ``[t, "o", data]`` for what the user's terminal received,
``[t, "i", data]`` for what they typed, ``[t, "r", "COLSxROWS"]`` for resizes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import RecordingConfig


class RecordingError(Exception):
    """A recording cannot be written: the session must not go on unrecorded."""


class Recorder:
    def __init__(self, path: Path, header: dict[str, Any], redact: Callable[[str], str]) -> None:
        self.path = path
        self._redact = redact
        self._start = time.monotonic()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise RecordingError(f"cannot create recording {path}: {exc.strerror}") from None
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self._offset = 0
        self._write(json.dumps(header, ensure_ascii=False))

    @property
    def file_name(self) -> str:
        return self.path.name

    @property
    def offset(self) -> int:
        """Bytes written so far: where the next event starts (for the audit log)."""
        return self._offset

    def _write(self, line: str) -> None:
        data = line + "\n"
        try:
            self._file.write(data)
            self._file.flush()
        except (OSError, ValueError) as exc:
            raise RecordingError(f"cannot write recording {self.path}: {exc}") from None
        self._offset += len(data.encode("utf-8"))

    def _event(self, kind: str, data: str) -> None:
        t = round(time.monotonic() - self._start, 6)
        self._write(json.dumps([t, kind, self._redact(data)], ensure_ascii=False))

    def output(self, data: str) -> None:
        self._event("o", data)

    def input(self, data: str) -> None:
        self._event("i", data)

    def resize(self, cols: int, rows: int) -> None:
        self._event("r", f"{cols}x{rows}")

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class RecordingStore:
    def __init__(self, config: RecordingConfig, redact: Callable[[str], str] | None = None) -> None:
        self.config = config
        self.dir = Path(config.dir)
        self._redact = redact or (lambda text: text)
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise RecordingError(f"cannot create recording directory {self.dir}: {exc.strerror}") from None

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
    ) -> Recorder:
        started = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
        path = self.dir / f"{stamp}-{user}-{session_id}.cast"
        header: dict[str, Any] = {
            "version": 2,
            "width": width,
            "height": height,
            "timestamp": int(started),
            "env": {"TERM": term, "SHELL": "beamgate"},
            "beamgate": {
                "user": user,
                "session": session_id,
                "client": client,
                "key_fingerprint": key_fingerprint,
            },
        }
        if command is not None:
            header["command"] = self._redact(command)
        return Recorder(path, header, self._redact)
