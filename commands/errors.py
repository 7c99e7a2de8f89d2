"""Errors raised by commands, mapped to SPEC's exec-mode exit codes by the dispatcher.

* :class:`commands.grammar.UsageError` -> exit 2, ``usage: ...``
* :class:`CommandError` -> exit 1, ``error: ...`` (node down, no such process, ...)
* denial by policy -> exit 3, ``denied: ...`` (raised by :mod:`policies`)
"""

from __future__ import annotations


class CommandError(Exception):
    """The command ran and failed; the message is one line for the user."""
