"""The shell without a pty (``ssh -T``, or commands piped in): one line in, its output out.

No line editing and no escape sequences: the client echoes and edits
locally, and a plain prompt is printed before each line. Lines are run in
order as they arrive; end of input ends the session after the last one.

Lines wait in a :class:`~gateway.shell_input.LineQueue`: while more than
:data:`~gateway.shell_input.INPUT_LIMIT` characters wait (commands piped in
faster than they run), the channel stops reading. A line longer than
:data:`~commands.grammar.MAX_LINE` keeps its first characters only and is
refused, with its length, when its turn comes: nothing of it runs.
"""

from __future__ import annotations

from commands.context import Identity
from commands.grammar import MAX_LINE

from .dispatch import Dispatcher
from .session import Terminal, TerminalOutput
from .session_state import SessionState
from .shell_common import Foreground, banner, plain_prompt
from .shell_input import InputGate, LineQueue


class LineShell:
    def __init__(
        self, terminal: Terminal, dispatcher: Dispatcher, state: SessionState, identity: Identity, gate: InputGate
    ) -> None:
        self.terminal = terminal
        self.state = state
        self.identity = identity
        self.foreground = Foreground(dispatcher, TerminalOutput(terminal, errors_to_stderr=False))
        self._lines = LineQueue(gate, MAX_LINE)

    async def run(self) -> int:
        self.terminal.write(banner(self.identity, self.state))
        while not self.state.exit_requested:
            self.terminal.write(plain_prompt(self.identity, self.state))
            line = await self._lines.get()
            if line is None:
                self.terminal.write("\n")
                break
            await self.foreground.run(line.text, dropped=line.dropped)
        return 0

    def feed(self, data: str) -> None:
        if "\x03" in data:
            self.foreground.interrupt()
            data = data.replace("\x03", "")
        self._lines.feed(data)

    def eof(self) -> None:
        self._lines.eof()

    def resized(self) -> None:
        pass
