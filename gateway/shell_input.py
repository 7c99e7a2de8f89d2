"""The user's input on its way into a shell: bounded, never blocking the event loop.

Every session shares one event loop, so nothing on the input path may block
it or buffer without bound:

* :class:`InputGate` is the backpressure: while more than a limit of the
  user's input waits inside the gateway, the channel stops reading
  (``pause_reading``); SSH flow control then stops the client sending. It
  reads again once half of it is consumed.
* :class:`PipeFeeder` writes input into the pipe prompt_toolkit reads its
  keys from. The pipe is non-blocking: what it cannot take at once waits in
  a buffer drained by ``loop.add_writer`` as prompt_toolkit reads (it does
  not read while a command runs), and that buffer counts against the gate.
* :class:`LineGuard` caps what one line sends into prompt_toolkit, whose
  line editing costs up to a millisecond a key: past its limit the rest of
  the line is dropped, and the line's Enter goes on preceded by
  :data:`OVERFLOW`, so that the prompt refuses the line, saying how long it
  was, instead of running what was left of it.
* :class:`LineQueue` splits input into lines for the shell without a pty,
  with the same cap on a line and the same gate on what waits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

#: Characters of input that may wait in the gateway before the channel stops reading.
INPUT_LIMIT = 256 * 1024
#: Sent to prompt_toolkit (as Ctrl-\, bound to nothing else) before the Enter of a line that lost characters.
OVERFLOW = "\x1c"
#: A terminal's bracketed paste (prompt_toolkit turns it on): Enter inside a paste does not end the line.
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
_ENTER = "\r\n"
_CTRL_C = "\x03"


class InputGate:
    """Pauses a channel's reading while more than ``limit`` characters of input wait; resumes at half."""

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None], limit: int = INPUT_LIMIT) -> None:
        self._pause = pause
        self._resume = resume
        self.limit = limit
        self.paused = False
        self._waiting: dict[str, int] = {}

    def waiting(self, source: str, count: int) -> None:
        """``count`` characters now wait in ``source`` (each holder of input reports its own)."""
        self._waiting[source] = count
        total = sum(self._waiting.values())
        if not self.paused and total > self.limit:
            self.paused = True
            self._pause()
        elif self.paused and total <= self.limit // 2:
            self.paused = False
            self._resume()


class PipeFeeder:
    """Writes into prompt_toolkit's input pipe without blocking; the rest waits, gated, until it drains."""

    def __init__(self, gate: InputGate) -> None:
        self.gate = gate
        self._buffer = bytearray()
        self._fd: int | None = None
        self._draining = False
        self._detached = False

    def attach(self, fd: int) -> None:
        """Start writing to ``fd`` (the pipe's write end, made non-blocking); input so far goes first."""
        os.set_blocking(fd, False)
        self._fd = fd
        self._flush()

    def detach(self) -> None:
        """Stop writing (before the pipe closes; the shell has ended): what is left, or comes, is dropped."""
        if self._draining and self._fd is not None:
            asyncio.get_running_loop().remove_writer(self._fd)
        self._fd, self._draining, self._detached = None, False, True
        self._buffer.clear()
        self.gate.waiting("pipe", 0)

    def write(self, data: str) -> None:
        """Queue ``data`` for the pipe (kept until :meth:`attach` if it is not there yet)."""
        if not self._detached:
            self._buffer += data.encode("utf-8")
            self._flush()

    def _flush(self) -> None:
        if self._fd is not None and self._buffer:
            # Full when prompt_toolkit is not reading (a command runs): add_writer waits for it.
            with contextlib.suppress(BlockingIOError):
                del self._buffer[: os.write(self._fd, self._buffer)]
        if self._fd is not None:
            if self._buffer and not self._draining:
                asyncio.get_running_loop().add_writer(self._fd, self._flush)
                self._draining = True
            elif not self._buffer and self._draining:
                asyncio.get_running_loop().remove_writer(self._fd)
                self._draining = False
        self.gate.waiting("pipe", len(self._buffer))


class LineGuard:
    """Passes at most ``limit`` characters of each line on; counts the rest, which it drops.

    A line ends at Enter (CR or LF) outside a bracketed paste, or at Ctrl-C
    (prompt_toolkit discards the line). The Enter of a line that lost
    characters is preceded by :data:`OVERFLOW`, and the number lost is
    appended to :attr:`lost`, in order, for the prompt to take when it
    meets the mark. The user's own Ctrl-\\ is dropped, so that the mark is
    always ours. Paste markers are passed on (one that closes a paste
    prompt_toolkit saw open, even while dropping) and not counted.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Characters each overflowing line lost, oldest first: one per OVERFLOW passed on.
        self.lost: collections.deque[int] = collections.deque()
        self._passed = 0  # characters of the current line passed on
        self._dropped = 0  # ... and dropped
        self._paste = False  # inside a paste in the input
        self._paste_open = False  # prompt_toolkit saw a paste start and not yet its end
        # The start of a paste marker seen so far: counted once it turns out not to be one.
        self._held = ""
        self._held_passed = False  # passed on or dropped (a marker's characters share one fate)

    def filter(self, data: str) -> str:
        """What of ``data`` to pass on to prompt_toolkit."""
        out: list[str] = []
        for ch in data:
            if ch == OVERFLOW:
                continue
            if not self._paste and ch in _ENTER + _CTRL_C:
                self._settle()
                if self._dropped and ch != _CTRL_C:  # Ctrl-C discards the line: nothing to refuse
                    out.append(OVERFLOW)
                    self.lost.append(self._dropped)
                out.append(ch)
                self._passed = self._dropped = 0
                continue
            marker = PASTE_END if self._paste else PASTE_START
            if self._held and ch != marker[len(self._held)]:
                self._settle()  # not a marker after all
            keep = self._held_passed if self._held else self._dropped == 0 and self._passed < self.limit
            if keep:
                out.append(ch)
            if self._held or ch == marker[0]:
                self._held_passed = keep
                self._held += ch
                if self._held == marker:
                    self._marker(kept=keep, out=out)
            elif keep:
                self._passed += 1
            else:
                self._dropped += 1
        return "".join(out)

    def _settle(self) -> None:
        """Count what was held as a possible marker as the line's own characters."""
        if self._held_passed:
            self._passed += len(self._held)
        else:
            self._dropped += len(self._held)
        self._held = ""

    def _marker(self, *, kept: bool, out: list[str]) -> None:
        """A whole paste marker: not part of the line, but prompt_toolkit must see its pastes close."""
        self._held = ""
        self._paste = not self._paste
        if self._paste:
            self._paste_open = kept  # a paste start dropped whole never reached prompt_toolkit
        elif self._paste_open:
            if not kept:
                out.append(PASTE_END)  # prompt_toolkit waits for it; ours was dropped with the rest
            self._paste_open = False


@dataclass(frozen=True)
class Line:
    """A line for the shell: its first characters and how many more were cut off (it must be refused)."""

    text: str
    dropped: int = 0


class LineQueue:
    """Input split into lines (LF, CR LF), each at most ``limit`` characters kept; gated while many wait."""

    def __init__(self, gate: InputGate, limit: int) -> None:
        self.gate = gate
        self.limit = limit
        self._lines: collections.deque[Line | None] = collections.deque()
        self._queued = 0
        self._partial = ""
        self._dropped = 0
        self._ready = asyncio.Event()

    def feed(self, data: str) -> None:
        while data:
            head, newline, data = data.partition("\n")
            if newline:
                head = head.removesuffix("\r")
            room = self.limit - len(self._partial)
            self._partial += head[:room]
            self._dropped += max(len(head) - room, 0)
            if newline:
                self._put(Line(self._partial.removesuffix("\r"), self._dropped))
                self._partial, self._dropped = "", 0
        self._report()

    def eof(self) -> None:
        if self._partial or self._dropped:
            self._put(Line(self._partial, self._dropped))
            self._partial, self._dropped = "", 0
        self._lines.append(None)
        self._ready.set()

    async def get(self) -> Line | None:
        """The next line; ``None`` at the end of input."""
        while not self._lines:
            self._ready.clear()
            await self._ready.wait()
        line = self._lines.popleft()
        if line is not None:
            self._queued -= len(line.text)
            self._report()
        return line

    def _put(self, line: Line) -> None:
        self._lines.append(line)
        self._queued += len(line.text)
        self._ready.set()

    def _report(self) -> None:
        self.gate.waiting("lines", self._queued + len(self._partial))
