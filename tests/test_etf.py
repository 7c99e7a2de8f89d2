"""The term codec, without a node: every term type both ways, and every decode bound.

Byte strings marked "from OTP" were produced by ``term_to_binary/1`` on
Debian's OTP 25 (``erl -eval 'io:format("~w", [term_to_binary(T)])'``); the
real-node round trips are in ``test_codec_roundtrip.py``.
"""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from typing import Any

import erlang
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dist import etf
from gateway.dist.terms import (
    Atom,
    BitString,
    ExportFun,
    FrozenList,
    FrozenMap,
    ImproperList,
    OpaqueFun,
    Pid,
    Port,
    Reference,
)

NODE = Atom("app@host")

# Term, and its exact encoding (what Erlang's term_to_binary produces, with UTF-8 atoms).
EXACT: list[tuple[str, Any, bytes]] = [
    ("small int", 7, b"\x83a\x07"),
    ("int", -1, b"\x83b\xff\xff\xff\xff"),
    ("int32 max", 2**31 - 1, b"\x83b\x7f\xff\xff\xff"),
    ("small big", 2**31, b"\x83n\x04\x00\x00\x00\x00\x80"),
    ("negative big", -(2**64), b"\x83n\x09\x01" + bytes(8) + b"\x01"),
    ("float", 3.5, b"\x83F\x40\x0c\x00\x00\x00\x00\x00\x00"),
    ("atom", Atom("hello"), b"\x83w\x05hello"),
    ("true", True, b"\x83w\x04true"),
    ("false", False, b"\x83w\x05false"),
    ("unicode atom", Atom("h\u2603"), b"\x83w\x04h\xe2\x98\x83"),
    ("binary", b"ab", b"\x83m\x00\x00\x00\x02ab"),
    ("empty binary", b"", b"\x83m\x00\x00\x00\x00"),
    ("bitstring", BitString(b"\x20", 3), b"\x83M\x00\x00\x00\x01\x03\x20"),
    ("empty list", [], b"\x83j"),
    ("list", [1, Atom("a")], b"\x83l\x00\x00\x00\x02a\x01w\x01aj"),
    ("improper list", ImproperList((1,), 2), b"\x83l\x00\x00\x00\x01a\x01a\x02"),
    ("empty tuple", (), b"\x83h\x00"),
    ("tuple", (1, 2), b"\x83h\x02a\x01a\x02"),
    ("empty map", {}, b"\x83t\x00\x00\x00\x00"),
    ("map", {Atom("a"): 1}, b"\x83t\x00\x00\x00\x01w\x01aa\x01"),
    ("pid", Pid(NODE, 1, 2, 3), b"\x83Xw\x08app@host" + struct.pack(">III", 1, 2, 3)),
    ("port", Port(NODE, 5, 3), b"\x83Yw\x08app@host" + struct.pack(">II", 5, 3)),
    ("v4 port", Port(NODE, 2**40, 3), b"\x83xw\x08app@host" + struct.pack(">QI", 2**40, 3)),
    ("reference", Reference(NODE, 3, (1, 2, 3)), b"\x83Z\x00\x03w\x08app@host" + struct.pack(">IIII", 3, 1, 2, 3)),
    ("export fun", ExportFun(Atom("lists"), Atom("map"), 2), b"\x83qw\x05listsw\x03mapa\x02"),
]


@pytest.mark.parametrize(("term", "data"), [(t, d) for _, t, d in EXACT], ids=[n for n, _, _ in EXACT])
def test_exact_encoding_both_ways(term: Any, data: bytes) -> None:
    assert etf.encode(term) == data
    decoded = etf.decode(data)
    assert decoded == term
    assert type(decoded) is type(term)


def test_python_text_encodes_as_a_binary_never_an_atom() -> None:
    assert etf.encode("h\u00e9") == b"\x83m\x00\x00\x00\x03h\xc3\xa9"
    assert etf.decode(etf.encode("h\u00e9")) == "h\u00e9".encode()


def test_charlist_string_ext_decodes_to_a_list_of_ints() -> None:
    assert etf.decode(b"\x83k\x00\x03abc") == [97, 98, 99]  # from OTP: term_to_binary("abc")


def test_latin1_atoms_as_otp25_emits_them() -> None:
    assert etf.decode(b"\x83d\x00\x05hello") == Atom("hello")  # from OTP 25: term_to_binary(hello)
    assert etf.decode(b"\x83d\x00\x04caf\xe9") == Atom("caf\u00e9")  # term_to_binary('café')
    assert etf.decode(b"\x83s\x04caf\xe9") == Atom("caf\u00e9")  # SMALL_ATOM_EXT
    assert etf.decode(b"\x83d\x00\x04true") is True
    # an OTP 25 export fun: ATOM_EXT parts
    assert etf.decode(b"\x83qd\x00\x05listsd\x00\x03mapa\x02") == ExportFun(Atom("lists"), Atom("map"), 2)


def test_old_pid_port_reference_and_float_encodings() -> None:
    assert etf.decode(b"\x83gw\x08app@host" + struct.pack(">IIB", 1, 2, 3)) == Pid(NODE, 1, 2, 3)
    assert etf.decode(b"\x83fw\x08app@host" + struct.pack(">IB", 5, 3)) == Port(NODE, 5, 3)
    assert etf.decode(b"\x83r\x00\x01w\x08app@host\x03" + struct.pack(">I", 9)) == Reference(NODE, 3, (9,))
    assert etf.decode(b"\x83c" + b"1.50000000000000000000e+00".ljust(31, b"\0")) == 1.5


def test_compressed_term_from_otp() -> None:
    # term_to_binary(lists:duplicate(100, hello), [compressed]) on OTP 25
    data = bytes(
        [131, 80, 0, 0, 3, 38, 120, 156, 203, 97, 96, 96, 72, 73, 97, 96, 205, 72, 205, 201, 201, 31, 165, 71,
         233, 81, 26, 147, 206, 2, 0, 52, 16, 250, 15]
    )  # fmt: skip
    assert etf.decode(data) == [Atom("hello")] * 100


def test_big_integers_both_signs_and_large_big() -> None:
    for value in (2**64, -(2**64) + 1, 10**100, -(10**100), 2**2100, -(2**2100)):
        data = etf.encode(value)
        assert data[1] == (etf.LARGE_BIG_EXT if abs(value).bit_length() > 255 * 8 else etf.SMALL_BIG_EXT)
        assert etf.decode(data) == value


def test_map_keys_that_are_lists_maps_or_hold_them() -> None:
    term = {
        FrozenList([1, 2]): Atom("list"),
        FrozenMap({Atom("k"): 1}): Atom("map"),
        (FrozenList([3]), 4): Atom("tuple holding a list"),
        ImproperList((FrozenList([5]),), 6): Atom("improper list holding a list"),
    }
    decoded = etf.decode(etf.encode(term))
    assert decoded == term
    assert decoded[FrozenList([1, 2])] == Atom("list")
    # from OTP: term_to_binary(#{[1] => a})
    assert etf.decode(b"\x83t\x00\x00\x00\x01k\x00\x01\x01d\x00\x01a") == {FrozenList([1]): Atom("a")}


def test_bitstring_unused_bits_are_cleared() -> None:
    assert BitString(b"\xff", 3) == BitString(b"\xe0", 3)
    assert etf.encode(BitString(b"\xff", 3)) == etf.encode(BitString(b"\xe0", 3))


def test_opaque_fun_is_kept_byte_for_byte() -> None:
    # NEW_FUN_EXT: Size:4 Arity:1 Uniq:16 Index:4 NumFree:4 Module OldIndex OldUniq Pid FreeVars
    rest = b"\x01" + bytes(range(16)) + struct.pack(">II", 3, 1) + b"w\x05mymod" + b"a\x00" + b"a\x01"
    rest += etf.encode(Pid(NODE, 1, 0, 1))[1:] + b"w\x04free"
    data = b"\x83p" + struct.pack(">I", 4 + len(rest)) + rest
    fun = etf.decode(data)
    assert isinstance(fun, OpaqueFun)
    assert fun.module == Atom("mymod")
    assert etf.encode(fun) == data


# -- decode bounds ------------------------------------------------------------


def sample_terms() -> list[Any]:
    return [t for _, t, _ in EXACT] + [
        {Atom("nested"): [(1, [2, {3: b"x"}]), ImproperList((1, 2), Atom("t"))]},
        [Pid(NODE, 1, 0, 1), Reference(NODE, 1, (1, 2)), Port(NODE, 1, 1), 2**70, -1.5, BitString(b"\x80", 1)],
    ]


@pytest.mark.parametrize("term", sample_terms(), ids=lambda t: type(t).__name__)
def test_truncated_at_every_offset_is_a_clean_error(term: Any) -> None:
    data = etf.encode(term)
    for cut in range(len(data)):
        with pytest.raises(etf.DecodeError):
            etf.decode(data[:cut])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x83m\xff\xff\xff\xffab", "truncated"),  # binary claiming 4 GiB
        (b"\x83l\xff\xff\xff\xffa\x01j", "truncated"),  # list claiming 4 billion elements
        (b"\x83i\xff\xff\xff\xffa\x01", "truncated"),  # tuple claiming 4 billion elements
        (b"\x83t\xff\xff\xff\xffa\x01a\x01", "truncated"),  # map claiming 4 billion pairs
        (b"\x83w\xffabc", "truncated"),  # atom claiming 255 bytes
        (b"\x83v\xff\xffabc", "truncated"),
        (b"\x83k\xff\xffabc", "truncated"),  # string claiming 65535 bytes
        (b"\x83o\xff\xff\xff\xff\x00\x01", "truncated"),  # big integer claiming 4 GiB of digits
        (b"\x83M\xff\xff\xff\xff\x03\x20", "truncated"),
        (b"\x83Z\x00\x09w\x01a" + bytes(40), "at most 5"),  # reference with 9 id words
        (b"\x83M\x00\x00\x00\x01\x09\x20", "malformed bitstring"),  # 9 bits in a byte
        (b"\x83p\x00\x00\x00\x05", "malformed fun"),
    ],
)
def test_forged_lengths_are_refused_without_allocating(data: bytes, message: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(etf.DecodeError, match=message):
            etf.decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


@pytest.mark.parametrize(
    ("wrap", "name"),
    [
        (lambda inner: b"h\x01" + inner, "tuple"),
        (lambda inner: b"l\x00\x00\x00\x01" + inner + b"j", "list"),
        (lambda inner: b"t\x00\x00\x00\x01a\x00" + inner, "map value"),
        (lambda inner: b"l\x00\x00\x00\x01a\x00" + inner, "improper tail"),
    ],
)
def test_nesting_depth_is_capped(wrap: Any, name: str) -> None:
    def nest(depth: int) -> bytes:
        body = b"a\x01"
        for _ in range(depth):
            body = wrap(body)
        return b"\x83" + body

    assert etf.decode(nest(50), max_depth=50) is not None
    with pytest.raises(etf.DecodeError, match="nested deeper than 50"):
        etf.decode(nest(51), max_depth=50)
    with pytest.raises(etf.DecodeError, match="nested deeper"):  # far past Python's recursion limit
        etf.decode(nest(5000))


def test_atom_only_positions_do_not_recurse() -> None:
    # A pid whose node is a pid whose node is a pid...: only an atom may stand there.
    with pytest.raises(etf.DecodeError, match="expected an atom"):
        etf.decode(b"\x83" + b"X" * 5000 + b"w\x01a" + bytes(12) * 5000)
    with pytest.raises(etf.DecodeError, match="expected an atom"):
        etf.decode(b"\x83q" + b"q" * 3000 + b"w\x01a")
    with pytest.raises(etf.DecodeError, match="small integer"):
        etf.decode(b"\x83qw\x01mw\x01fh\x00")


def test_zlib_bomb_is_refused_before_inflating() -> None:
    inflated = b"m" + struct.pack(">I", 50 * 1024 * 1024) + bytes(50 * 1024 * 1024)
    bomb_body = zlib.compress(inflated, 9)
    assert len(bomb_body) < 60_000
    tracemalloc.start()
    try:
        # claims its true size, over the limit: refused without inflating
        with pytest.raises(etf.DecodeError, match="limit"):
            etf.decode(b"\x83P" + struct.pack(">I", len(inflated)) + bomb_body, max_inflated=1024 * 1024)
        # claims a tiny size: inflated only that far
        with pytest.raises(etf.DecodeError, match="does not match"):
            etf.decode(b"\x83P" + struct.pack(">I", 16) + bomb_body)
        # claims 0 (zlib reads a 0 limit as "no limit")
        with pytest.raises(etf.DecodeError, match="0 bytes"):
            etf.decode(b"\x83P" + struct.pack(">I", 0) + bomb_body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024


def test_compressed_corruption_and_nesting() -> None:
    with pytest.raises(etf.DecodeError, match="corrupt"):
        etf.decode(b"\x83P\x00\x00\x00\x05not zlib")
    inner = zlib.compress(b"P\x00\x00\x00\x02" + zlib.compress(b"a\x01"))
    with pytest.raises(etf.DecodeError, match="compressed term inside"):
        etf.decode(b"\x83P" + struct.pack(">I", 5 + len(zlib.compress(b"a\x01"))) + inner)
    extra = zlib.compress(b"a\x01a\x02")
    with pytest.raises(etf.DecodeError, match="trailing bytes inside"):
        etf.decode(b"\x83P\x00\x00\x00\x04" + extra)


def test_nested_list_tails_read_as_binary_to_term_reads_them() -> None:
    assert etf.decode(b"\x83l\x00\x00\x00\x01a\x01l\x00\x00\x00\x01a\x02j") == [1, 2]
    assert etf.decode(b"\x83l\x00\x00\x00\x01a\x01l\x00\x00\x00\x01a\x02a\x03") == ImproperList((1, 2), 3)


def test_trailing_bytes_and_prefix_decoding() -> None:
    data = etf.encode(1) + etf.encode((2, 3))
    with pytest.raises(etf.DecodeError, match="7 trailing bytes"):
        etf.decode(data)
    first, pos = etf.decode_prefix(data)
    second, end = etf.decode_prefix(data, pos)
    assert (first, second, end) == (1, (2, 3), len(data))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "version byte"),
        (b"\x82a\x01", "version byte"),
        (b"\x83\xff", "unknown term tag 255"),
        (b"\x83\x01", "unknown term tag 1"),
        (b"\x83R\x00", "atom cache reference"),
        (b"\x83y\x00", "LOCAL_EXT"),
        (b"\x83w\x02\xc3\x28", "not valid UTF-8"),
        (b"\x83v\x00\x01\xff", "not valid UTF-8"),
        (b"\x83c" + b"nonsense".ljust(31, b"\0"), "malformed float"),
    ],
)
def test_malformed_input(data: bytes, message: str) -> None:
    with pytest.raises(etf.DecodeError, match=message):
        etf.decode(data)


@pytest.mark.parametrize(
    ("term", "message"),
    [
        (float("nan"), "no float"),
        (float("inf"), "no float"),
        (object(), "no Erlang term for a Python object"),
        (None, "NoneType"),
        (Atom("x" * 256), "longer than 255"),
        (ImproperList((), 1), "needs items"),
        (ImproperList((1,), [2]), "non-list tail"),
        (BitString(b"", 3), "malformed bitstring"),
        (Reference(NODE, 1, ()), "1 to 5 id words"),
    ],
)
def test_encode_refuses_what_erlang_cannot_hold(term: Any, message: str) -> None:
    with pytest.raises(etf.EncodeError, match=message):
        etf.encode(term)


def test_encode_depth_is_capped() -> None:
    term: Any = 1
    for _ in range(etf.DEFAULT_MAX_DEPTH + 1):
        term = [term]
    with pytest.raises(etf.EncodeError, match="nested deeper"):
        etf.encode(term)


def test_raw_is_sent_as_is() -> None:
    raw = etf.Raw((Atom("a"), [1, 2]))
    assert etf.encode((raw, 3)) == etf.encode(((Atom("a"), [1, 2]), 3))
    assert "bytes" in repr(raw)


# -- property: generated nested terms round-trip ------------------------------

atoms = st.text(min_size=0, max_size=20).filter(lambda s: s not in ("true", "false")).map(Atom)
leaves = st.one_of(
    st.integers(min_value=-(2**300), max_value=2**300),
    st.floats(allow_nan=False, allow_infinity=False),
    atoms,
    st.booleans(),
    st.binary(max_size=40),
    st.builds(lambda d, b: BitString(d, b), st.binary(min_size=1, max_size=8), st.integers(1, 7)),
    st.builds(Pid, atoms.filter(bool), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.builds(Port, atoms.filter(bool), st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1)),
    st.builds(
        Reference,
        atoms.filter(bool),
        st.integers(0, 2**32 - 1),
        st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=5).map(tuple),
    ),
)
hashable_keys = st.one_of(st.integers(-1000, 1000), atoms, st.binary(max_size=8))


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=6).map(tuple),
        st.dictionaries(hashable_keys, children, max_size=6),
        st.builds(
            lambda items, tail: ImproperList(tuple(items), tail),
            st.lists(children, min_size=1, max_size=4),
            leaves,
        ),
    )


terms = st.recursive(leaves, containers, max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(terms)
def test_roundtrip_property(term: Any) -> None:
    data = etf.encode(term)
    decoded = etf.decode(data)
    assert decoded == term
    assert etf.encode(decoded) == data


# -- erlang-py: the limitations recorded in docs/decisions.md D4 ---------------


def test_erlang_py_refuses_concatenated_terms() -> None:
    """A pass-through packet holds control + payload back to back: erlang-py's public API refuses it."""
    packet_terms = etf.encode((2, Atom(""), Pid(NODE, 1, 0, 1))) + etf.encode(Atom("hello"))
    with pytest.raises(erlang.ParseException, match="unparsed data"):
        erlang.binary_to_term(packet_terms)
    ctrl, pos = etf.decode_prefix(packet_terms)
    assert ctrl[0] == 2
    assert etf.decode_prefix(packet_terms, pos)[0] == Atom("hello")


def test_erlang_py_inflates_without_bound() -> None:
    """A 50 KB packet claiming 1 byte makes erlang-py allocate over 50 MB before noticing."""
    inflated = b"m" + struct.pack(">I", 50 * 1024 * 1024) + bytes(50 * 1024 * 1024)
    bomb = b"\x83P" + struct.pack(">I", 1) + zlib.compress(inflated, 9)
    tracemalloc.start()
    try:
        with pytest.raises(erlang.ParseException):
            erlang.binary_to_term(bomb)
        _, peak_theirs = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with pytest.raises(etf.DecodeError):
            etf.decode(bomb)
        _, peak_ours = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_theirs > 50 * 1024 * 1024
    assert peak_ours < 1024 * 1024


def test_erlang_py_recursion_is_unbounded() -> None:
    deep = b"\x83" + b"l\x00\x00\x00\x01" * 5000 + b"j" * 5001
    with pytest.raises(RecursionError):
        erlang.binary_to_term(deep)
    with pytest.raises(etf.DecodeError, match="nested deeper"):
        etf.decode(deep)


def test_erlang_py_encodes_text_and_bytes_as_lists() -> None:
    """In erlang-py a str, and even bytes, encode as a list (STRING_EXT), not a binary."""
    assert erlang.term_to_binary("h\u00e9") == b"\x83k\x00\x03h\xc3\xa9"
    assert erlang.term_to_binary(b"ab") == b"\x83k\x00\x02ab"
    assert erlang.binary_to_term(b"\x83k\x00\x02ab") == b"ab"  # a charlist comes back as bytes
    # ours: text and bytes are binaries; a charlist is a list
    assert etf.encode("h\u00e9")[1] == etf.BINARY_EXT
    assert etf.encode(b"ab")[1] == etf.BINARY_EXT
    assert etf.decode(b"\x83k\x00\x02ab") == [97, 98]
