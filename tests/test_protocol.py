"""Connected-state framing and control messages, without sockets."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from gateway.dist import control, etf
from gateway.dist.errors import LocalProtocolError, RemoteProtocolError
from gateway.dist.protocol import TICK, TICK_PACKET, DistProtocol, Undecodable
from gateway.dist.terms import Atom, Pid, Reference

PEER = Atom("app@host")
GW = Atom("beamgate@gw")
THEM = Pid(PEER, 50, 0, 7)
US = Pid(GW, 1, 0, 9)
REF = Reference(GW, 9, (1, 2, 3))


def pass_through(ctrl: Any, *payload: Any) -> bytes:
    """A packet as a peer without the distribution header sends it."""
    body = b"p" + etf.encode(ctrl) + b"".join(etf.encode(p) for p in payload)
    return struct.pack(">I", len(body)) + body


def events(proto: DistProtocol, data: bytes) -> list[Any]:
    proto.receive_data(data)
    return list(proto.events())


def test_ticks() -> None:
    proto = DistProtocol()
    assert events(proto, TICK_PACKET * 3) == [TICK, TICK, TICK]
    assert proto.packets_received == 3


def test_packet_split_across_reads_one_byte_at_a_time() -> None:
    proto = DistProtocol()
    data = pass_through((control.SEND, Atom(""), US), (Atom("hello"), [1, 2]))
    seen: list[Any] = []
    for i in range(len(data)):
        seen += events(proto, data[i : i + 1])
        assert seen == [] or i == len(data) - 1
    assert seen == [control.Send(US, (Atom("hello"), [1, 2]))]


def test_many_packets_per_read_in_order() -> None:
    proto = DistProtocol()
    data = b"".join(pass_through((control.SEND, Atom(""), US), n) for n in range(100)) + TICK_PACKET
    got = events(proto, data + data[:10])  # and the start of one more
    assert [e.message for e in got[:100]] == list(range(100))
    assert got[100] is TICK
    assert events(proto, data[10:])[0] == control.Send(US, 0)


def test_oversized_length_refused_from_the_header_alone() -> None:
    proto = DistProtocol(max_packet=1024)
    with pytest.raises(RemoteProtocolError, match="packet of 1025 bytes, over the limit of 1024"):
        events(proto, struct.pack(">I", 1025))  # not one byte of the body has arrived
    proto = DistProtocol(max_packet=1024)
    assert events(proto, pass_through((control.SEND, Atom(""), US), b"x" * 900)) != []


def test_oversized_after_good_packets_delivers_those_first() -> None:
    proto = DistProtocol(max_packet=1024)
    proto.receive_data(pass_through((control.SEND, Atom(""), US), 1) + struct.pack(">I", 2**31))
    it = proto.events()
    assert next(it) == control.Send(US, 1)
    with pytest.raises(RemoteProtocolError, match="over the limit"):
        next(it)


def test_compressed_payload_is_bounded_by_max_packet() -> None:
    import zlib

    inflated = b"m" + struct.pack(">I", 4096) + bytes(4096)
    body = b"p" + etf.encode((control.SEND, Atom(""), US)) + b"\x83P" + struct.pack(">I", len(inflated))
    body += zlib.compress(inflated)
    proto = DistProtocol(max_packet=1024)
    (message,) = events(proto, struct.pack(">I", len(body)) + body)
    assert isinstance(message, control.Send)
    assert isinstance(message.message, Undecodable)
    assert "inflates to 4101 bytes" in message.message.reason
    assert proto.undecodable == 1


def test_undecodable_payload_keeps_the_stream_and_names_the_request() -> None:
    """A refused payload costs that message only; the next packet parses, and {Ref, _} keeps its Ref."""
    levels = etf.DEFAULT_MAX_DEPTH + 10  # {Ref, [[[...]]]}, built by hand: our encoder refuses it too
    deep = b"l\x00\x00\x00\x01" * levels + b"j" + b"j" * levels
    reply = b"p" + etf.encode((control.SEND, Atom(""), US)) + b"\x83h\x02" + etf.encode_body(REF) + deep
    broken = b"p" + etf.encode((control.SEND, Atom(""), US)) + b"\x83l\x00\x00\x00\x09a"
    after = b"p" + etf.encode((control.SEND, Atom(""), US)) + etf.encode(Atom("next"))
    proto = DistProtocol()
    stream = b"".join(struct.pack(">I", len(b)) + b for b in (reply, broken, after))
    first, second, third = events(proto, stream)
    assert isinstance(first, control.Send) and isinstance(first.message, Undecodable)
    assert first.message.head == REF and "nested deeper" in first.message.reason
    assert isinstance(second, control.Send) and isinstance(second.message, Undecodable)
    assert second.message.head is None
    assert third == control.Send(US, Atom("next"))
    assert proto.undecodable == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"q" + etf.encode((control.SEND, Atom(""), US)), "packet type 113"),
        (b"\x44" + bytes(10), "packet type 68 .*distribution header not negotiated"),
        (b"p\x83\xff", "malformed control message from peer: unknown term tag 255"),
        (b"p" + etf.encode((control.SEND, Atom(""), US)), "control message 2 without its payload"),
        (b"p" + etf.encode((control.REG_SEND, THEM, Atom(""), Atom("x"))), "without its payload"),
        (b"p" + etf.encode((control.LINK, THEM, US)) + etf.encode(1) + b"zz", "2 stray bytes"),
        (b"p" + etf.encode(Atom("hello")), "not a tuple starting with an operation"),
        (b"p" + etf.encode(()), "not a tuple starting with an operation"),
        (b"p" + etf.encode((control.MONITOR_P, THEM)), "control message 19 has too few elements"),
        (b"p" + etf.encode((control.SEND, Atom(""), US))[:-3], "malformed control message"),
    ],
)
def test_malformed_packets(body: bytes, message: str) -> None:
    proto = DistProtocol()
    with pytest.raises(RemoteProtocolError, match=message):
        events(proto, struct.pack(">I", len(body)) + body)


PARSED = [
    ((control.SEND, Atom(""), US), (1,), control.Send(US, 1)),
    ((control.SEND_TT, Atom(""), US, Atom("token")), (1,), control.Send(US, 1)),
    ((control.SEND_SENDER, THEM, US), (1,), control.Send(US, 1, THEM)),
    ((control.ALIAS_SEND, THEM, REF), (1,), control.Send(REF, 1, THEM)),
    ((control.REG_SEND, THEM, Atom(""), Atom("rex")), (1,), control.RegSend(THEM, Atom("rex"), 1)),
    ((control.LINK, THEM, US), (), control.Link(THEM, US)),
    ((control.EXIT, THEM, US, Atom("boom")), (), control.Exit(THEM, US, Atom("boom"))),
    ((control.EXIT_TT, THEM, US, Atom("tok"), Atom("boom")), (), control.Exit(THEM, US, Atom("boom"))),
    ((control.PAYLOAD_EXIT, THEM, US), (Atom("boom"),), control.Exit(THEM, US, Atom("boom"))),
    ((control.EXIT2, THEM, US, Atom("kill")), (), control.Exit(THEM, US, Atom("kill"), exit2=True)),
    ((control.PAYLOAD_EXIT2, THEM, US), (Atom("kill"),), control.Exit(THEM, US, Atom("kill"), exit2=True)),
    ((control.MONITOR_P, THEM, US, REF), (), control.MonitorP(THEM, US, REF)),
    ((control.MONITOR_P, THEM, Atom("name"), REF), (), control.MonitorP(THEM, Atom("name"), REF)),
    ((control.DEMONITOR_P, THEM, US, REF), (), control.DemonitorP(THEM, US, REF)),
    ((control.MONITOR_P_EXIT, THEM, US, REF, Atom("normal")), (), control.MonitorPExit(THEM, US, REF, Atom("normal"))),
    ((control.PAYLOAD_MONITOR_P_EXIT, THEM, US, REF), (7,), control.MonitorPExit(THEM, US, REF, 7)),
    ((control.UNLINK_ID, 5, THEM, US), (), control.UnlinkId(5, THEM, US)),
    ((control.UNLINK_ID_ACK, 5, THEM, US), (), control.UnlinkIdAck(5, THEM, US)),
    ((control.SPAWN_REQUEST, REF, THEM, THEM, (Atom("m"), Atom("f"), 0), []), ([],), control.SpawnRequest(REF, THEM)),
    ((control.GROUP_LEADER, THEM, US), (), control.Other(control.GROUP_LEADER, (control.GROUP_LEADER, THEM, US))),
]


@pytest.mark.parametrize(("ctrl", "payload", "expected"), PARSED, ids=[type(p[2]).__name__ for p in PARSED])
def test_control_messages_parse(ctrl: tuple[Any, ...], payload: tuple[Any, ...], expected: Any) -> None:
    assert events(DistProtocol(), pass_through(ctrl, *payload)) == [expected]


def test_what_we_send_parses_back() -> None:
    sent = [
        (control.send(THEM, b"hi"), control.Send(THEM, b"hi")),
        (control.reg_send(US, Atom("rex"), (1, 2)), control.RegSend(US, Atom("rex"), (1, 2))),
        (control.link(US, THEM), control.Link(US, THEM)),
        (control.exit_(US, THEM, Atom("normal")), control.Exit(US, THEM, Atom("normal"))),
        (control.exit2(US, THEM, Atom("kill")), control.Exit(US, THEM, Atom("kill"), exit2=True)),
        (control.monitor_p(US, THEM, REF), control.MonitorP(US, THEM, REF)),
        (control.demonitor_p(US, Atom("name"), REF), control.DemonitorP(US, Atom("name"), REF)),
        (control.monitor_p_exit(US, THEM, REF, Atom("x")), control.MonitorPExit(US, THEM, REF, Atom("x"))),
        (control.unlink_id_ack(3, US, THEM), control.UnlinkIdAck(3, US, THEM)),
    ]
    proto = DistProtocol()
    for (ctrl, payload), expected in sent:
        data = DistProtocol.encode(ctrl, payload, with_payload=ctrl[0] in control.WITH_PAYLOAD)
        assert events(proto, data) == [expected]


def test_encode_raw_control_and_empty_payload() -> None:
    ctrl = (control.REG_SEND, US, Atom(""), Atom("rex"))
    assert DistProtocol.encode(etf.Raw(ctrl), 1) == DistProtocol.encode(ctrl, 1)
    # A payload that is the empty list is still sent when asked for.
    data = DistProtocol.encode((control.SEND, Atom(""), THEM), [], with_payload=True)
    assert events(DistProtocol(), data) == [control.Send(THEM, [])]


def test_encode_error_is_local() -> None:
    with pytest.raises(LocalProtocolError, match="no Erlang term"):
        DistProtocol.encode((control.SEND, Atom(""), THEM), object())


def test_rex_request_assembled_from_cached_parts_equals_the_plain_encoding() -> None:
    from gateway.dist.node import LocalNode
    from gateway.dist.rpc import RpcClient
    from gateway.secret import Cookie

    rpc = RpcClient(LocalNode("gw@host", Cookie(b"cookie")))
    ref = rpc.local.make_ref()
    for module, function, args in [("erlang", "node", []), ("erl_eval", "exprs", [[1, b"x"], [(Atom("X"), 2.5)]])]:
        plain = (
            Atom("$gen_call"),
            (rpc.process.pid, ref),
            (Atom("call"), Atom(module), Atom(function), args, Atom("user")),
        )
        assert rpc._request(ref, Atom(module), Atom(function), args).body == etf.encode(plain)[1:]
