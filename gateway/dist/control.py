"""Control messages of the connected distribution protocol.

Named and numbered as in OTP's ``erl_dist_protocol`` (*Protocol between
Connected Nodes*). The ``*_TT`` variants carry a sequential-trace token that
beamgate does not use; they decode to their plain counterparts. The
``PAYLOAD_*`` variants carry the exit reason as a separate term and decode to
the same classes as the non-payload ones.

Messages are built for every packet received, so they are slotted (not
frozen: a frozen dataclass costs about 1 us more to build); nothing
mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import RemoteProtocolError
from .terms import Atom, Pid, Reference

LINK = 1
SEND = 2
EXIT = 3
UNLINK = 4
NODE_LINK = 5
REG_SEND = 6
GROUP_LEADER = 7
EXIT2 = 8
SEND_TT = 12
EXIT_TT = 13
REG_SEND_TT = 16
EXIT2_TT = 18
MONITOR_P = 19
DEMONITOR_P = 20
MONITOR_P_EXIT = 21
SEND_SENDER = 22
SEND_SENDER_TT = 23
PAYLOAD_EXIT = 24
PAYLOAD_EXIT_TT = 25
PAYLOAD_EXIT2 = 26
PAYLOAD_EXIT2_TT = 27
PAYLOAD_MONITOR_P_EXIT = 28
SPAWN_REQUEST = 29
SPAWN_REQUEST_TT = 30
SPAWN_REPLY = 31
SPAWN_REPLY_TT = 32
ALIAS_SEND = 33
ALIAS_SEND_TT = 34
UNLINK_ID = 35
UNLINK_ID_ACK = 36

_EMPTY = Atom("")


@dataclass(slots=True)
class Send:
    """SEND / SEND_SENDER / ALIAS_SEND: ``message`` for ``to`` (a pid or an alias ref)."""

    to: Pid | Reference
    message: Any
    sender: Pid | None = None


@dataclass(slots=True)
class RegSend:
    """REG_SEND: ``message`` for the process registered as ``to_name``."""

    sender: Pid
    to_name: Atom
    message: Any


@dataclass(slots=True)
class Link:
    sender: Pid
    to: Pid


@dataclass(slots=True)
class UnlinkId:
    id: int
    sender: Pid
    to: Pid


@dataclass(slots=True)
class UnlinkIdAck:
    id: int
    sender: Pid
    to: Pid


@dataclass(slots=True)
class Exit:
    """EXIT (a link broke) or, with ``exit2`` set, EXIT2 (``exit/2`` called on us)."""

    sender: Pid
    to: Pid
    reason: Any
    exit2: bool = False


@dataclass(slots=True)
class MonitorP:
    sender: Pid
    to: Pid | Atom
    ref: Reference


@dataclass(slots=True)
class DemonitorP:
    sender: Pid
    to: Pid | Atom
    ref: Reference


@dataclass(slots=True)
class MonitorPExit:
    """The monitored process ``sender`` (pid or name) ended with ``reason``."""

    sender: Pid | Atom
    to: Pid
    ref: Reference
    reason: Any


@dataclass(slots=True)
class SpawnRequest:
    req_id: Reference
    sender: Pid


@dataclass(slots=True)
class Other:
    """A control message beamgate has no use for (GROUP_LEADER, NODE_LINK, ...)."""

    op: int
    control: tuple[Any, ...]


ControlMessage = Send | RegSend | Link | UnlinkId | UnlinkIdAck | Exit | MonitorP | DemonitorP | MonitorPExit | SpawnRequest | Other

#: Operations followed by a second term (message, reason or argument list).
WITH_PAYLOAD = frozenset(
    {
        SEND, REG_SEND, SEND_TT, REG_SEND_TT, SEND_SENDER, SEND_SENDER_TT,
        PAYLOAD_EXIT, PAYLOAD_EXIT_TT, PAYLOAD_EXIT2, PAYLOAD_EXIT2_TT,
        PAYLOAD_MONITOR_P_EXIT, SPAWN_REQUEST, SPAWN_REQUEST_TT,
        ALIAS_SEND, ALIAS_SEND_TT,
    }
)  # fmt: skip


_SEND_FROM = frozenset({SEND_SENDER_TT, ALIAS_SEND, ALIAS_SEND_TT})


def parse(control: Any, payload: Any = None) -> ControlMessage:
    """Turn a decoded control tuple (and its payload term) into a message object."""
    if not isinstance(control, tuple) or not control or not isinstance(control[0], int):
        raise RemoteProtocolError("control message is not a tuple starting with an operation")
    op = control[0]
    try:
        if op == SEND_SENDER:  # what every rex reply is: first
            return Send(control[2], payload, control[1])
        if op == SEND or op == SEND_TT:
            return Send(control[2], payload)
        if op in _SEND_FROM:
            return Send(control[2], payload, control[1])
        if op == REG_SEND or op == REG_SEND_TT:
            return RegSend(control[1], control[3], payload)
        if op == MONITOR_P_EXIT:
            return MonitorPExit(control[1], control[2], control[3], control[4])
        if op == PAYLOAD_MONITOR_P_EXIT:
            return MonitorPExit(control[1], control[2], control[3], payload)
        if op == LINK:
            return Link(control[1], control[2])
        if op == EXIT or op == EXIT_TT:
            return Exit(control[1], control[2], control[-1])
        if op == PAYLOAD_EXIT or op == PAYLOAD_EXIT_TT:
            return Exit(control[1], control[2], payload)
        if op == EXIT2 or op == EXIT2_TT:
            return Exit(control[1], control[2], control[-1], exit2=True)
        if op == PAYLOAD_EXIT2 or op == PAYLOAD_EXIT2_TT:
            return Exit(control[1], control[2], payload, exit2=True)
        if op == MONITOR_P:
            return MonitorP(control[1], control[2], control[3])
        if op == DEMONITOR_P:
            return DemonitorP(control[1], control[2], control[3])
        if op == UNLINK_ID:
            return UnlinkId(control[1], control[2], control[3])
        if op == UNLINK_ID_ACK:
            return UnlinkIdAck(control[1], control[2], control[3])
        if op == SPAWN_REQUEST or op == SPAWN_REQUEST_TT:
            return SpawnRequest(control[1], control[2])
    except IndexError:
        raise RemoteProtocolError(f"control message {op} has too few elements") from None
    return Other(op, control)


# -- encoders for what the gateway sends -----------------------------------


def send(to: Pid, message: Any) -> tuple[tuple[Any, ...], Any]:
    return (SEND, _EMPTY, to), message


def reg_send(sender: Pid, to_name: Atom, message: Any) -> tuple[tuple[Any, ...], Any]:
    return (REG_SEND, sender, _EMPTY, to_name), message


def link(sender: Pid, to: Pid) -> tuple[tuple[Any, ...], None]:
    return (LINK, sender, to), None


def unlink_id(id_: int, sender: Pid, to: Pid) -> tuple[tuple[Any, ...], None]:
    return (UNLINK_ID, id_, sender, to), None


def unlink_id_ack(id_: int, sender: Pid, to: Pid) -> tuple[tuple[Any, ...], None]:
    return (UNLINK_ID_ACK, id_, sender, to), None


def exit_(sender: Pid, to: Pid, reason: Any) -> tuple[tuple[Any, ...], None]:
    """EXIT: the link between ``sender`` (ours, now ended) and ``to`` broke."""
    return (EXIT, sender, to, reason), None


def exit2(sender: Pid, to: Pid, reason: Any) -> tuple[tuple[Any, ...], None]:
    """EXIT2: ``exit(To, Reason)`` called by ``sender``."""
    return (EXIT2, sender, to, reason), None


def monitor_p(sender: Pid, to: Pid | Atom, ref: Reference) -> tuple[tuple[Any, ...], None]:
    return (MONITOR_P, sender, to, ref), None


def demonitor_p(sender: Pid, to: Pid | Atom, ref: Reference) -> tuple[tuple[Any, ...], None]:
    return (DEMONITOR_P, sender, to, ref), None


def monitor_p_exit(sender: Pid, to: Pid, ref: Reference, reason: Any) -> tuple[tuple[Any, ...], None]:
    return (MONITOR_P_EXIT, sender, to, ref, reason), None


def spawn_reply(req_id: Reference, to: Pid, result: Atom) -> tuple[tuple[Any, ...], None]:
    return (SPAWN_REPLY, req_id, to, 0, result), None
