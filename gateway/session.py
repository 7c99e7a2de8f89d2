"""One SSH session channel: recording, audit, limits, and the mode that runs in it.

A :class:`GatewaySession` is created when a client opens a session channel.
It accepts a pty, a shell or one exec command, and refuses subsystems
(``sftp``) with an audited ``refused_channel``. When the session starts it:

1. starts the recording (if that fails, the session is refused with a clear
   message: nothing runs unrecorded) and audits ``session_start``;
2. picks the mode: the interactive shell (:mod:`gateway.shell`) with a pty,
   the line-by-line shell (:mod:`gateway.shell_lines`) without one (``ssh
   -T``), or exec mode (:mod:`gateway.exec_mode`) for ``ssh host CMD``;
   a certificate's ``force-command`` replaces whatever was asked;
3. enforces the limits: ``idle_timeout`` (only the user's input resets it;
   it runs from the channel's opening, so a channel that never asks for a
   shell or a command is closed too, and an ended one accepts no request),
   ``max_session`` (from the start), a shutdown of the gateway, and the
   login being withdrawn (:mod:`gateway.server`); the user is told which
   one ended the session.

Input waiting in the gateway is bounded by one
:class:`~gateway.shell_input.InputGate` per channel: what arrives before the
mode starts, and what the mode holds, count together.

At the end the recording is closed (its final checkpoint written) before
``session_end`` is audited, with whether the recording is complete.

Every byte sent to the user's terminal goes through :class:`Terminal`, which
records exactly what it writes, so the recording shows what the terminal got.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import asyncssh

from commands.context import Identity

from .audit import AuditError
from .config import format_duration
from .dispatch import Dispatcher
from .recording import Recorder, RecordingError
from .session_state import AuditTrail, SessionState
from .shell_input import InputGate

if TYPE_CHECKING:
    from .server import GatewayConnection

log = logging.getLogger("beamgate.session")

_LONE_NEWLINE = re.compile(r"(?<!\r)\n")


class Terminal:
    """The user's terminal: every write is redacted, then recorded exactly as sent.

    Redaction happens here, on the one path every byte to the user takes, so a
    cookie that reaches the gateway inside remote data (a process state, a
    registered name, a message) shows as ``[REDACTED]`` on screen too, and the
    recording stays identical to what the terminal received (SPEC rule 1).
    """

    def __init__(
        self, chan: asyncssh.SSHServerChannel[str], pty: bool, redact: Callable[[str], str] = lambda text: text
    ) -> None:
        self.chan = chan
        self.pty = pty
        self.redact = redact
        self.recorder: Recorder | None = None

    def _send(self, text: str, stderr: bool, *, notice: bool = False) -> None:
        if not text or self.chan.is_closing():
            return
        text = self.redact(text)
        if self.pty:  # no pty on our side translates newlines: a raw-mode client needs CR LF
            text = _LONE_NEWLINE.sub("\r\n", text)
        if self.recorder is not None:
            try:
                self.recorder.output(text)  # raises RecordingError: then nothing is sent...
            except RecordingError:
                if not notice:  # ...except the gateway's own notice of why the session ends
                    raise
        if stderr:
            self.chan.write_stderr(text)
        else:
            self.chan.write(text)

    def write(self, text: str) -> None:
        self._send(text, False)

    def write_err(self, text: str) -> None:
        self._send(text, True)

    def notice(self, text: str) -> None:
        """A message from the gateway itself (why the session ends): sent even if the recording failed."""
        self._send(text, True, notice=True)

    def size(self) -> tuple[int, int]:
        width, height, _, _ = self.chan.get_terminal_size()
        return (width or 80, height or 24)


class TerminalOutput:
    """:class:`gateway.dispatch.Output` on a terminal: errors on stderr (exec) or inline (shell)."""

    def __init__(self, terminal: Terminal, errors_to_stderr: bool) -> None:
        self.terminal = terminal
        self.errors_to_stderr = errors_to_stderr

    def out(self, text: str) -> None:
        self.terminal.write(text)

    def err(self, text: str) -> None:
        line = text.rstrip("\n") + "\n"
        if self.errors_to_stderr:
            self.terminal.write_err(line)
        else:
            self.terminal.write(line)


class Mode(Protocol):
    """What runs in a session: fed the user's input, returns the exit status."""

    async def run(self) -> int: ...

    def feed(self, data: str) -> None: ...

    def eof(self) -> None: ...

    def resized(self) -> None: ...


class GatewaySession(asyncssh.SSHServerSession[str]):
    """asyncssh's session callbacks for one channel."""

    def __init__(self, connection: GatewayConnection, session_id: str) -> None:
        self.connection = connection
        self.gateway = connection.gateway
        self.id = session_id
        login = connection.login
        assert login is not None
        self.login = login
        self.user = login.user
        self.chan: asyncssh.SSHServerChannel[str] | None = None
        self.input_gate: InputGate | None = None
        self.term_type = "xterm"
        self.pty = False
        self.command: str | None = None
        self.mode: Mode | None = None
        self.end_reason: str | None = None
        self._tell = False
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.get_running_loop().create_future()
        self._channel_closed = asyncio.get_running_loop().create_future()
        self._idle: asyncio.TimerHandle | None = None
        self._limit: asyncio.TimerHandle | None = None
        self.terminal: Terminal | None = None
        #: Input that arrived before the mode started: ``None`` marks an end of file.
        self._pending_input: list[str | None] = []
        self.gateway.sessions[self.id] = self
        self._arm_idle()

    # -- asyncssh callbacks ---------------------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[str]) -> None:
        self.chan = chan
        self.input_gate = InputGate(chan.pause_reading, chan.resume_reading)

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        self.pty = True
        self.term_type = term_type or "xterm"
        return True

    def shell_requested(self) -> bool:
        return self.end_reason is None

    def exec_requested(self, command: str) -> bool:
        if self.end_reason is not None:
            return False
        self.command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self.connection._audit("refused_channel", kind="subsystem", detail=subsystem)
        return False

    def session_started(self) -> None:
        if self.end_reason is None:
            self._task = asyncio.ensure_future(self._main())

    def data_received(self, data: str, datatype: Any) -> None:
        if self._idle is not None:
            self._arm_idle()
        if self.mode is None:
            self._pending_input.append(data)
            if self.input_gate is not None:
                self.input_gate.waiting("pending", sum(len(d) for d in self._pending_input if d is not None))
        else:
            self._deliver(data)

    def eof_received(self) -> bool:
        if self.mode is None:
            self._pending_input.append(None)
        else:
            self.mode.eof()
        return True

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self.terminal is not None and self.terminal.recorder is not None:
            try:
                self.terminal.recorder.resize(width, height)
            except RecordingError as exc:
                self._recording_failed(exc)
                return
        if self.mode is not None:
            self.mode.resized()

    def signal_received(self, signal: str) -> None:
        if signal == "INT":
            self.data_received("\x03", None)

    def break_received(self, msec: int) -> bool:
        self.data_received("\x03", None)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.end("the client closed the session", tell=False)
        if not self._channel_closed.done():
            self._channel_closed.set_result(None)

    # -- life cycle -------------------------------------------------------------------------

    def _deliver(self, data: str) -> None:
        assert self.mode is not None and self.terminal is not None
        if self.terminal.recorder is not None:
            try:
                self.terminal.recorder.input(data)
            except RecordingError as exc:
                self._recording_failed(exc)  # input that cannot be recorded is never acted on
                return
        self.mode.feed(data)

    def _recording_failed(self, exc: RecordingError) -> None:
        """The recording failed outside the mode (input, a resize, a timer): end with the reason, told."""
        self.end(f"the session recording failed ({exc})")

    def end(self, reason: str, *, tell: bool = True) -> None:
        """End the session (limits, shutdown, lost connection); with ``tell``, the user sees ``reason``."""
        if self.end_reason is None:
            self.end_reason = reason
            self._tell = tell
        if self._task is not None and not self._task.done():
            self._task.cancel()
        elif self._task is None:  # no shell or command yet: none may start now
            if self.chan is not None and not self.chan.is_closing():
                self.chan.close()
            self._finish()

    async def finished(self) -> None:
        await asyncio.shield(self._done)

    async def channel_closed(self) -> None:
        """Until the client has closed the channel too (it has then shown everything it was sent)."""
        await asyncio.shield(self._channel_closed)

    async def _main(self) -> None:
        assert self.chan is not None
        self.terminal = terminal = Terminal(self.chan, self.pty, self.gateway.redact)
        status = 1
        started = time.monotonic()
        forced = self.login.force_command
        command = forced if forced is not None else self.command
        trail = AuditTrail(
            self.gateway.audit,
            user=self.user,
            session=self.id,
            client=self.connection.client,
            key_fingerprint=self.login.key_fingerprint,
        )
        try:
            try:
                width, height = terminal.size()
                terminal.recorder = trail.recorder = self.gateway.recordings.start(
                    session_id=self.id,
                    user=self.user,
                    client=self.connection.client,
                    key_fingerprint=self.login.key_fingerprint,
                    width=width,
                    height=height,
                    term=self.term_type,
                    command=command,
                    on_error=self._recording_failed,
                )
                trail.emit(
                    "session_start",
                    mode="exec" if command is not None else "shell",
                    pty=self.pty,
                    command=command,
                    forced=forced is not None,
                    recording=terminal.recorder.file_name,
                )
            except (RecordingError, AuditError) as exc:
                log.error("session %s refused: %s", self.id, exc)
                terminal.notice(f"error: this session cannot be recorded or audited ({exc}); it is refused\n")
                return
            self._arm_limit()
            if command is not None and self._idle is not None:
                self._idle.cancel()  # a command runs within its own bounds; idleness is a shell matter
                self._idle = None
            self.mode = self._mode(command, terminal, trail)
            pending, self._pending_input = self._pending_input, []
            for data in pending:
                if data is None:
                    self.mode.eof()
                else:
                    self._deliver(data)
            assert self.input_gate is not None
            self.input_gate.waiting("pending", 0)
            status = await self.mode.run()
        except asyncio.CancelledError:
            pass  # end() cancelled the mode (or the mode saw the cancellation and returned)
        except (AuditError, RecordingError) as exc:
            log.error("session %s ended: %s", self.id, exc)
            if self.end_reason is None:  # else the mode hit the failure while ending: the reason is told below
                terminal.notice(f"\nerror: {exc}; the session is ended\n")
        except Exception:
            log.exception("session %s failed", self.id)
            terminal.notice("\nerror: internal error in the gateway; the session is ended\n")
        finally:
            if self.end_reason is not None:
                status = 1
                if self._tell:
                    terminal.notice(f"\nbeamgate: {self.end_reason}\n")
            self._close(trail, status, started)

    def _mode(self, command: str | None, terminal: Terminal, trail: AuditTrail) -> Mode:
        from .exec_mode import ExecMode
        from .shell import Shell
        from .shell_lines import LineShell

        login, user, policies = self.login, self.user, self.gateway.policies
        state = SessionState(lambda: policies.for_user(user), self.gateway.clusters)
        roles = tuple(r.name for r in state.policy.roles)
        identity = Identity(user, roles, login.key_fingerprint, self.id, self.connection.client)
        dispatcher = Dispatcher(
            identity=identity,
            state=state,
            audit=trail,
            extras={"login": {**login.describe(), "as": self.connection.login_name}},
        )
        assert self.input_gate is not None
        if command is not None:
            return ExecMode(command, terminal, dispatcher)
        if self.pty:
            return Shell(terminal, dispatcher, state, identity, self.term_type, self.input_gate)
        return LineShell(terminal, dispatcher, state, identity, self.input_gate)

    def _close(self, trail: AuditTrail, status: int, started: float) -> None:
        self._cancel_timers()
        reason = self.end_reason or "ended"
        recording: dict[str, Any] = {}
        if trail.recorder is not None:
            summary = trail.recorder.close()  # the final checkpoint first: session_end is the last word
            recording = {"recording_complete": summary.complete, "recording_checkpoints": summary.checkpoints}
        try:
            trail.emit(
                "session_end",
                reason=reason,
                status=status,
                duration_ms=int((time.monotonic() - started) * 1000),
                **trail.position(),
                **recording,
            )
        except AuditError as exc:
            log.error("session %s: %s", self.id, exc)
        if self.chan is not None and not self.chan.is_closing():
            self.chan.exit(status)
        self._finish()

    def _finish(self) -> None:
        self._cancel_timers()
        if self.gateway.sessions.pop(self.id, None) is not None:
            self.connection.session_ended()
        if not self._done.done():
            self._done.set_result(None)

    # -- limits ----------------------------------------------------------------------------

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        timeout = self.gateway.config.server.idle_timeout
        text = f"disconnected after {format_duration(timeout)} without input (server.idle_timeout)"
        self._idle = asyncio.get_running_loop().call_later(timeout, self.end, text)

    def _arm_limit(self) -> None:
        limit = self.gateway.config.server.max_session
        text = f"disconnected: the session reached its time limit of {format_duration(limit)} (server.max_session)"
        self._limit = asyncio.get_running_loop().call_later(limit, self.end, text)

    def _cancel_timers(self) -> None:
        for handle in (self._idle, self._limit):
            if handle is not None:
                handle.cancel()
        self._idle = self._limit = None
