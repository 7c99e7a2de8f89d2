"""The shell without a pty (``ssh -T``, or commands piped in): one line in, its output out.

No line editing and no escape sequences: the client echoes and edits
locally, and a plain prompt is printed before each line. Lines are run in
order as they arrive; end of input ends the session after the last one.
"""

from __future__ import annotations

import asyncio

from commands.context import Identity
from commands.grammar import MAX_LINE

from .dispatch import Dispatcher
from .session import Terminal, TerminalOutput
from .session_state import SessionState
from .shell_common import Foreground, banner, plain_prompt


class LineShell:
    def __init__(self, terminal: Terminal, dispatcher: Dispatcher, state: SessionState, identity: Identity) -> None:
        self.terminal = terminal
        self.state = state
        self.identity = identity
        self.foreground = Foreground(dispatcher, TerminalOutput(terminal, errors_to_stderr=False))
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._buffer = ""

    async def run(self) -> int:
        self.terminal.write(banner(self.identity, self.state))
        while not self.state.exit_requested:
            self.terminal.write(plain_prompt(self.identity, self.state))
            line = await self._lines.get()
            if line is None:
                self.terminal.write("\n")
                break
            await self.foreground.run(line)
        return 0

    def feed(self, data: str) -> None:
        if "\x03" in data:
            self.foreground.interrupt()
            data = data.replace("\x03", "")
        self._buffer += data
        while "\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition("\n")
            self._lines.put_nowait(line.rstrip("\r"))
        if len(self._buffer) > MAX_LINE:
            # Too long to be a command: hand it over now so the parser rejects it with a clear message.
            self._lines.put_nowait(self._buffer)
            self._buffer = ""

    def eof(self) -> None:
        if self._buffer:
            self._lines.put_nowait(self._buffer)
            self._buffer = ""
        self._lines.put_nowait(None)

    def resized(self) -> None:
        pass
