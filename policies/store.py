"""The live policy, replaceable on SIGHUP without dropping sessions.

A :class:`PolicyStore` holds the current :class:`~policies.engine.Policy`
(one per config *generation*). Sessions keep the store, never a policy:
they call :meth:`PolicyStore.for_user` for every command, so a reload
applies to a running session from its next command, and new sessions start
with the new policy. A command already running keeps the decision it got.

:meth:`PolicyStore.reload` reads the file again and runs every check
``beamgate check-config`` runs (the loader's and :func:`validate_config`).
Any error rejects the whole file: the previous generation stays in force
and one log line says so, followed by one line per problem. Warnings
(:func:`config_warnings`: a user without roles, a role without users, which
is what an offboarding leaves) are logged, at start and on every reload,
and never reject anything: revoking access must always go through. Swapping
is a single attribute assignment on the event loop's thread, so a command
sees either the old policy or the new one, never a mix.

:meth:`PolicyStore.watch_sighup` wires the reload to SIGHUP on the server's
event loop (the handler runs on the loop's thread, between commands).

Only the policy-bearing sections (``users``, ``roles``, ``safety``) take
effect on reload; changes to ``server``, ``clusters``, ``recording`` or
``audit`` are logged as needing a restart and otherwise ignored. For
``clusters`` that is enforced here: the policy's node map (which node is
configured, in which cluster) always comes from the clusters the store
started with, the ones the gateway holds connections and cookies for. A
node added by a reload is unknown until a restart (denied like any
unconfigured node); a node moved to another cluster stays in the cluster it
is connected through, so roles restricted by ``clusters`` keep matching what
is actually used.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from commands.spec import Command
from gateway.config import Config, ConfigError, Issue, load_config

from .engine import Policy, UserPolicy
from .validate import config_warnings, validate_config

log = logging.getLogger("beamgate.policy")

#: Sections read once at start; a reload that changes them says a restart is needed.
RESTART_SECTIONS = ("server", "clusters", "recording", "audit")


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: ``ok`` with the new generation, or the issues that rejected the file."""

    ok: bool
    generation: int
    message: str
    issues: tuple[Issue, ...] = ()
    #: Sections whose changes wait for a restart.
    restart_needed: tuple[str, ...] = ()
    #: What :func:`config_warnings` says about the new file (logged; never a reason to reject it).
    warnings: tuple[Issue, ...] = ()


def load_policy(path: str | Path, registry: Mapping[str, Command] | None = None) -> Config:
    """Load ``path`` with every check of ``check-config``; raise :class:`ConfigError` listing them."""
    config = load_config(path)
    issues = validate_config(config, registry)
    if issues:
        raise ConfigError(issues)
    return config


class PolicyStore:
    """The current policy generation; shared by every session of the server."""

    def __init__(self, config: Config, registry: Mapping[str, Command] | None = None) -> None:
        if registry is None:
            from commands import REGISTRY

            registry = REGISTRY
        self.registry = registry
        #: The clusters the gateway started with: a reload never changes them (see the module doc).
        self.clusters = config.clusters
        self._policy = Policy(config, registry)
        self.generation = 1
        for issue in config_warnings(config):
            log.warning("config warning: %s", issue)

    @classmethod
    def load(cls, path: str | Path, registry: Mapping[str, Command] | None = None) -> PolicyStore:
        return cls(load_policy(path, registry), registry)

    @property
    def config(self) -> Config:
        """The config in force (for authenticating new sessions: ``users.*.keys``)."""
        return self._policy.config

    @property
    def policy(self) -> Policy:
        return self._policy

    def for_user(self, user: str) -> UserPolicy:
        """The user's policy under the current generation: call it for every command."""
        return self._policy.for_user(user)

    def reload(self, path: str | Path | None = None) -> ReloadResult:
        """Re-read ``path`` (default: the file in force); keep the old policy if it has any problem."""
        source = Path(path) if path is not None else self.config.path
        try:
            config = load_policy(source, self.registry)
        except ConfigError as exc:
            message = (
                f"config reload rejected: {len(exc.issues)} problem(s) in {source}; "
                f"keeping the previous config (generation {self.generation})"
            )
            log.error(message)
            for issue in exc.issues:
                log.error("config reload: %s", issue)
            return ReloadResult(False, self.generation, message, tuple(exc.issues))
        old = self.config
        restart = tuple(s for s in RESTART_SECTIONS if getattr(old, s) != getattr(config, s))
        warnings = tuple(config_warnings(config))
        self._policy = Policy(replace(config, clusters=self.clusters), self.registry)
        self.generation += 1
        message = (
            f"config reloaded from {source}: generation {self.generation}, "
            f"{len(config.users)} user(s), {len(config.roles)} role(s)"
        )
        log.info(message)
        for issue in warnings:
            log.warning("config warning: %s", issue)
        if "clusters" in restart:
            log.warning(
                "config reload: changes to clusters are ignored until a restart "
                "(the nodes, their clusters and cookies stay as started: %s)",
                ", ".join(f"{c.name}: {' '.join(c.nodes)}" for c in self.clusters.values()),
            )
        others = [s for s in restart if s != "clusters"]
        if others:
            log.warning("config reload: changes to %s take effect only after a restart", ", ".join(others))
        return ReloadResult(True, self.generation, message, restart_needed=restart, warnings=warnings)

    def watch_sighup(
        self, loop: asyncio.AbstractEventLoop, on_reload: Callable[[ReloadResult], None] | None = None
    ) -> Callable[[], None]:
        """Reload on every SIGHUP; ``on_reload`` gets each result (to audit ``config_reload``).

        Returns a function that removes the handler.
        """

        def handle() -> None:
            result = self.reload()
            if on_reload is not None:
                on_reload(result)

        def remove() -> None:
            loop.remove_signal_handler(signal.SIGHUP)

        loop.add_signal_handler(signal.SIGHUP, handle)
        return remove
