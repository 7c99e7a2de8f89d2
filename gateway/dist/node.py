"""The gateway's hidden Erlang node: identity, connections, and local processes.

:class:`LocalNode` is what target nodes see: one fixed node name (never
random: each new name would be a new atom on every target), one creation
per gateway run, hidden (never in a target's ``nodes()``). It keeps one
:class:`~gateway.dist.connection.Connection` per peer, shared by every
session, and reconnects on next use after a loss.

Gateway-side "processes" (:class:`Process`) are pids with a bounded mailbox.
Target processes can send to them, monitor them and link to them; when a
gateway process ends (its session closes), every monitor on it fires and
every link to it breaks, exactly as for an Erlang process. That is how
target-side workers and trace relays learn that their session is gone.

The gateway never executes anything a peer asks for: there is no ``rex``
here, no registered names, no spawn service. Messages for unknown pids or
names are dropped and counted (:attr:`LocalNode.dropped`).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import secrets
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..secret import Cookie
from . import control, epmd
from . import flags as dflags
from .connection import MAX_WRITE_BUFFER, Connection, tls_failure
from .errors import ConnectionRefused, ConnectTimeout, DistError, HandshakeFailed, HostResolutionError, NodeDown
from .handshake import ClientHandshake
from .names import NodeName
from .terms import Atom, Pid, Reference

log = logging.getLogger("beamgate.dist")

NORMAL = Atom("normal")
NOPROC = Atom("noproc")
NOCONNECTION = Atom("noconnection")
DOWN = Atom("DOWN")
EXIT = Atom("EXIT")
PROCESS = Atom("process")


@dataclass
class NodeOptions:
    """Connection settings shared by every connection of a :class:`LocalNode`."""

    epmd_port: int = epmd.EPMD_PORT
    connect_timeout: float = 5.0
    tick_interval: float = 15.0
    tick_timeout: float = 60.0
    max_packet: int = 64 * 1024 * 1024
    max_write_buffer: int = MAX_WRITE_BUFFER
    mailbox_limit: int = 10_000
    #: Client-side TLS for ``inet_tls_dist`` clusters (see ``gateway.cluster.tls_context``).
    tls: ssl.SSLContext | None = None


@dataclass
class _Peer:
    """Per-peer bookkeeping that lives as long as one connection."""

    conn: Connection
    # local pid id -> {ref: remote pid} of remote monitors on our processes
    monitored_by: dict[int, dict[Reference, Pid]] = field(default_factory=dict)


class Process:
    """A gateway-side process: a pid, a bounded mailbox, monitors and links.

    Messages arrive as Erlang would deliver them: plain terms for sends,
    ``('DOWN', Ref, process, Who, Reason)`` for monitors that fired, and
    ``('EXIT', From, Reason)`` for broken links and exit signals (gateway
    processes always trap exits: a peer cannot kill them).
    """

    def __init__(
        self,
        node: LocalNode,
        pid: Pid,
        limit: int,
        on_message: Callable[[Any], None] | None = None,
    ) -> None:
        self.node = node
        self.pid = pid
        self._limit = limit
        self._queue: collections.deque[Any] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._on_message = on_message
        self.dropped = 0
        self.alive = True
        self.links: set[Pid] = set()
        self.monitors: dict[Reference, Pid | tuple[Atom, str]] = {}

    def __repr__(self) -> str:
        return f"<Process {self.pid.id}.{self.pid.serial} on {self.node.name}>"

    # -- mailbox -------------------------------------------------------------------

    def deliver(self, message: Any) -> None:
        if not self.alive:
            return
        if self._on_message is not None:
            try:
                self._on_message(message)
            except Exception:  # a bug in one consumer must not take the connection down
                self.node.dropped += 1
                log.exception("%r: message handler failed", self)
            return
        if len(self._queue) >= self._limit:
            self.dropped += 1
            self.node.dropped += 1
            return
        self._queue.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self, timeout: float | None = None) -> Any:
        """Next message; raises ``TimeoutError`` after ``timeout`` seconds."""
        if self._queue:
            return self._queue.popleft()
        if not self.alive:
            raise NodeDown("process has exited")
        if self._waiter is not None:
            raise RuntimeError(f"{self!r} already has a receiver waiting")
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        handle = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()
        return self._queue.popleft()

    def pending(self) -> int:
        return len(self._queue)

    # -- signals -----------------------------------------------------------------

    def send(self, to: Pid | tuple[Atom, str], message: Any) -> None:
        """``To ! Message`` for a remote pid or ``{Name, Node}``."""
        if isinstance(to, Pid):
            self.node.connection_for(str(to.node)).send_message(control.send(to, message))
        else:
            name, node = to
            self.node.connection_for(node).send_message(control.reg_send(self.pid, name, message))

    def monitor(self, target: Pid | tuple[Atom, str]) -> Reference:
        """Monitor a remote process (pid or ``{Name, Node}``); a DOWN message follows its end."""
        ref = self.node.make_ref()
        if isinstance(target, Pid):
            conn = self.node.connection_for(str(target.node))
            conn.send_message(control.monitor_p(self.pid, target, ref))
        else:
            conn = self.node.connection_for(target[1])
            conn.send_message(control.monitor_p(self.pid, target[0], ref))
        self.monitors[ref] = target
        return ref

    def demonitor(self, ref: Reference) -> None:
        target = self.monitors.pop(ref, None)
        if target is None:
            return
        node = str(target.node) if isinstance(target, Pid) else target[1]
        remote = target if isinstance(target, Pid) else target[0]
        conn = self.node.connection_or_none(node)
        if conn is not None:
            conn.send_message(control.demonitor_p(self.pid, remote, ref))

    def link(self, target: Pid) -> None:
        self.node.connection_for(str(target.node)).send_message(control.link(self.pid, target))
        self.links.add(target)

    def exit_signal(self, target: Pid, reason: Any) -> None:
        """``exit(Target, Reason)`` on a remote process."""
        self.node.connection_for(str(target.node)).send_message(control.exit2(self.pid, target, reason))

    def close(self, reason: Any = NORMAL) -> None:
        """End this process: fire monitors on it and break its links."""
        if not self.alive:
            return
        self.alive = False
        self.node.process_exited(self, reason)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(NodeDown("process has exited"))

    async def __aenter__(self) -> Process:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class LocalNode:
    """The gateway's identity on one cluster, and its connections to that cluster."""

    def __init__(
        self,
        name: str,
        cookie: Cookie,
        options: NodeOptions | None = None,
        *,
        creation: int | None = None,
    ) -> None:
        NodeName.parse(name)
        self.name = name
        self.atom = Atom(name)
        self._cookie = cookie
        self.options = options or NodeOptions()
        self.creation = creation if creation is not None else secrets.randbelow(2**32 - 4) + 4
        self._pid_ids = itertools.count(1)
        self._ref_ids = itertools.count(1)
        self._ref_salt = secrets.randbits(32)
        self._processes: dict[int, Process] = {}
        self._peers: dict[str, _Peer] = {}
        self._connecting: dict[str, asyncio.Future[Connection]] = {}
        #: Messages dropped: unknown destination, full mailbox, or no use for them.
        self.dropped = 0
        self.listeners: list[Callable[[str, DistError], None]] = []

    def __repr__(self) -> str:
        return f"<LocalNode {self.name} peers={sorted(self._peers)}>"

    # -- identities ----------------------------------------------------------------

    def make_ref(self) -> Reference:
        n = next(self._ref_ids)
        return Reference(self.atom, self.creation, (n & 0x3FFFF, (n >> 18) & 0xFFFFFFFF, self._ref_salt))

    def spawn(self, on_message: Callable[[Any], None] | None = None, *, mailbox_limit: int | None = None) -> Process:
        pid = Pid(self.atom, next(self._pid_ids), 0, self.creation)
        proc = Process(self, pid, mailbox_limit or self.options.mailbox_limit, on_message)
        self._processes[pid.id] = proc
        return proc

    def is_local(self, pid: Pid) -> bool:
        return pid.node == self.name and pid.creation == self.creation

    # -- connections ------------------------------------------------------------------

    def connection_or_none(self, peer: str) -> Connection | None:
        entry = self._peers.get(peer)
        return entry.conn if entry is not None and entry.conn.is_up else None

    def connection_for(self, peer: str) -> Connection:
        """The live connection to ``peer``; raises :class:`NodeDown` if there is none."""
        conn = self.connection_or_none(peer)
        if conn is None:
            raise NodeDown(f"not connected to {peer}")
        return conn

    async def connect(self, peer: str) -> Connection:
        """The live connection to ``peer``, connecting (once, shared) if needed."""
        conn = self.connection_or_none(peer)
        if conn is not None:
            return conn
        pending = self._connecting.get(peer)
        if pending is None:
            pending = asyncio.ensure_future(self._connect(peer))
            self._connecting[peer] = pending

            def forget(done: asyncio.Future[Connection]) -> None:
                self._connecting.pop(peer, None)
                if not done.cancelled():
                    done.exception()  # retrieved here even if every waiter was cancelled

            pending.add_done_callback(forget)
        return await asyncio.shield(pending)

    async def _connect(self, peer: str) -> Connection:
        target = NodeName.parse(peer)
        opts = self.options
        info = await epmd.lookup(target.host, target.alive, port=opts.epmd_port, timeout=opts.connect_timeout)
        if info.highest_version < 6:
            raise HandshakeFailed(f"{peer} only speaks distribution version {info.highest_version} (OTP < 23)")
        handshake = ClientHandshake(
            self.name, dflags.OURS, self.creation, self._cookie, peer, header_size=4 if opts.tls else 2
        )
        conn: Connection | None = None

        def factory() -> Connection:
            nonlocal conn
            conn = Connection(
                self,
                handshake,
                tick_interval=opts.tick_interval,
                tick_timeout=opts.tick_timeout,
                max_packet=opts.max_packet,
                max_write_buffer=opts.max_write_buffer,
            )
            return conn

        try:
            async with asyncio.timeout(opts.connect_timeout):
                await self._open(factory, target, info.port)
                assert conn is not None
                await conn.ready
        except BaseException as exc:
            if conn is not None:
                conn.close()  # never leave a half-open connection behind (timeout, cancel)
            if isinstance(exc, TimeoutError):
                raise ConnectTimeout(
                    f"timed out after {opts.connect_timeout:g}s connecting to {peer} on port {info.port} "
                    "(the node or a firewall is not answering)"
                ) from None
            raise
        log.info("connected to %s (hidden, as %s)", peer, self.name)
        return conn

    async def _open(self, factory: Callable[[], Connection], target: NodeName, port: int) -> None:
        """TCP (or TLS) connect to the node's distribution port, with each failure diagnosed."""
        opts = self.options
        peer = str(target)
        try:
            await asyncio.get_running_loop().create_connection(
                factory,
                target.host,
                port,
                ssl=opts.tls,  # the host name is checked iff the context says so (check_hostname)
            )
        except ConnectionRefusedError:
            raise ConnectionRefused(
                f"connection refused by {peer} on port {port}: epmd lists the node but nothing listens there "
                "(the node is stopping or hung, or a firewall rejects the port)"
            ) from None
        except socket.gaierror as exc:
            raise HostResolutionError(f"cannot resolve host {target.host!r}: {exc.strerror}") from None
        except ssl.SSLError as exc:
            raise tls_failure(peer, exc) from None
        except OSError as exc:
            raise ConnectionRefused(f"cannot connect to {peer} on port {port}: {exc.strerror or exc}") from None

    def connection_up(self, conn: Connection) -> None:
        """Called by a connection when its handshake completes, before it dispatches anything."""
        self._peers[conn.peer_name] = _Peer(conn)

    def connection_closed(self, conn: Connection, reason: DistError) -> None:
        """Called by a connection when it goes away: fire noconnection everywhere."""
        entry = self._peers.get(conn.peer_name)
        if entry is None or entry.conn is not conn:
            return
        del self._peers[conn.peer_name]
        log.info("connection to %s closed: %s", conn.peer_name, reason)
        for proc in list(self._processes.values()):
            for ref, target in list(proc.monitors.items()):
                node = str(target.node) if isinstance(target, Pid) else target[1]
                if node == conn.peer_name:
                    del proc.monitors[ref]
                    who = target if isinstance(target, Pid) else (target[0], Atom(target[1]))
                    proc.deliver((DOWN, ref, PROCESS, who, NOCONNECTION))
            for pid in [p for p in proc.links if str(p.node) == conn.peer_name]:
                proc.links.discard(pid)
                proc.deliver((EXIT, pid, NOCONNECTION))
        for listener in list(self.listeners):
            listener(conn.peer_name, reason)

    def close(self) -> None:
        """End every process and connection (gateway shutdown)."""
        for proc in list(self._processes.values()):
            proc.close(Atom("shutdown"))
        for entry in list(self._peers.values()):
            entry.conn.close()

    # -- process exits -------------------------------------------------------------------

    def process_exited(self, proc: Process, reason: Any) -> None:
        self._processes.pop(proc.pid.id, None)
        for entry in list(self._peers.values()):
            if not entry.conn.is_up:
                continue
            for ref, remote in entry.monitored_by.pop(proc.pid.id, {}).items():
                entry.conn.send_message(control.monitor_p_exit(proc.pid, remote, ref, reason))
        for remote in proc.links:
            conn = self.connection_or_none(str(remote.node))
            if conn is not None:
                conn.send_message(control.exit_(proc.pid, remote, reason))
        proc.links.clear()
        for ref in list(proc.monitors):
            proc.demonitor(ref)

    # -- incoming signals --------------------------------------------------------------

    def dispatch(self, conn: Connection, msg: control.ControlMessage) -> None:
        """Route one control message from ``conn`` to the gateway process it names."""
        kind = type(msg)
        if kind is control.Send:
            assert isinstance(msg, control.Send)
            proc = self._local(msg.to)
            if proc is None:
                self.dropped += 1
            else:
                proc.deliver(msg.message)
        elif kind is control.MonitorPExit:
            assert isinstance(msg, control.MonitorPExit)
            proc = self._local(msg.to)
            if proc is not None and proc.monitors.pop(msg.ref, None) is not None:
                who = msg.sender if isinstance(msg.sender, Pid) else (msg.sender, Atom(conn.peer_name))
                proc.deliver((DOWN, msg.ref, PROCESS, who, msg.reason))
        elif kind is control.MonitorP:
            assert isinstance(msg, control.MonitorP)
            self._on_monitor(conn, msg)
        elif kind is control.DemonitorP:
            assert isinstance(msg, control.DemonitorP)
            entry = self._peers.get(conn.peer_name)
            if entry is not None and isinstance(msg.to, Pid):
                watchers = entry.monitored_by.get(msg.to.id)
                if watchers is not None:
                    watchers.pop(msg.ref, None)
                    if not watchers:
                        del entry.monitored_by[msg.to.id]
        elif kind is control.Link:
            assert isinstance(msg, control.Link)
            proc = self._local(msg.to)
            if proc is None:
                conn.send_message(control.exit_(msg.to, msg.sender, NOPROC))
            else:
                proc.links.add(msg.sender)
        elif kind is control.UnlinkId:
            assert isinstance(msg, control.UnlinkId)
            proc = self._local(msg.to)
            if proc is not None:
                proc.links.discard(msg.sender)
            conn.send_message(control.unlink_id_ack(msg.id, msg.to, msg.sender))
        elif kind is control.Exit:
            assert isinstance(msg, control.Exit)
            proc = self._local(msg.to)
            if proc is None:
                self.dropped += 1
            elif msg.exit2:
                proc.deliver((EXIT, msg.sender, msg.reason))
            elif msg.sender in proc.links:  # a link exit for a link we do not hold is ignored, as erts does
                proc.links.discard(msg.sender)
                proc.deliver((EXIT, msg.sender, msg.reason))
        elif kind is control.SpawnRequest:
            assert isinstance(msg, control.SpawnRequest)
            self.dropped += 1
            conn.send_message(control.spawn_reply(msg.req_id, msg.sender, Atom("notsup")))
        else:
            # REG_SEND (we register no names: no rex here), GROUP_LEADER,
            # UNLINK_ID_ACK, and anything else: nothing to do.
            if kind is not control.UnlinkIdAck:
                self.dropped += 1

    def _local(self, pid: Any) -> Process | None:
        if type(pid) is not Pid or pid.creation != self.creation or pid.node != self.name:
            return None
        return self._processes.get(pid.id)

    def _on_monitor(self, conn: Connection, msg: control.MonitorP) -> None:
        proc = self._local(msg.to) if isinstance(msg.to, Pid) else None
        if proc is None:
            conn.send_message(control.monitor_p_exit(msg.to, msg.sender, msg.ref, NOPROC))  # type: ignore[arg-type]
            return
        entry = self._peers.get(conn.peer_name)
        if entry is not None:
            entry.monitored_by.setdefault(proc.pid.id, {})[msg.ref] = msg.sender
