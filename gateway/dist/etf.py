"""External Term Format (ETF) codec, bounded for untrusted input.

Implements the encodings in OTP's ``erts/doc/guides/erl_ext_dist.md`` that a
node speaking distribution with the flags in :mod:`gateway.dist.flags` can
send or receive. See :mod:`gateway.dist.terms` for the Python mapping.

Why our own codec and not ``erlang-py`` is recorded in ``docs/decisions.md``.
In short: a distribution packet holds two concatenated terms (control message
and payload), which ``erlang.binary_to_term`` refuses; decoding must be
bounded (nesting depth, decompressed size) because the bytes come from the
network; and the mapping above must keep atoms, binaries and strings apart.

Bounds enforced on decode:

* every length field is checked against the bytes actually present, so a
  forged length never allocates more than the packet holds;
* nesting deeper than ``max_depth`` is refused (no ``RecursionError``);
* a compressed term may not inflate beyond ``max_inflated`` bytes.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from .terms import (
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
    freeze,
)

VERSION = 131

# Tags, named as in erl_ext_dist.
COMPRESSED = 80
NEW_FLOAT_EXT = 70
BIT_BINARY_EXT = 77
ATOM_CACHE_REF = 82
NEW_PID_EXT = 88
NEW_PORT_EXT = 89
NEWER_REFERENCE_EXT = 90
SMALL_INTEGER_EXT = 97
INTEGER_EXT = 98
FLOAT_EXT = 99
ATOM_EXT = 100
REFERENCE_EXT = 101
PORT_EXT = 102
PID_EXT = 103
SMALL_TUPLE_EXT = 104
LARGE_TUPLE_EXT = 105
NIL_EXT = 106
STRING_EXT = 107
LIST_EXT = 108
BINARY_EXT = 109
SMALL_BIG_EXT = 110
LARGE_BIG_EXT = 111
NEW_FUN_EXT = 112
EXPORT_EXT = 113
NEW_REFERENCE_EXT = 114
SMALL_ATOM_EXT = 115
MAP_EXT = 116
ATOM_UTF8_EXT = 118
SMALL_ATOM_UTF8_EXT = 119
V4_PORT_EXT = 120
LOCAL_EXT = 121

DEFAULT_MAX_DEPTH = 400
DEFAULT_MAX_INFLATED = 64 * 1024 * 1024

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")


class Raw:
    """A term already encoded (body without the version byte), sent as is.

    Used for large constant terms sent often, such as the parsed forms of a
    snippet, to encode them once.
    """

    __slots__ = ("body",)

    def __init__(self, term: Any) -> None:
        self.body = encode(term)[1:]

    def __repr__(self) -> str:
        return f"Raw(<{len(self.body)} bytes>)"


class DecodeError(ValueError):
    """The bytes are not a well-formed term within the decoder's bounds."""


class EncodeError(TypeError):
    """The Python value has no Erlang term equivalent."""


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------

_ATOM_CACHE: dict[bytes, Any] = {b"true": True, b"false": False}
_ATOM_CACHE_LIMIT = 8192


def _atom(name: bytes) -> Any:
    """An atom from ATOM_UTF8_EXT / SMALL_ATOM_UTF8_EXT."""
    cached = _ATOM_CACHE.get(name)
    if cached is not None:
        return cached
    try:
        atom = Atom(name.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DecodeError("atom name is not valid UTF-8") from exc
    if len(_ATOM_CACHE) < _ATOM_CACHE_LIMIT:
        _ATOM_CACHE[name] = atom
    return atom


def _latin1_atom(name: bytes) -> Any:
    """An atom from the legacy ATOM_EXT / SMALL_ATOM_EXT (Latin-1, OTP < 26)."""
    if name == b"true":
        return True
    if name == b"false":
        return False
    return Atom(name.decode("latin-1"))


class Decoder:
    """Decodes one or more terms from a buffer; see :func:`decode`."""

    __slots__ = ("data", "end", "max_depth", "max_inflated")

    def __init__(
        self,
        data: bytes,
        *,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_inflated: int = DEFAULT_MAX_INFLATED,
    ) -> None:
        self.data = data
        self.end = len(data)
        self.max_depth = max_depth
        self.max_inflated = max_inflated

    # The hot path: one method, tags tested roughly by frequency.
    def term(self, pos: int, depth: int) -> tuple[Any, int]:  # noqa: C901
        data = self.data
        if pos >= self.end:
            raise DecodeError("term truncated")
        tag = data[pos]
        pos += 1
        if tag == SMALL_INTEGER_EXT:
            self._need(pos, 1)
            return data[pos], pos + 1
        if tag == SMALL_ATOM_UTF8_EXT or tag == SMALL_ATOM_EXT:
            self._need(pos, 1)
            n = data[pos]
            pos += 1
            self._need(pos, n)
            if tag == SMALL_ATOM_EXT:
                return _latin1_atom(data[pos : pos + n]), pos + n
            return _atom(data[pos : pos + n]), pos + n
        if tag == SMALL_TUPLE_EXT or tag == LARGE_TUPLE_EXT:
            if tag == SMALL_TUPLE_EXT:
                self._need(pos, 1)
                arity = data[pos]
                pos += 1
            else:
                arity = self._u32(pos)
                pos += 4
                self._need(pos, arity)
            if depth >= self.max_depth:
                raise DecodeError(f"term nested deeper than {self.max_depth}")
            items = []
            for _ in range(arity):
                item, pos = self.term(pos, depth + 1)
                items.append(item)
            return tuple(items), pos
        if tag == NIL_EXT:
            return [], pos
        if tag == INTEGER_EXT:
            self._need(pos, 4)
            return _I32.unpack_from(data, pos)[0], pos + 4
        if tag == BINARY_EXT:
            n = self._u32(pos)
            pos += 4
            self._need(pos, n)
            return data[pos : pos + n], pos + n
        if tag == LIST_EXT:
            n = self._u32(pos)
            pos += 4
            self._need(pos, n)
            if depth >= self.max_depth:
                raise DecodeError(f"term nested deeper than {self.max_depth}")
            items = []
            for _ in range(n):
                item, pos = self.term(pos, depth + 1)
                items.append(item)
            tail, pos = self.term(pos, depth + 1)
            if tail == [] and type(tail) is list:
                return items, pos
            return ImproperList(tuple(items), tail), pos
        if tag == STRING_EXT:
            self._need(pos, 2)
            n = _U16.unpack_from(data, pos)[0]
            pos += 2
            self._need(pos, n)
            return list(data[pos : pos + n]), pos + n
        if tag == NEW_PID_EXT or tag == PID_EXT:
            node, pos = self._node(pos, depth)
            if tag == NEW_PID_EXT:
                self._need(pos, 12)
                pid_id, serial, creation = struct.unpack_from(">III", data, pos)
                return Pid(node, pid_id, serial, creation), pos + 12
            self._need(pos, 9)
            pid_id, serial, creation = struct.unpack_from(">IIB", data, pos)
            return Pid(node, pid_id, serial, creation), pos + 9
        if tag == NEWER_REFERENCE_EXT or tag == NEW_REFERENCE_EXT:
            self._need(pos, 2)
            n = _U16.unpack_from(data, pos)[0]
            pos += 2
            if n > 5:
                raise DecodeError(f"reference with {n} id words (at most 5)")
            node, pos = self._node(pos, depth)
            if tag == NEWER_REFERENCE_EXT:
                creation = self._u32(pos)
                pos += 4
            else:
                self._need(pos, 1)
                creation = data[pos]
                pos += 1
            self._need(pos, 4 * n)
            ids = struct.unpack_from(f">{n}I", data, pos)
            return Reference(node, creation, ids), pos + 4 * n
        if tag == MAP_EXT:
            n = self._u32(pos)
            pos += 4
            self._need(pos, 2 * n)
            if depth >= self.max_depth:
                raise DecodeError(f"term nested deeper than {self.max_depth}")
            result: dict[Any, Any] = {}
            for _ in range(n):
                key, pos = self.term(pos, depth + 1)
                value, pos = self.term(pos, depth + 1)
                if isinstance(key, (list, dict)):
                    key = freeze(key)
                result[key] = value
            return result, pos
        if tag == NEW_FLOAT_EXT:
            self._need(pos, 8)
            return _F64.unpack_from(data, pos)[0], pos + 8
        if tag == SMALL_BIG_EXT or tag == LARGE_BIG_EXT:
            if tag == SMALL_BIG_EXT:
                self._need(pos, 1)
                n = data[pos]
                pos += 1
            else:
                n = self._u32(pos)
                pos += 4
            self._need(pos, n + 1)
            sign = data[pos]
            pos += 1
            value = int.from_bytes(data[pos : pos + n], "little")
            return (-value if sign else value), pos + n
        if tag == ATOM_UTF8_EXT or tag == ATOM_EXT:
            self._need(pos, 2)
            n = _U16.unpack_from(data, pos)[0]
            pos += 2
            self._need(pos, n)
            if tag == ATOM_EXT:
                return _latin1_atom(data[pos : pos + n]), pos + n
            return _atom(data[pos : pos + n]), pos + n
        if tag == BIT_BINARY_EXT:
            n = self._u32(pos)
            pos += 4
            self._need(pos, n + 1)
            bits = data[pos]
            pos += 1
            if not 1 <= bits <= 8 or n == 0:
                raise DecodeError("malformed bitstring")
            chunk = data[pos : pos + n]
            if bits == 8:
                return chunk, pos + n
            return BitString(chunk, bits), pos + n
        if tag == V4_PORT_EXT or tag == NEW_PORT_EXT or tag == PORT_EXT:
            node, pos = self._node(pos, depth)
            if tag == V4_PORT_EXT:
                self._need(pos, 12)
                port_id = _U64.unpack_from(data, pos)[0]
                return Port(node, port_id, _U32.unpack_from(data, pos + 8)[0]), pos + 12
            if tag == NEW_PORT_EXT:
                self._need(pos, 8)
                port_id, creation = struct.unpack_from(">II", data, pos)
                return Port(node, port_id, creation), pos + 8
            self._need(pos, 5)
            port_id, creation = struct.unpack_from(">IB", data, pos)
            return Port(node, port_id, creation), pos + 5
        if tag == EXPORT_EXT:
            module, pos = self.term(pos, depth + 1)
            function, pos = self.term(pos, depth + 1)
            arity, pos = self.term(pos, depth + 1)
            if not (isinstance(module, Atom) and isinstance(function, Atom)):
                raise DecodeError("malformed export fun")
            if not isinstance(arity, int):
                raise DecodeError("malformed export fun")
            return ExportFun(module, function, arity), pos
        if tag == NEW_FUN_EXT:
            size = self._u32(pos)
            if size < 4 + 1 + 16 + 4 + 4:
                raise DecodeError("malformed fun")
            self._need(pos, size)
            module, _ = self.term(pos + 4 + 1 + 16 + 4 + 4, depth + 1)
            if not isinstance(module, Atom):
                raise DecodeError("malformed fun")
            return OpaqueFun(module, data[pos - 1 : pos + size]), pos + size
        if tag == FLOAT_EXT:
            self._need(pos, 31)
            text = data[pos : pos + 31].split(b"\0", 1)[0]
            try:
                return float(text), pos + 31
            except ValueError as exc:
                raise DecodeError("malformed float") from exc
        if tag == COMPRESSED:
            raise DecodeError("compressed term inside a term")
        if tag == ATOM_CACHE_REF:
            raise DecodeError("atom cache reference without a distribution header")
        if tag == LOCAL_EXT:
            raise DecodeError("LOCAL_EXT is only meaningful to the node that encoded it")
        raise DecodeError(f"unknown term tag {tag}")

    def _need(self, pos: int, n: int) -> None:
        if pos + n > self.end:
            raise DecodeError("term truncated")

    def _u32(self, pos: int) -> int:
        if pos + 4 > self.end:
            raise DecodeError("term truncated")
        value: int = _U32.unpack_from(self.data, pos)[0]
        return value

    def _node(self, pos: int, depth: int) -> tuple[Atom, int]:
        node, pos = self.term(pos, depth + 1)
        if not isinstance(node, Atom):
            raise DecodeError("node name is not an atom")
        return node, pos

    def versioned(self, pos: int) -> tuple[Any, int]:
        """Decode ``131 Tag Data`` (possibly compressed) starting at ``pos``."""
        data = self.data
        if pos >= self.end or data[pos] != VERSION:
            raise DecodeError("missing external term format version byte (131)")
        pos += 1
        if pos < self.end and data[pos] == COMPRESSED:
            return self._compressed(pos + 1)
        return self.term(pos, 0)

    def _compressed(self, pos: int) -> tuple[Any, int]:
        size = self._u32(pos)
        pos += 4
        if size > self.max_inflated:
            raise DecodeError(f"compressed term inflates to {size} bytes (limit {self.max_inflated})")
        inflater = zlib.decompressobj()
        try:
            inflated = inflater.decompress(self.data[pos:], size)
        except zlib.error as exc:
            raise DecodeError(f"corrupt compressed term: {exc}") from exc
        if len(inflated) != size or inflater.unconsumed_tail:
            raise DecodeError("compressed term size does not match its header")
        consumed = self.end - pos - len(inflater.unused_data)
        inner = Decoder(inflated, max_depth=self.max_depth, max_inflated=0)
        term, used = inner.term(0, 0)
        if used != size:
            raise DecodeError("trailing bytes inside compressed term")
        return term, pos + consumed


def decode(
    data: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_inflated: int = DEFAULT_MAX_INFLATED,
) -> Any:
    """Decode exactly one versioned term (``term_to_binary/1`` output)."""
    term, end = decode_prefix(data, 0, max_depth=max_depth, max_inflated=max_inflated)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} trailing bytes after term")
    return term


def decode_prefix(
    data: bytes,
    pos: int = 0,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_inflated: int = DEFAULT_MAX_INFLATED,
) -> tuple[Any, int]:
    """Decode one versioned term at ``pos``; return it and the offset after it.

    This is how a distribution packet's control message and its payload,
    which follow each other in one buffer, are read one after the other.
    """
    decoder = Decoder(data, max_depth=max_depth, max_inflated=max_inflated)
    try:
        return decoder.versioned(pos)
    except (struct.error, IndexError) as exc:  # defensive: bounds are checked above
        raise DecodeError(f"term truncated ({exc})") from exc


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------

_ENCODED_ATOMS: dict[str, bytes] = {}


def _encode_atom(name: str) -> bytes:
    cached = _ENCODED_ATOMS.get(name)
    if cached is not None:
        return cached
    raw = name.encode("utf-8")
    if len(name) > 255:
        raise EncodeError(f"atom longer than 255 characters: {name[:20]!r}...")
    if len(raw) < 256:
        out = bytes((SMALL_ATOM_UTF8_EXT, len(raw))) + raw
    else:
        out = bytes((ATOM_UTF8_EXT,)) + _U16.pack(len(raw)) + raw
    if len(_ENCODED_ATOMS) < _ATOM_CACHE_LIMIT:
        _ENCODED_ATOMS[name] = out
    return out


def _encode_int(value: int, out: list[bytes]) -> None:
    if 0 <= value <= 255:
        out.append(bytes((SMALL_INTEGER_EXT, value)))
    elif -(2**31) <= value < 2**31:
        out.append(b"b" + _I32.pack(value))
    else:
        magnitude = -value if value < 0 else value
        digits = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little")
        sign = 1 if value < 0 else 0
        if len(digits) < 256:
            out.append(bytes((SMALL_BIG_EXT, len(digits), sign)) + digits)
        else:
            out.append(bytes((LARGE_BIG_EXT,)) + _U32.pack(len(digits)) + bytes((sign,)) + digits)


def _encode(term: Any, out: list[bytes], depth: int) -> None:  # noqa: C901
    if depth > DEFAULT_MAX_DEPTH:
        raise EncodeError(f"term nested deeper than {DEFAULT_MAX_DEPTH}")
    kind = type(term)
    if kind is Atom:
        out.append(_encode_atom(term))
    elif kind is bool:
        out.append(_encode_atom("true" if term else "false"))
    elif kind is int:
        _encode_int(term, out)
    elif kind is tuple:
        n = len(term)
        out.append(bytes((SMALL_TUPLE_EXT, n)) if n < 256 else b"i" + _U32.pack(n))
        for item in term:
            _encode(item, out, depth + 1)
    elif kind is list or kind is FrozenList:
        if not term:
            out.append(b"j")
            return
        out.append(b"l" + _U32.pack(len(term)))
        for item in term:
            _encode(item, out, depth + 1)
        out.append(b"j")
    elif kind is bytes:
        out.append(b"m" + _U32.pack(len(term)))
        out.append(term)
    elif kind is str:
        raw = term.encode("utf-8")
        out.append(b"m" + _U32.pack(len(raw)))
        out.append(raw)
    elif kind is Pid:
        out.append(bytes((NEW_PID_EXT,)) + _encode_atom(term.node))
        out.append(struct.pack(">III", term.id, term.serial, term.creation))
    elif kind is Reference:
        ids = term.ids
        out.append(bytes((NEWER_REFERENCE_EXT,)) + _U16.pack(len(ids)) + _encode_atom(term.node))
        out.append(struct.pack(f">I{len(ids)}I", term.creation, *ids))
    elif kind is dict or kind is FrozenMap:
        out.append(b"t" + _U32.pack(len(term)))
        for key, value in term.items():
            _encode(key, out, depth + 1)
            _encode(value, out, depth + 1)
    elif kind is float:
        out.append(b"F" + _F64.pack(term))
    elif kind is ImproperList:
        if not term.items or isinstance(term.tail, list):
            raise EncodeError("an improper list needs items and a non-list tail")
        out.append(b"l" + _U32.pack(len(term.items)))
        for item in term.items:
            _encode(item, out, depth + 1)
        _encode(term.tail, out, depth + 1)
    elif kind is BitString:
        if not term.data or not 1 <= term.bits <= 8:
            raise EncodeError("malformed bitstring")
        out.append(bytes((BIT_BINARY_EXT,)) + _U32.pack(len(term.data)) + bytes((term.bits,)))
        out.append(term.data)
    elif kind is Port:
        if term.id < 2**32:
            out.append(bytes((NEW_PORT_EXT,)) + _encode_atom(term.node))
            out.append(struct.pack(">II", term.id, term.creation))
        else:
            out.append(bytes((V4_PORT_EXT,)) + _encode_atom(term.node))
            out.append(struct.pack(">QI", term.id, term.creation))
    elif kind is ExportFun:
        out.append(bytes((EXPORT_EXT,)) + _encode_atom(term.module) + _encode_atom(term.function))
        _encode_int(term.arity, out)
    elif kind is OpaqueFun:
        out.append(term.raw)
    elif kind is Raw:
        out.append(term.body)
    elif isinstance(term, Atom):
        out.append(_encode_atom(str(term)))
    elif isinstance(term, tuple) and not isinstance(term, FrozenList):
        _encode(tuple(term), out, depth)
    else:
        raise EncodeError(f"no Erlang term for a Python {kind.__name__}")


def encode(term: Any) -> bytes:
    """Encode ``term`` as ``term_to_binary/1`` would (version byte included)."""
    out: list[bytes] = [b"\x83"]
    _encode(term, out, 0)
    return b"".join(out)


def encode_into(term: Any, out: list[bytes]) -> None:
    """Append the versioned encoding of ``term`` to ``out`` (avoids a join)."""
    out.append(b"\x83")
    _encode(term, out, 0)
