"""What one session knows besides its terminal: who it is, its node, its audit trail.

:class:`SessionState` is the :class:`commands.context.SessionView` that
``use``, ``nodes`` and ``whoami`` see: the current node, the configured nodes
this user may use (decided by the policy engine's ``may_use_node``), and
their reachability. It asks for the user's policy afresh each time
(:attr:`SessionState.policy`), so a config reload (SIGHUP) applies to a
running session from its next command. :class:`AuditTrail` stamps every audit event of the
session with the same ``user``, ``session``, ``client`` and
``key_fingerprint`` and knows where in the recording the session is, so a
``command`` event can point at the bytes it produced.

Both are shared by the shell and exec mode, and neither knows about SSH.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from commands.context import NodeStatus
from policies import Denied, UserPolicy
from policies.rights import paths

from .audit import AuditLog
from .cluster import Clusters
from .dist.errors import DistError
from .recording import Recorder


class AuditTrail:
    """The audit log as one session writes to it."""

    def __init__(self, log: AuditLog, **base: Any) -> None:
        self.log = log
        self.base = base
        self.recorder: Recorder | None = None

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        return self.log.emit(event, **self.base, **fields)

    def mark(self, label: str) -> None:
        """A marker in the recording (players can jump to it): one at the start of each command."""
        if self.recorder is not None:
            self.recorder.marker(label)

    def position(self) -> dict[str, Any]:
        """Where the session's recording is now: its file name and byte offset."""
        if self.recorder is None:
            return {}
        return {"recording": self.recorder.file_name, "recording_offset": self.recorder.offset}


class SessionState:
    """The session-level view for commands: current node, usable nodes, exit."""

    def __init__(self, policy: Callable[[], UserPolicy], clusters: Clusters) -> None:
        self._policy = policy
        self.clusters = clusters
        self._current: str | None = None
        self.exit_requested = False

    @property
    def policy(self) -> UserPolicy:
        """The user's policy under the config generation in force now."""
        return self._policy()

    @property
    def current_node(self) -> str | None:
        return self._current

    def default_node(self) -> str | None:
        """The ``use``d node, else the only configured node, else ``None``."""
        if self._current is not None:
            return self._current
        names = self.clusters.node_names()
        return names[0] if len(names) == 1 else None

    def select_node(self, name: str) -> None:
        policy = self.policy
        # Unconfigured and forbidden nodes get the same answer (no probing of node names).
        if name not in self.clusters.node_names() or not policy.may_use_node(name):
            rule = paths(policy.roles, "nodes") or f"users.{policy.user}.roles"
            raise Denied(
                f"{policy.user} may not use node {name} (not configured, or no role's nodes pattern matches it: "
                f"{rule})",
                rule,
            )
        self._current = name

    def allowed_nodes(self) -> Sequence[str]:
        return self.policy.usable_nodes()

    async def node_status(self, names: Sequence[str]) -> list[NodeStatus]:
        """Connect to each node (concurrently) and learn its OTP release."""
        return list(await asyncio.gather(*(self._status(n) for n in names)))

    async def _status(self, name: str) -> NodeStatus:
        cluster = self.clusters.cluster_of(name)
        remote = cluster.nodes[name]
        current = name == self.default_node()
        try:
            async with asyncio.timeout(cluster.config.connect_timeout + cluster.config.call_timeout):
                await remote.connect()
                release = await remote.otp_release()
        except DistError as exc:
            return NodeStatus(name, cluster.name, False, error=str(exc), current=current)
        except TimeoutError:
            return NodeStatus(name, cluster.name, False, error="timed out", current=current)
        return NodeStatus(name, cluster.name, True, otp_release=release, current=current)

    def request_exit(self) -> None:
        self.exit_requested = True
