"""Errors of the distribution layer.

Each message is written for the engineer on call: it names the node, says
what failed, and, where there is one, the usual cause. ``beamgate ping``
prints them as they are. None of them ever contains the cookie.
"""

from __future__ import annotations


class DistError(Exception):
    """Base of every distribution failure."""

    #: Short machine-readable kind, used by ``beamgate ping`` and the audit log.
    kind = "error"


class NodeNameError(DistError):
    kind = "bad_name"


class HostResolutionError(DistError):
    kind = "unresolved"


class EpmdUnreachable(DistError):
    kind = "epmd_unreachable"


class NodeNotRegistered(DistError):
    kind = "not_registered"


class ConnectionRefused(DistError):
    kind = "connection_refused"


class ConnectTimeout(DistError):
    kind = "timeout"


class HandshakeFailed(DistError):
    """The peer refused or broke the handshake for a reason other than the cookie."""

    kind = "handshake_failed"


class CookieRejected(HandshakeFailed):
    """The peer closed the connection after our digest: our cookie is not its cookie."""

    kind = "cookie_rejected"


class PeerAuthFailed(HandshakeFailed):
    """The peer's digest of our challenge is wrong: it does not hold the cookie."""

    kind = "peer_auth_failed"


class ProtocolError(DistError):
    """Bytes that break the protocol; the connection is closed."""

    kind = "protocol_error"


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol cannot carry."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something malformed or beyond our limits."""


class NodeDown(DistError):
    """The connection to the node is gone (or went away during a call)."""

    kind = "node_down"


class CallTimeout(DistError):
    kind = "timeout"


class RemoteError(DistError):
    """The call reached the node and failed there (``{badrpc, Reason}``)."""

    kind = "remote_error"

    def __init__(self, message: str, reason: object = None) -> None:
        super().__init__(message)
        self.reason = reason
