"""Playing a recording back in the terminal (``beamgate replay``).

Replay writes the ``"o"`` events, exactly as recorded, with their original
timing divided by ``speed`` (pauses optionally capped at ``idle_limit``).
Nothing is sanitized here: the recording holds what the user's terminal
received, which the session layer already sanitized, and the reviewer must
see exactly that (``beamgate replay`` verifies the signatures first when it
has a key to trust, so a changed file does not reach the terminal). Input,
resize, marker and checkpoint records are not played.

``from_offset`` jumps to the byte offset of an event, as the audit log gives
it for each command (``offset``): playback clears the screen and starts
there. An offset that is not the start of an event line is refused with the
nearest valid offsets, rather than guessed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CLEAR_SCREEN = b"\x1b[H\x1b[2J"


class ReplayError(Exception):
    """The recording cannot be played as asked; the message says why."""


@dataclass(frozen=True)
class Frame:
    t: float
    data: bytes


def frames(path: Path, from_offset: int = 0) -> Iterator[Frame]:
    """The output events of ``path`` from the event starting at byte ``from_offset``."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror}") from None
    with f:
        header = f.readline()
        try:
            ok = json.loads(header).get("version") == 2
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            raise ReplayError(f"{path} is not an asciicast v2 recording")
        if from_offset:
            _seek_event(f, path, from_offset, len(header))
        position = f.tell()
        for raw in f:
            try:
                t, kind, data = json.loads(raw)
                if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
                    raise TypeError
            except (ValueError, TypeError):
                if not raw.endswith(b"\n"):
                    return  # a torn last line: play what is whole
                raise ReplayError(f"{path}: not an asciicast event at byte {position}") from None
            if kind == "o" and isinstance(data, str):
                yield Frame(float(t), data.encode("utf-8", "surrogateescape"))
            position += len(raw)


def _seek_event(f: BinaryIO, path: Path, offset: int, header_len: int) -> None:
    size = path.stat().st_size
    if offset < header_len or offset >= size:
        raise ReplayError(f"offset {offset} is outside the events of {path} (bytes {header_len} to {size - 1})")
    f.seek(offset - 1)
    if f.read(1) == b"\n":
        return
    f.seek(header_len)
    before = header_len
    for raw in f:
        after = before + len(raw)
        if after > offset:
            raise ReplayError(f"offset {offset} is inside an event of {path}; events start at {before} and {after}")
        before = after


def play(
    frames: Iterator[Frame],
    out: BinaryIO,
    *,
    speed: float = 1.0,
    idle_limit: float | None = None,
    clear: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write ``frames`` to ``out`` in real time (scaled by ``speed``); returns the bytes written."""
    if speed <= 0:
        raise ReplayError("--speed must be greater than 0")
    written = 0
    if clear:
        out.write(CLEAR_SCREEN)
    start_wall = time.monotonic()
    played = 0.0  # recording time already played, after idle capping
    previous: float | None = None
    for frame in frames:
        gap = 0.0 if previous is None else max(0.0, frame.t - previous)
        previous = frame.t
        played += min(gap, idle_limit) if idle_limit is not None else gap
        delay = played / speed - (time.monotonic() - start_wall)
        if delay > 0:
            sleep(delay)
        out.write(frame.data)
        out.flush()
        written += len(frame.data)
    return written
