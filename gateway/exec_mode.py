"""Exec mode: ``ssh diag@bastion CMD ARGS...`` runs one command and exits with its status.

The command line goes through the same :class:`~gateway.dispatch.Dispatcher`
as the shell (parser, policy, audit, recording). Results go to stdout,
the one-line error to stderr, and the exit status is SPEC's: 0 ok, 1 the
command failed, 2 usage error, 3 denied. With a pty (``ssh -t``), Ctrl-C
cancels the command and its remote work (status 1, ``error: interrupted``).
"""

from __future__ import annotations

import asyncio

from .dispatch import EXIT_FAILED, EXIT_USAGE, Dispatcher
from .session import Terminal, TerminalOutput


class ExecMode:
    def __init__(self, command: str, terminal: Terminal, dispatcher: Dispatcher) -> None:
        self.command = command
        self.output = TerminalOutput(terminal, errors_to_stderr=True)
        self.dispatcher = dispatcher
        self._task: asyncio.Task[int] | None = None

    async def run(self) -> int:
        if not self.command.strip():
            self.output.err("usage: no command given; try: ssh ... help")
            return EXIT_USAGE
        self._task = asyncio.ensure_future(self._run())
        try:
            await asyncio.wait({self._task})
        except asyncio.CancelledError:
            self._task.cancel()
            await asyncio.wait({self._task})
            raise
        if self._task.cancelled():
            self.output.err("error: interrupted")
            return EXIT_FAILED
        return self._task.result()

    async def _run(self) -> int:
        outcome = await self.dispatcher.run_line(self.command, self.output)
        return outcome.status

    def feed(self, data: str) -> None:
        if "\x03" in data and self._task is not None:
            self._task.cancel()

    def eof(self) -> None:
        pass

    def resized(self) -> None:
        pass
