"""The handshake state machine against scripted peer bytes (no sockets).

The peer side is written from OTP's ``erl_dist_protocol`` (version 6):
``'s' Status``, ``'N' Flags:8 Challenge:4 Creation:4 NLen:2 Name``,
``'a' Digest:16``, each behind a 2-byte length.
"""

from __future__ import annotations

import hashlib
import struct

import pytest

from gateway.dist import flags
from gateway.dist.errors import CookieRejected, HandshakeFailed, PeerAuthFailed, RemoteProtocolError
from gateway.dist.handshake import ClientHandshake, State
from gateway.secret import Cookie

COOKIE = b"the-test-cookie"
OURS = "beamgate@gw"
PEER = "app@host"
OUR_CHALLENGE = 0xDEADBEEF
PEER_CHALLENGE = 123456789


def digest(cookie: bytes, challenge: int) -> bytes:
    return hashlib.md5(cookie + str(challenge).encode()).digest()


def packet(body: bytes) -> bytes:
    return struct.pack(">H", len(body)) + body


def status(text: str) -> bytes:
    return packet(b"s" + text.encode())


def challenge(name: str = PEER, peer_flags: int = flags.MANDATORY | flags.PUBLISHED, creation: int = 77) -> bytes:
    raw = name.encode()
    return packet(b"N" + struct.pack(">QIIH", peer_flags, PEER_CHALLENGE, creation, len(raw)) + raw)


def ack(cookie: bytes = COOKIE) -> bytes:
    return packet(b"a" + digest(cookie, OUR_CHALLENGE))


def handshake() -> ClientHandshake:
    return ClientHandshake(OURS, flags.OURS, 4242, Cookie(COOKIE), PEER, challenge=OUR_CHALLENGE)


def test_send_name_is_version_6_and_hidden() -> None:
    hs = handshake()
    sent = hs.start()
    (length,) = struct.unpack(">H", sent[:2])
    assert length == len(sent) - 2
    assert sent[2:3] == b"N"
    sent_flags, creation, nlen = struct.unpack(">QIH", sent[3:17])
    assert sent[17:] == OURS.encode() and nlen == len(OURS)
    assert creation == 4242
    assert not sent_flags & flags.PUBLISHED
    assert sent_flags & flags.MANDATORY == flags.MANDATORY
    assert not sent_flags & (flags.DIST_HDR_ATOM_CACHE | flags.FRAGMENTS | flags.SPAWN)
    with pytest.raises(RuntimeError):
        hs.start()


def test_published_flag_is_refused() -> None:
    with pytest.raises(ValueError, match="hidden"):
        ClientHandshake(OURS, flags.OURS | flags.PUBLISHED, 1, Cookie(COOKIE), PEER)


@pytest.mark.parametrize("ok", ["ok", "ok_simultaneous"])
def test_complete_handshake(ok: str) -> None:
    hs = handshake()
    hs.start()
    assert hs.receive_data(status(ok)) == b""
    assert hs.state is State.AWAIT_CHALLENGE
    reply = hs.receive_data(challenge())
    assert reply == packet(b"r" + struct.pack(">I", OUR_CHALLENGE) + digest(COOKIE, PEER_CHALLENGE))
    assert hs.peer is None
    assert hs.receive_data(ack()) == b""
    assert hs.state is State.CONNECTED
    assert hs.peer is not None
    assert (hs.peer.name, hs.peer.creation) == (PEER, 77)
    assert hs.leftover == b""


def test_alive_is_answered_true_and_continues() -> None:
    hs = handshake()
    hs.start()
    assert hs.receive_data(status("alive")) == packet(b"strue")
    hs.receive_data(challenge())
    hs.receive_data(ack())
    assert hs.state is State.CONNECTED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not_allowed", "does not allow connections from beamgate@gw"),
        ("nok", "connecting to us at the same time"),
        ("named:", "refused the connection \\(status 'named:'\\)"),
        ("bogus", "status 'bogus'"),
    ],
)
def test_refusing_status(text: str, message: str) -> None:
    hs = handshake()
    hs.start()
    with pytest.raises(HandshakeFailed, match=message):
        hs.receive_data(status(text))
    assert hs.state is State.FAILED


def test_wrong_peer_digest_is_an_impostor() -> None:
    hs = handshake()
    hs.start()
    hs.receive_data(status("ok") + challenge())
    with pytest.raises(PeerAuthFailed, match="wrong digest: it does not hold the cluster cookie"):
        hs.receive_data(ack(b"another-cookie"))
    assert hs.peer is None


def test_close_after_our_digest_means_cookie_rejected() -> None:
    hs = handshake()
    hs.start()
    hs.receive_data(status("ok") + challenge())
    with pytest.raises(CookieRejected, match="rejected our cookie"):
        hs.connection_lost()


def test_close_before_status() -> None:
    hs = handshake()
    hs.start()
    with pytest.raises(HandshakeFailed, match="before answering our name") as err:
        hs.connection_lost()
    assert not isinstance(err.value, CookieRejected)


def test_close_after_status() -> None:
    hs = handshake()
    hs.start()
    hs.receive_data(status("ok"))
    with pytest.raises(HandshakeFailed, match="after accepting our name"):
        hs.connection_lost()


def test_close_after_connected_is_not_an_error() -> None:
    hs = handshake()
    hs.start()
    hs.receive_data(status("ok") + challenge() + ack())
    hs.connection_lost()  # nothing to diagnose: the handshake was done


def test_oversized_handshake_packet() -> None:
    hs = handshake()
    hs.start()
    with pytest.raises(RemoteProtocolError, match="handshake packet of 60000 bytes"):
        hs.receive_data(struct.pack(">H", 60000) + b"s")


def test_tls_answer_to_a_plain_handshake() -> None:
    hs = handshake()
    hs.start()
    with pytest.raises(HandshakeFailed, match="answered with TLS"):
        hs.receive_data(b"\x15\x03\x03\x00\x02\x02\x28")  # a TLS alert record


def test_four_byte_headers_for_tls() -> None:
    hs = ClientHandshake(OURS, flags.OURS, 4242, Cookie(COOKIE), PEER, challenge=OUR_CHALLENGE, header_size=4)
    sent = hs.start()
    assert struct.unpack(">I", sent[:4])[0] == len(sent) - 4 and sent[4:5] == b"N"
    wide = [struct.pack(">I", len(p) - 2) + p[2:] for p in (status("ok"), challenge(), ack())]
    reply = hs.receive_data(wide[0] + wide[1])
    assert reply[:4] == struct.pack(">I", 21) and reply[4:5] == b"r"
    hs.receive_data(wide[2])
    assert hs.state is State.CONNECTED


def test_empty_handshake_packet() -> None:
    hs = handshake()
    hs.start()
    with pytest.raises(RemoteProtocolError, match="empty handshake packet"):
        hs.receive_data(b"\x00\x00")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (packet(b"x"), "expected a status message"),
        (status("ok") + packet(b"Nshort"), "expected a version 6 challenge"),
        (status("ok") + packet(b"n" + bytes(30)), "expected a version 6 challenge"),
        (status("ok") + challenge() + packet(b"a" + bytes(3)), "expected a challenge ack"),
    ],
)
def test_unexpected_messages(data: bytes, message: str) -> None:
    hs = handshake()
    hs.start()
    with pytest.raises(RemoteProtocolError, match=message):
        hs.receive_data(data)


def test_peer_lacking_mandatory_flags() -> None:
    hs = handshake()
    hs.start()
    hs.receive_data(status("ok"))
    with pytest.raises(HandshakeFailed, match="lacks mandatory distribution flags: UNLINK_ID, V4_NC"):
        hs.receive_data(challenge(peer_flags=flags.MANDATORY_25))


def test_peer_name_mismatch() -> None:
    hs = handshake()
    hs.start()
    hs.receive_data(status("ok"))
    with pytest.raises(HandshakeFailed, match="asked for app@host but other@host answered"):
        hs.receive_data(challenge(name="other@host"))


def test_bytes_after_the_ack_are_kept() -> None:
    hs = handshake()
    hs.start()
    first_packets = b"\x00\x00\x00\x00" + b"\x00\x00\x00\x03abc"
    hs.receive_data(status("ok") + challenge() + ack() + first_packets)
    assert hs.state is State.CONNECTED
    assert hs.leftover == first_packets


def test_one_byte_at_a_time() -> None:
    hs = handshake()
    hs.start()
    replies = b""
    stream = status("alive") + challenge() + ack() + b"\x00\x00\x00\x00"
    for i in range(len(stream)):
        replies += hs.receive_data(stream[i : i + 1])
        if hs.state is State.CONNECTED:
            assert i == len(stream) - 5  # the ack's last byte
            break
    assert replies == packet(b"strue") + packet(
        b"r" + struct.pack(">I", OUR_CHALLENGE) + digest(COOKIE, PEER_CHALLENGE)
    )
    assert hs.peer is not None


def test_repr_and_errors_never_show_the_cookie() -> None:
    rejected, impostor = handshake(), handshake()
    assert COOKIE.decode() not in repr(rejected)
    for hs in (rejected, impostor):
        hs.start()
        hs.receive_data(status("ok") + challenge())
    with pytest.raises(CookieRejected) as err1:
        rejected.connection_lost()
    with pytest.raises(PeerAuthFailed) as err2:
        impostor.receive_data(ack(b"wrong"))
    for err in (err1, err2):
        assert COOKIE.decode() not in str(err.value)
        assert COOKIE.decode() not in repr(err.value)
