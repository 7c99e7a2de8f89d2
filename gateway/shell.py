"""The interactive shell: prompt_toolkit over the SSH channel (sessions with a pty).

prompt_toolkit reads keys from a pipe the session feeds with what the
client sends, and draws through a VT100 output whose ``stdout`` is the
recorded :class:`~gateway.session.Terminal`; its size is the channel's
window size, updated on every resize. The prompt shows the user and the
current node; Tab completes from the command registry
(:mod:`gateway.shell_completion`); Up/Down walk this session's history.

Each line runs in the foreground (:class:`~gateway.shell_common.Foreground`)
outside the prompt: while it runs, Ctrl-C cancels it and its remote work,
and other keys wait for the next prompt. Ctrl-C at the prompt clears the
line; Ctrl-D on an empty line or ``exit`` leaves.

Input reaches the pipe through :mod:`gateway.shell_input`: never a blocking
write (prompt_toolkit reads the pipe on this same event loop, and not at all
while a command runs), at most :data:`~gateway.shell_input.INPUT_LIMIT`
waiting before the channel stops reading, and at most :data:`KEYS_PER_LINE`
characters of one line passed on. A line is also cut to
:data:`~commands.grammar.MAX_LINE` in the editor itself (a yank can double
it). A line that lost characters either way is refused when entered, with
its length, and never run.
"""

from __future__ import annotations

from typing import Any, TextIO, cast

from prompt_toolkit import PromptSession
from prompt_toolkit.application.current import AppSession, create_app_session
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Size
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input.posix_pipe import PosixPipeInput
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys
from prompt_toolkit.output.vt100 import Vt100_Output
from prompt_toolkit.styles import Style

from commands.context import Identity
from commands.grammar import MAX_LINE

from .dispatch import Dispatcher, safe_text
from .session import Terminal, TerminalOutput
from .session_state import SessionState
from .shell_common import Foreground, banner, prompt_parts
from .shell_completion import RegistryCompleter
from .shell_input import InputGate, LineGuard, PipeFeeder

STYLE = Style.from_dict({"user": "ansigreen bold", "node": "ansicyan", "mark": ""})
#: Characters of one line (typed or pasted, editing keys too) passed on to prompt_toolkit: each costs it
#: up to a millisecond, in which every other session waits.
KEYS_PER_LINE = MAX_LINE


class _TerminalStream:
    """The file-like ``stdout`` prompt_toolkit's VT100 output writes to."""

    encoding = "utf-8"

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal

    def write(self, data: str) -> int:
        self.terminal.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


class Shell:
    def __init__(
        self,
        terminal: Terminal,
        dispatcher: Dispatcher,
        state: SessionState,
        identity: Identity,
        term_type: str,
        gate: InputGate,
    ) -> None:
        self.terminal = terminal
        self.dispatcher = dispatcher
        self.state = state
        self.identity = identity
        self.term_type = term_type
        self.foreground = Foreground(dispatcher, TerminalOutput(terminal, errors_to_stderr=False))
        self.completer = RegistryCompleter(dispatcher.registry, lambda: state.policy)
        dispatcher.confirm = self._confirm
        self._guard = LineGuard(KEYS_PER_LINE)
        self._feeder = PipeFeeder(gate)
        #: Characters the line being edited lost (to the guard or the editor's cap).
        self._dropped = 0
        self._keys = KeyBindings()
        self._keys.add(Keys.ControlBackslash)(self._overflowed)  # what prompt_toolkit makes of OVERFLOW
        self._app_session: AppSession | None = None
        self._confirming = False

    def _size(self) -> Size:
        columns, rows = self.terminal.size()
        return Size(rows=rows, columns=columns)

    def _message(self) -> FormattedText:
        user, node = prompt_parts(self.identity, self.state)
        return FormattedText([("class:user", user), ("class:mark", ":"), ("class:node", node), ("class:mark", "> ")])

    def _prompt_session(self, **options: Any) -> PromptSession[str]:
        """A prompt whose line is capped at MAX_LINE and which takes the guard's OVERFLOW marks."""
        session: PromptSession[str] = PromptSession(key_bindings=self._keys, **options)
        session.default_buffer.on_text_changed += self._cap
        return session

    def _cap(self, buffer: Buffer) -> None:
        if len(buffer.text) > MAX_LINE:
            self._dropped += len(buffer.text) - MAX_LINE
            buffer.text = buffer.text[:MAX_LINE]

    def _overflowed(self, event: KeyPressEvent) -> None:
        if self._guard.lost:
            self._dropped += self._guard.lost.popleft()

    async def run(self) -> int:
        stream = cast(TextIO, _TerminalStream(self.terminal))
        output = Vt100_Output(stream, self._size, term=self.term_type, enable_cpr=False)
        with PosixPipeInput.create() as pipe:
            self._feeder.attach(pipe.pipe.write_fd)  # with what arrived before
            try:
                with create_app_session(input=pipe, output=output) as app_session:
                    self._app_session = app_session
                    prompt = self._prompt_session(
                        history=InMemoryHistory(), completer=self.completer, complete_while_typing=False, style=STYLE
                    )
                    self.terminal.write(banner(self.identity, self.state))
                    while not self.state.exit_requested:
                        self._dropped = 0
                        try:
                            line = await prompt.prompt_async(self._message)
                        except KeyboardInterrupt:
                            continue
                        except EOFError:
                            break
                        await self.foreground.run(line, dropped=self._dropped)
            finally:
                self._feeder.detach()
        return 0

    async def _confirm(self, question: str) -> str | None:
        """Ask the user to type an answer while a command waits (``kill`` asks for the pid).

        prompt_toolkit cuts the lines of a prompt above its input line at the terminal's
        width, so those lines (what will happen, its cost) are printed first, in full.
        """
        *above, last = question.split("\n")
        if above:
            self.terminal.write(safe_text("\n".join(above)) + "\n")
        self._confirming = True
        self._dropped = 0
        try:
            answer = await self._prompt_session().prompt_async(last)
        except (KeyboardInterrupt, EOFError):
            return None
        finally:
            self._confirming = False
        if self._dropped:
            self.terminal.write(f"usage: answer too long ({len(answer) + self._dropped} characters); not taken\n")
            return None
        return answer

    def feed(self, data: str) -> None:
        if self.foreground.busy and not self._confirming and "\x03" in data:
            self.foreground.interrupt()
            data = data.replace("\x03", "")
        data = self._guard.filter(data)
        if data:
            self._feeder.write(data)

    def eof(self) -> None:
        self.feed("\x04")

    def resized(self) -> None:
        app = self._app_session.app if self._app_session is not None else None
        if app is not None and app.is_running:
            app._on_resize()  # what prompt_toolkit runs on SIGWINCH: redraw at the new size
