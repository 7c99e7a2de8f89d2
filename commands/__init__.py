"""The command registry: every diagnostic beamgate offers, in one place.

The parser, ``help``, completion and the policy engine all read
:data:`REGISTRY`; a command exists for users exactly when it is listed here.
Each module in this package declares one :class:`~commands.spec.Command`
(its grammar, its recon-style help, the Erlang snippet it evaluates on the
target, and its formatter) as ``COMMAND``.
"""

from __future__ import annotations

from importlib import import_module

from .spec import Command

#: Modules declaring one command each, in the order ``help`` lists them.
_MODULES = (
    "help",
    "whoami",
    "nodes",
    "use",
    "policy",
    "info",
    "proc_count",
    "proc_window",
    "bin_leak",
    "alloc",
    "scheduler_usage",
    "ports",
    "inet_count",
    "inet_window",
    "port_info",
    "ets",
    "stack",
    "state",
    "messages",
    "apps",
    "trace",
    "kill",
    "exit",
)


def _load() -> dict[str, Command]:
    registry: dict[str, Command] = {}
    for module_name in _MODULES:
        command: Command = import_module(f"{__name__}.{module_name}").COMMAND
        if command.name in registry:
            raise RuntimeError(f"command {command.name} declared twice")
        registry[command.name] = command
    return registry


REGISTRY: dict[str, Command] = _load()

__all__ = ["REGISTRY", "Command"]
