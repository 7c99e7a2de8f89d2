"""What both shells share: the foreground command, the banner and the prompt text.

:class:`Foreground` runs one line at a time through the dispatcher as a task
the session can cancel: Ctrl-C cancels it, which closes the command's owner
process on the gateway and so ends its worker on the target
(:mod:`gateway.target`); the shell then prints ``^C interrupted`` and
prompts again.
"""

from __future__ import annotations

import asyncio

from commands.context import Identity
from commands.format import sanitize

from .dispatch import Dispatcher, Outcome, Output
from .session_state import SessionState


class Foreground:
    """The command currently running in a shell, if any."""

    def __init__(self, dispatcher: Dispatcher, output: Output) -> None:
        self.dispatcher = dispatcher
        self.output = output
        self._task: asyncio.Task[Outcome] | None = None

    @property
    def busy(self) -> bool:
        return self._task is not None

    async def run(self, line: str, *, dropped: int = 0) -> Outcome | None:
        """Run ``line`` (refused if the shell ``dropped`` characters of it); ``None`` if it was interrupted."""
        task = asyncio.ensure_future(self.dispatcher.run_line(line, self.output, dropped=dropped))
        self._task = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task})
            raise
        finally:
            self._task = None
        if task.cancelled():
            self.output.out("^C interrupted\n")
            return None
        return task.result()

    def interrupt(self) -> bool:
        """Cancel the running command (Ctrl-C); ``False`` if nothing runs."""
        if self._task is None:
            return False
        self._task.cancel()
        return True


def banner(identity: Identity, state: SessionState) -> str:
    roles = ", ".join(identity.roles) or "none"
    node = state.default_node()
    where = f"Commands run on {node}." if node else "Pick a node with: use NODE (nodes lists them)."
    return (
        f"beamgate: signed in as {identity.user} (roles: {roles}); session {identity.session_id} is recorded.\n"
        f"{where} Type help for commands; exit or Ctrl-D leaves.\n"
    )


def prompt_parts(identity: Identity, state: SessionState) -> tuple[str, str]:
    """``(user, node)`` for the prompt, both safe to print."""
    return sanitize(identity.user), sanitize(state.default_node() or "(no node)")


def plain_prompt(identity: Identity, state: SessionState) -> str:
    user, node = prompt_parts(identity, state)
    return f"{user}:{node}> "
