"""What a running command may use: its :class:`Context`.

Commands never import the SSH side. The session builds a :class:`Context`
per invocation and hands it to :attr:`Command.run`:

* ``target``: the bounded remote-call interface for the node the command runs
  on (:class:`Target`; ``None`` for commands that need no node);
* ``session``: the session-level view (current node, configured nodes) for
  ``use``, ``nodes`` and ``whoami``;
* ``emit``: for streaming commands, hands one event to the session, which
  prints it (or a JSON line) as it comes;
* ``confirm``: asks the user to type something (``kill`` asks for the pid).

Tests of command logic may pass fakes of these protocols (a unit boundary);
the integration tests run every command against real nodes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gateway.config import SafetyConfig, TraceLimits
from gateway.dist.node import Process
from gateway.dist.rpc import Snippet

if TYPE_CHECKING:
    from .spec import Command


class Target(Protocol):
    """One node, as a command sees it. Implemented by :class:`gateway.target.BoundedTarget`."""

    @property
    def name(self) -> str: ...

    async def otp_release(self) -> str: ...

    async def run(
        self,
        snippet: Snippet,
        bindings: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        max_heap: int | None = None,
        max_reply: int | None = None,
    ) -> Any: ...

    @property
    def owner(self) -> Process:
        """The gateway process that lives as long as this command (for streaming replies)."""
        ...


@dataclass(frozen=True)
class Identity:
    """Who runs the command (from the SSH key or certificate)."""

    user: str
    roles: tuple[str, ...]
    key_fingerprint: str
    session_id: str = ""
    client: str = ""


@dataclass(frozen=True)
class NodeStatus:
    name: str
    cluster: str
    reachable: bool
    otp_release: str = ""
    error: str = ""
    current: bool = False


class SessionView(Protocol):
    """The session-level state commands such as ``use`` and ``nodes`` read or change."""

    @property
    def current_node(self) -> str | None: ...

    def select_node(self, name: str) -> None: ...

    def allowed_nodes(self) -> Sequence[str]: ...

    async def node_status(self, names: Sequence[str]) -> list[NodeStatus]: ...

    def request_exit(self) -> None: ...


class PolicyView(Protocol):
    """What the user may do, for ``help``, ``whoami`` and completion."""

    def may_run(self, command: str) -> bool: ...

    def describe(self) -> Mapping[str, Any]: ...

    def trace_caps(self) -> TraceLimits | None:
        """The user's merged ``trace`` caps (None when no role grants ``trace``)."""
        ...


@dataclass
class Context:
    identity: Identity
    registry: Mapping[str, Command]
    session: SessionView
    policy: PolicyView
    safety: SafetyConfig
    target: Target | None = None
    emit: Callable[[Any], Awaitable[None]] | None = None
    confirm: Callable[[str], Awaitable[str | None]] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def need_target(self) -> Target:
        if self.target is None:
            raise RuntimeError("this command needs a target node")
        return self.target
