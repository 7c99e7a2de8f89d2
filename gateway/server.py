"""The SSH server: authentication and what may be opened. Sessions move the bytes.

:class:`Gateway` is the running bastion: the config, the clusters (one hidden
node each), the policy, the audit log, the recordings, the login throttle
and the live sessions with their limits. It listens with asyncssh.

:class:`GatewayConnection` is asyncssh's ``SSHServer`` for one TCP
connection. It decides, and only decides:

* **authentication** (:mod:`gateway.auth`): public keys and OpenSSH user
  certificates only; password, keyboard-interactive, host-based and ``none``
  are never offered, and ``begin_auth`` always demands authentication
  (prompt_toolkit's contrib server accepts everyone by default; this one
  never does). For each key the client offers, :class:`KeyDirectory`
  decides who it is; asyncssh is then told to trust exactly that key (or
  that CA for that principal) and checks the signature and the certificate
  again itself. Failed logins are throttled per address and audited.
* **channels**: only ``session`` channels, within ``max_sessions`` and
  ``max_sessions_per_user``, and only while the login still holds: each new
  channel decides the key or certificate the connection logged in with
  again (a certificate past its validity window opens nothing more). Port
  forwarding in both directions, Unix socket forwarding, agent and X11
  forwarding are refused and audited (``refused_channel``); subsystems
  (sftp) are refused by the session.
* **withdrawn logins**: after a config reload (SIGHUP) every live
  connection's login is decided again with the new keys; one that is now
  refused, or names another user, is cut off: its sessions end with the
  reason on the user's screen, ``access_revoked`` is audited, and the
  connection is disconnected.

asyncssh offers no ``SSHServer`` callback that sees the certificate a client
offers, nor agent or X11 forwarding requests; :func:`_intercept` wraps those
three connection methods, and only those, to route them here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from commands import REGISTRY
from policies import PolicyStore, ReloadResult

from .audit import AuditLog
from .auth import KeyDirectory, Login, LoginThrottle, Refusal
from .cluster import Cluster, Clusters
from .config import Config, format_duration
from .recording import RecordingStore
from .secret import Cookie
from .sshkeys import fingerprint

if TYPE_CHECKING:
    from .session import GatewaySession

log = logging.getLogger("beamgate.server")

#: Keys or certificates one connection may offer before it is cut off (like sshd's MaxAuthTries).
MAX_AUTH_TRIES = 6
#: Seconds a stopping gateway lets clients close their connections themselves.
CLOSE_GRACE = 2.0


class HostKeyError(Exception):
    """The host key cannot be read or created safely."""


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """The server's private host key; created (Ed25519, mode 0600) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = asyncssh.generate_private_key("ssh-ed25519")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_host_key(path)
        except OSError as exc:
            raise HostKeyError(f"cannot create host key {path}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as f:
            f.write(key.export_private_key("openssh"))
        log.info("created host key %s", path)
        return key
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise HostKeyError(f"host key {path} has mode {mode:04o}; it must be private to its owner (chmod 600 {path})")
    try:
        return asyncssh.read_private_key(str(path))
    except (OSError, asyncssh.KeyImportError) as exc:
        raise HostKeyError(f"cannot read host key {path}: {exc}") from None


class Gateway:
    """The bastion: shared state of every connection and session."""

    def __init__(self, config: Config) -> None:
        self.config = config
        cookies = {name: c.load_cookie() for name, c in config.clusters.items()}
        self.cookies: list[Cookie] = list(cookies.values())
        self.clusters = Clusters(Cluster(c, cookies[name]) for name, c in config.clusters.items())
        self.keys = KeyDirectory.from_config(config)
        #: Users, roles and safety: reloaded on SIGHUP (``beamgate serve`` wires it to :meth:`reloaded`).
        self.policies = PolicyStore(config, REGISTRY)
        s = config.server
        self.throttle = LoginThrottle(s.auth_max_failures, s.auth_failure_window, s.auth_lockout)
        self.audit = AuditLog(config.audit, self.redact)
        self.recordings = RecordingStore(config.recording, self.redact, pending=self.pending, audit=self.audit)
        self.host_key = load_host_key(s.host_key)
        #: Live sessions by id (for the limits and for shutdown).
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: set[GatewayConnection] = set()
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._retention: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)

    def redact(self, text: str) -> str:
        for cookie in self.cookies:
            text = cookie.redact(text)
        return text

    def pending(self, text: str) -> int:
        """How much of the end of ``text`` could begin a cookie (the recorder holds it back)."""
        return max((cookie.pending_prefix(text) for cookie in self.cookies), default=0)

    @property
    def host_key_fingerprint(self) -> str:
        return fingerprint(self.host_key)

    async def start(self) -> tuple[str, int]:
        """Listen; returns the bound address (port 0 in the config picks a free port)."""
        s = self.config.server
        self._acceptor = await asyncssh.listen(
            s.listen_host,
            s.listen_port,
            server_factory=lambda: GatewayConnection(self),
            server_host_keys=[self.host_key],
            public_key_auth=True,
            password_auth=False,
            kbdint_auth=False,
            host_based_auth=False,
            gss_host=None,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
            line_editor=False,
            encoding="utf-8",
            errors="replace",
            login_timeout=s.login_grace_time,
            keepalive_interval=60,
            server_version="beamgate",
        )
        self._retention = asyncio.ensure_future(self.recordings.keep_retention())
        sock = self._acceptor.sockets[0].getsockname()
        self.audit.emit("server_start", listen=f"{sock[0]}:{sock[1]}", host_key=self.host_key_fingerprint)
        return str(sock[0]), int(sock[1])

    async def stop(self, reason: str = "the gateway is shutting down") -> None:
        """Stop listening, end every session with ``reason``, leave the clusters, close the audit log."""
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.close()  # no new connections from here on
        sessions = list(self.sessions.values())
        for session in sessions:
            session.end(reason)
        for session in sessions:
            await session.finished()
        # Clients leave by themselves once their sessions are closed; cutting the connection at once
        # would make OpenSSH drop the last output (the reason) it has not printed yet.
        await self._connections_gone(CLOSE_GRACE)
        for conn in list(self.connections):
            conn.close()
        await self._connections_gone(CLOSE_GRACE)  # their last audit events (a login cut short) come first
        if acceptor is not None:
            await acceptor.wait_closed()
        if self._retention is not None:
            self._retention.cancel()
        self.clusters.close()
        self.audit.emit("server_stop", reason=reason)
        self.audit.close()  # sends what the syslog forwarder still holds before the process exits

    async def _connections_gone(self, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    def reloaded(self, result: ReloadResult) -> None:
        """After :meth:`PolicyStore.reload` (SIGHUP): audit it; decide every live login again with the new keys."""
        self.audit.emit(
            "config_reload",
            ok=result.ok,
            generation=result.generation,
            message=result.message,
            issues=[str(i) for i in result.issues],
            warnings=[str(i) for i in result.warnings],
            restart_needed=list(result.restart_needed),
        )
        if result.ok:  # [server] changes wait for a restart
            self.keys = KeyDirectory.from_config(self.config, users=self.policies.config)
            for conn in list(self.connections):
                problem = conn.login_problem()
                if problem is not None:
                    conn.revoke(problem)

    def next_connection_id(self) -> str:
        return f"{secrets.token_hex(3)}{next(self._ids):x}"

    def session_limit_problem(self, user: str) -> str | None:
        """Why a new session for ``user`` would exceed a limit, or ``None``."""
        s = self.config.server
        if len(self.sessions) >= s.max_sessions:
            return f"the gateway is at its limit of {s.max_sessions} sessions (server.max_sessions); try again later"
        mine = sum(1 for sess in self.sessions.values() if sess.user == user)
        if mine >= s.max_sessions_per_user:
            return (
                f"{user} already has {mine} open sessions, the limit (server.max_sessions_per_user); "
                "close one and try again"
            )
        return None


class GatewayConnection(asyncssh.SSHServer):
    """One client connection: authentication, then which channels it may open."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.id = gateway.next_connection_id()
        self.conn: asyncssh.SSHServerConnection | None = None
        self.client_ip = ""
        self.client = ""
        self.login_name: str | None = None
        self.login: Login | None = None
        #: The key or certificate the login was accepted with, to decide it again later.
        self.offered_key: bytes | None = None
        #: Why this connection's login was withdrawn (then it opens nothing more), or ``None``.
        self.revoked: str | None = None
        self._revoking: asyncio.Future[None] | None = None
        self.refusals: list[Refusal] = []
        self._refused_tries = 0
        self._session_ids = itertools.count(1)
        self._idle: asyncio.TimerHandle | None = None

    # -- connection --------------------------------------------------------------------

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername") or ("?", 0)
        self.client_ip = str(peer[0])
        self.client = f"{peer[0]}:{peer[1]}"
        self.gateway.connections.add(self)
        _intercept(conn, self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gateway.connections.discard(self)
        self._cancel_idle()
        if self.login is None and self.login_name is not None:
            self._failed("no key or certificate accepted" if self.refusals else "no public key offered")
        for session in list(self.gateway.sessions.values()):
            if session.connection is self:
                session.end("the connection was closed", tell=False)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def _audit(self, event: str, **fields: Any) -> None:
        base: dict[str, Any] = {
            "user": self.login.user if self.login else None,
            "session": self.id,
            "client": self.client,
            "key_fingerprint": self.login.key_fingerprint if self.login else None,
        }
        base.update(fields)
        self.gateway.audit.emit(event, **base)

    # -- authentication ----------------------------------------------------------------

    async def begin_auth(self, username: str) -> bool:
        self.login_name = username
        state = self.gateway.throttle.state(self.client_ip)
        if state.locked:
            self._audit("auth_fail", login=username, reason="address locked out after repeated failed logins")
            wait = format_duration(round(state.locked_for))
            self._disconnect(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                f"too many failed logins from {self.client_ip}; try again in {wait}",
            )
            self.login_name = None  # already audited; not one more failure
        elif state.delay:
            await asyncio.sleep(state.delay)
        return True  # always: authentication is never skipped

    def public_key_auth_supported(self) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False  # every accepted key goes through check_offered_key

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False

    async def check_offered_key(
        self,
        original: Callable[[str, bytes, bytes, bytes], Awaitable[bool]],
        username: str,
        key_data: bytes,
        msg: bytes,
        signature: bytes,
    ) -> bool:
        """Decide on one offered key or certificate, then let asyncssh verify it."""
        assert self.conn is not None
        if self._refused_tries >= MAX_AUTH_TRIES:
            self._disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "too many authentication failures")
            return False
        decision = self.gateway.keys.decide(username, key_data, self.client_ip)
        if isinstance(decision, Refusal):
            self._refuse(decision)
            return False
        self.conn.set_authorized_keys(asyncssh.import_authorized_keys(decision.authorized_line))
        ok = await original(username, key_data, msg, signature)
        if not ok:
            self._refuse(Refusal("signature or certificate check failed", decision.key_fingerprint))
        elif msg:
            self.login = decision  # the signed attempt: asyncssh reports success next
            self.offered_key = key_data
        return ok

    def login_problem(self) -> str | None:
        """Why the key or certificate this connection logged in with would be refused now, or ``None``.

        Decided again with the keys in force (a reload may have removed the key, or given it to another
        user) and the clock (a certificate may have expired since).
        """
        if self.login is None or self.login_name is None or self.offered_key is None:
            return None
        decision = self.gateway.keys.decide(self.login_name, self.offered_key, self.client_ip)
        if isinstance(decision, Refusal):
            return decision.reason
        if decision.user != self.login.user:
            return f"the key is now {decision.user}'s, not {self.login.user}'s"
        return None

    def revoke(self, problem: str) -> None:
        """Cut this connection off after a reload: end its sessions telling the user why, audit it, disconnect."""
        if self.revoked is not None:
            return
        self.revoked = problem
        reason = f"disconnected: your login is no longer accepted after a configuration change ({problem})"
        sessions = [s for s in self.gateway.sessions.values() if s.connection is self]
        self._audit("access_revoked", reason=problem, sessions=[s.id for s in sessions])
        for session in sessions:
            session.end(reason)
        self._revoking = asyncio.ensure_future(self._disconnect_after(sessions, reason))

    async def _disconnect_after(self, sessions: list[GatewaySession], reason: str) -> None:
        """Once the client has been shown why its sessions ended (or after a grace period), disconnect."""
        for session in sessions:
            await session.finished()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_GRACE):
                for session in sessions:
                    await session.channel_closed()
        self._disconnect(asyncssh.DISC_BY_APPLICATION, reason)

    def _refuse(self, refusal: Refusal) -> None:
        self._refused_tries += 1
        if refusal not in self.refusals:
            self.refusals.append(refusal)

    def auth_completed(self) -> None:
        assert self.login is not None, "authentication completed without an accepted key"
        self.gateway.throttle.success(self.client_ip)
        self._audit("auth_ok", login=self.login_name, **self.login.describe())
        self._arm_idle()

    def _failed(self, reason: str) -> None:
        state = self.gateway.throttle.failure(self.client_ip)
        attempts = [{"key_fingerprint": r.key_fingerprint, "reason": r.reason} for r in self.refusals]
        last = self.refusals[-1] if self.refusals else None
        self._audit(
            "auth_fail",
            login=self.login_name,
            reason=last.reason if last else reason,
            key_fingerprint=last.key_fingerprint if last else None,
            attempts=attempts,
            locked_out=state.locked,
        )

    def _disconnect(self, code: int, reason: str) -> None:
        if self.conn is not None:
            self.conn.disconnect(code, reason)

    # -- channels ----------------------------------------------------------------------

    def session_requested(self) -> GatewaySession:
        from .session import GatewaySession

        assert self.login is not None
        withdrawn = self.revoked or self.login_problem()
        if withdrawn:
            text = f"your login is no longer accepted ({withdrawn}); log in again"
            self._audit("refused_channel", kind="session", reason=text)
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, text)
        problem = self.gateway.session_limit_problem(self.login.user)
        if problem:
            self._audit("refused_channel", kind="session", reason=problem)
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_RESOURCE_SHORTAGE, problem)
        self._cancel_idle()
        return GatewaySession(self, f"{self.id}.{next(self._session_ids)}")

    def session_ended(self) -> None:
        """A session of this connection ended: idle without sessions counts from now."""
        if not any(s.connection is self for s in self.gateway.sessions.values()):
            self._arm_idle()

    def _refuse_channel(self, kind: str, detail: str) -> asyncssh.ChannelOpenError:
        self._audit("refused_channel", kind=kind, detail=detail)
        return asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, f"{kind} is not available on this gateway"
        )

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        raise self._refuse_channel("direct-tcpip", f"{dest_host}:{dest_port}")

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        self._audit("refused_channel", kind="tcpip-forward", detail=f"{listen_host}:{listen_port}")
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        raise self._refuse_channel("direct-streamlocal", dest_path)

    def unix_server_requested(self, listen_path: str) -> bool:
        self._audit("refused_channel", kind="streamlocal-forward", detail=listen_path)
        return False

    def refuse_agent_forwarding(self) -> bool:
        self._audit("refused_channel", kind="auth-agent")
        return False

    def refuse_x11_forwarding(self) -> None:
        self._audit("refused_channel", kind="x11")

    # -- idle connections without a session (ssh -N) -----------------------------------

    def _arm_idle(self) -> None:
        self._cancel_idle()
        timeout = self.gateway.config.server.idle_timeout
        self._idle = asyncio.get_running_loop().call_later(timeout, self._idle_expired)

    def _cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_expired(self) -> None:
        timeout = format_duration(self.gateway.config.server.idle_timeout)
        self._disconnect(asyncssh.DISC_BY_APPLICATION, f"no session opened for {timeout} (server.idle_timeout)")


def _intercept(conn: asyncssh.SSHServerConnection, owner: GatewayConnection) -> None:
    """Route the three connection hooks asyncssh does not offer on ``SSHServer`` to ``owner``."""
    original = conn.validate_public_key

    async def validate_public_key(username: str, key_data: bytes, msg: bytes, signature: bytes) -> bool:
        return await owner.check_offered_key(original, username, key_data, msg, signature)

    async def create_agent_listener() -> bool:
        return owner.refuse_agent_forwarding()

    async def attach_x11_listener(chan: Any, auth_proto: bytes, auth_data: bytes, screen: int) -> None:
        owner.refuse_x11_forwarding()

    setattr(conn, "validate_public_key", validate_public_key)  # noqa: B010
    setattr(conn, "create_agent_listener", create_agent_listener)  # noqa: B010
    setattr(conn, "attach_x11_listener", attach_x11_listener)  # noqa: B010
