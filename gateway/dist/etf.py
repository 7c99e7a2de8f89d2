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
* nesting deeper than ``max_depth`` is refused (no ``RecursionError``): only
  tuples, lists and maps nest; where the format allows only an atom (the
  node of a pid, port or reference, the parts of a fun) only an atom is read;
* a compressed term may not inflate beyond ``max_inflated`` bytes, and is
  inflated at most that far (a few bytes claiming gigabytes cost nothing).

Speed matters on the receive path (every RPC reply is decoded here), so the
decoder is one method with the frequent tags first and bounds checks inline;
reads of single bytes past the end raise ``IndexError``, turned into
:class:`DecodeError` once at the top.
"""

from __future__ import annotations

import math
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

    @classmethod
    def from_body(cls, body: bytes) -> Raw:
        """A ``Raw`` of bytes already encoded (see :func:`encode_body`), not checked."""
        raw = cls.__new__(cls)
        raw.body = body
        return raw

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
_LATIN1_ATOM_CACHE: dict[bytes, Any] = {b"true": True, b"false": False}
_ATOM_CACHE_LIMIT = 8192
_PID = struct.Struct(">III")
_PORT = struct.Struct(">II")
_V4_PORT = struct.Struct(">QI")
#: Reference id words (1..5) and, for encoding, creation followed by the words.
_REF_IDS = [struct.Struct(f">{n}I") for n in range(6)]
_REF_TAIL = [struct.Struct(f">I{n}I") for n in range(6)]
_REF_HEAD = [bytes((NEWER_REFERENCE_EXT,)) + _U16.pack(n) for n in range(6)]


def _atom(name: bytes) -> Any:
    """An atom from ATOM_UTF8_EXT / SMALL_ATOM_UTF8_EXT (``true``/``false`` as bools)."""
    cached = _ATOM_CACHE.get(name)
    if cached is not None:
        return cached
    try:
        atom = Atom(name.decode("utf-8"))
    except UnicodeDecodeError:
        raise DecodeError("atom name is not valid UTF-8") from None
    if len(_ATOM_CACHE) < _ATOM_CACHE_LIMIT:
        _ATOM_CACHE[name] = atom
    return atom


def _latin1_atom(name: bytes) -> Any:
    """An atom from the legacy ATOM_EXT / SMALL_ATOM_EXT (Latin-1; OTP 25's ``term_to_binary``)."""
    cached = _LATIN1_ATOM_CACHE.get(name)
    if cached is not None:
        return cached
    atom = Atom(name.decode("latin-1"))
    if len(_LATIN1_ATOM_CACHE) < _ATOM_CACHE_LIMIT:
        _LATIN1_ATOM_CACHE[name] = atom
    return atom


def _truncated() -> DecodeError:
    return DecodeError("term truncated")


def _too_deep(limit: int) -> DecodeError:
    return DecodeError(f"term nested deeper than {limit}")


class Decoder:
    """Decodes terms from ``data``; see :func:`decode` and :func:`decode_prefix`."""

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

    def versioned(self, pos: int) -> tuple[Any, int]:
        """Decode ``131 Tag Data`` (possibly compressed) at ``pos``; return it and the offset after it."""
        data = self.data
        if pos >= self.end or data[pos] != VERSION:
            raise DecodeError("missing external term format version byte (131)")
        try:
            if pos + 1 < self.end and data[pos + 1] == COMPRESSED:
                return self._compressed(pos + 2)
            return self.term(pos + 1, 0)
        except (IndexError, struct.error):  # a read past the end: every other bound is checked
            raise _truncated() from None

    def tuple_head(self, pos: int) -> Any:
        """The first element of the (uncompressed) versioned tuple at ``pos``, or None.

        Used to learn which request an undecodable reply answers (``{Ref, Reply}``)
        without decoding the rest of it.
        """
        data = self.data
        try:
            if data[pos] != VERSION or data[pos + 1] not in (SMALL_TUPLE_EXT, LARGE_TUPLE_EXT):
                return None
            start = pos + 3 if data[pos + 1] == SMALL_TUPLE_EXT else pos + 6
            arity = data[pos + 2] if data[pos + 1] == SMALL_TUPLE_EXT else _U32.unpack_from(data, pos + 2)[0]
            if arity < 1:
                return None
            head, _ = self.term(start, self.max_depth - 8)
            return head
        except (DecodeError, IndexError, struct.error):
            return None

    def term(self, pos: int, depth: int) -> tuple[Any, int]:  # noqa: C901
        """Decode the term whose tag is at ``pos`` (no version byte)."""
        data = self.data
        tag = data[pos]
        pos += 1
        if tag == SMALL_INTEGER_EXT:
            return data[pos], pos + 1
        if tag == SMALL_ATOM_UTF8_EXT:
            n = data[pos]
            pos += 1
            name = data[pos : pos + n]
            if len(name) != n:
                raise _truncated()
            cached = _ATOM_CACHE.get(name)
            return (cached if cached is not None else _atom(name)), pos + n
        if tag == SMALL_TUPLE_EXT or tag == LARGE_TUPLE_EXT:
            if tag == SMALL_TUPLE_EXT:
                arity = data[pos]
                pos += 1
            else:
                arity = _U32.unpack_from(data, pos)[0]
                pos += 4
                if pos + arity > self.end:
                    raise _truncated()
            if depth >= self.max_depth:
                raise _too_deep(self.max_depth)
            depth += 1
            term = self.term
            if arity == 2:
                first, pos = term(pos, depth)
                second, pos = term(pos, depth)
                return (first, second), pos
            items = []
            for _ in range(arity):
                item, pos = term(pos, depth)
                items.append(item)
            return tuple(items), pos
        if tag == NIL_EXT:
            return [], pos
        if tag == LIST_EXT:
            n = _U32.unpack_from(data, pos)[0]
            pos += 4
            if pos + n > self.end:
                raise _truncated()
            if depth >= self.max_depth:
                raise _too_deep(self.max_depth)
            depth += 1
            term = self.term
            items = []
            append = items.append
            for _ in range(n):
                if data[pos] == SMALL_INTEGER_EXT:  # charlists: no call per character
                    append(data[pos + 1])
                    pos += 2
                else:
                    item, pos = term(pos, depth)
                    append(item)
            if data[pos] == NIL_EXT:
                return items, pos + 1
            tail, pos = term(pos, depth)
            # Erlang encodes [a | [b]] flat, but binary_to_term accepts the nested form: so do we.
            if type(tail) is list:
                return items + tail, pos
            if type(tail) is ImproperList:
                return ImproperList((*items, *tail.items), tail.tail), pos
            return ImproperList(tuple(items), tail), pos
        if tag == BINARY_EXT:
            n = _U32.unpack_from(data, pos)[0]
            pos += 4
            if pos + n > self.end:
                raise _truncated()
            return data[pos : pos + n], pos + n
        if tag == INTEGER_EXT:
            return _I32.unpack_from(data, pos)[0], pos + 4
        if tag == NEW_PID_EXT:
            node, pos = self._atom_at(pos)
            pid_id, serial, creation = _PID.unpack_from(data, pos)
            return Pid(node, pid_id, serial, creation), pos + 12
        if tag == NEWER_REFERENCE_EXT or tag == NEW_REFERENCE_EXT:
            n = _U16.unpack_from(data, pos)[0]
            if n > 5:
                raise DecodeError(f"reference with {n} id words (at most 5)")
            node, pos = self._atom_at(pos + 2)
            if tag == NEWER_REFERENCE_EXT:
                creation = _U32.unpack_from(data, pos)[0]
                pos += 4
            else:
                creation = data[pos]
                pos += 1
            return Reference(node, creation, _REF_IDS[n].unpack_from(data, pos)), pos + 4 * n
        if tag == MAP_EXT:
            n = _U32.unpack_from(data, pos)[0]
            pos += 4
            if pos + 2 * n > self.end:
                raise _truncated()
            if depth >= self.max_depth:
                raise _too_deep(self.max_depth)
            depth += 1
            term = self.term
            result: dict[Any, Any] = {}
            for _ in range(n):
                key, pos = term(pos, depth)
                value, pos = term(pos, depth)
                try:
                    result[key] = value
                except TypeError:  # a list or map (or a tuple holding one) as a key
                    result[freeze(key)] = value
            return result, pos
        if tag == NEW_FLOAT_EXT:
            return _F64.unpack_from(data, pos)[0], pos + 8
        if tag == STRING_EXT:
            n = _U16.unpack_from(data, pos)[0]
            pos += 2
            chars = data[pos : pos + n]
            if len(chars) != n:
                raise _truncated()
            return list(chars), pos + n
        if tag == SMALL_BIG_EXT or tag == LARGE_BIG_EXT:
            if tag == SMALL_BIG_EXT:
                n = data[pos]
                pos += 1
            else:
                n = _U32.unpack_from(data, pos)[0]
                pos += 4
            sign = data[pos]
            pos += 1
            if pos + n > self.end:
                raise _truncated()
            value = int.from_bytes(data[pos : pos + n], "little")
            return (-value if sign else value), pos + n
        if tag == ATOM_UTF8_EXT or tag == ATOM_EXT or tag == SMALL_ATOM_EXT:
            return self._atom_at(pos - 1)
        if tag == BIT_BINARY_EXT:
            n = _U32.unpack_from(data, pos)[0]
            bits = data[pos + 4]
            pos += 5
            if pos + n > self.end:
                raise _truncated()
            if not 1 <= bits <= 8 or n == 0:
                raise DecodeError("malformed bitstring")
            chunk = data[pos : pos + n]
            return (chunk if bits == 8 else BitString(chunk, bits)), pos + n
        if tag == V4_PORT_EXT or tag == NEW_PORT_EXT or tag == PORT_EXT:
            node, pos = self._atom_at(pos)
            if tag == V4_PORT_EXT:
                port_id, creation = _V4_PORT.unpack_from(data, pos)
                return Port(node, port_id, creation), pos + 12
            if tag == NEW_PORT_EXT:
                port_id, creation = _PORT.unpack_from(data, pos)
                return Port(node, port_id, creation), pos + 8
            return Port(node, _U32.unpack_from(data, pos)[0], data[pos + 4]), pos + 5
        if tag == PID_EXT:
            node, pos = self._atom_at(pos)
            pid_id, serial = _PORT.unpack_from(data, pos)
            return Pid(node, pid_id, serial, data[pos + 8]), pos + 9
        if tag == EXPORT_EXT:
            module, pos = self._atom_at(pos)
            function, pos = self._atom_at(pos)
            if data[pos] != SMALL_INTEGER_EXT:
                raise DecodeError("malformed export fun (arity is not a small integer)")
            return ExportFun(module, function, data[pos + 1]), pos + 2
        if tag == NEW_FUN_EXT:
            # Size:4 Arity:1 Uniq:16 Index:4 NumFree:4 Module ...; Size counts itself.
            size = _U32.unpack_from(data, pos)[0]
            if size < 4 + 1 + 16 + 4 + 4 + 2 or pos + size > self.end:
                raise DecodeError("malformed fun")
            module, _ = self._atom_at(pos + 4 + 1 + 16 + 4 + 4)
            return OpaqueFun(module, data[pos - 1 : pos + size]), pos + size
        if tag == FLOAT_EXT:
            text = data[pos : pos + 31]
            if len(text) != 31:
                raise _truncated()
            try:
                return float(text.split(b"\0", 1)[0]), pos + 31
            except ValueError:
                raise DecodeError("malformed float") from None
        if tag == COMPRESSED:
            raise DecodeError("compressed term inside a term")
        if tag == ATOM_CACHE_REF:
            raise DecodeError("atom cache reference without a distribution header")
        if tag == LOCAL_EXT:
            raise DecodeError("LOCAL_EXT is only meaningful to the node that encoded it")
        raise DecodeError(f"unknown term tag {tag}")

    def _atom_at(self, pos: int) -> tuple[Any, int]:
        """An atom (any of the four atom encodings) at ``pos``; anything else is refused."""
        data = self.data
        tag = data[pos]
        if tag == SMALL_ATOM_UTF8_EXT or tag == SMALL_ATOM_EXT:
            n = data[pos + 1]
            pos += 2
        elif tag == ATOM_UTF8_EXT or tag == ATOM_EXT:
            n = _U16.unpack_from(data, pos + 1)[0]
            pos += 3
        else:
            raise DecodeError(f"expected an atom, found tag {tag}")
        name = data[pos : pos + n]
        if len(name) != n:
            raise _truncated()
        if tag == SMALL_ATOM_UTF8_EXT or tag == ATOM_UTF8_EXT:
            return _atom(name), pos + n
        return _latin1_atom(name), pos + n

    def _compressed(self, pos: int) -> tuple[Any, int]:
        """``80 UncompressedSize:4 ZlibData``: inflate at most the announced size, within the limit."""
        size = _U32.unpack_from(self.data, pos)[0]
        pos += 4
        if size == 0:  # no term is empty; and zlib reads max_length=0 as "no limit"
            raise DecodeError("compressed term announces 0 bytes")
        if size > self.max_inflated:
            raise DecodeError(f"compressed term inflates to {size} bytes (limit {self.max_inflated})")
        inflater = zlib.decompressobj()
        try:
            inflated = inflater.decompress(self.data[pos:], size)
        except zlib.error as exc:
            raise DecodeError(f"corrupt compressed term: {exc}") from None
        if len(inflated) != size or inflater.unconsumed_tail or not inflater.eof:
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
    """Decode exactly one versioned term (``term_to_binary/1`` output); trailing bytes are an error."""
    term, end = Decoder(data, max_depth=max_depth, max_inflated=max_inflated).versioned(0)
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
    return Decoder(data, max_depth=max_depth, max_inflated=max_inflated).versioned(pos)


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------

_ENCODED_ATOMS: dict[str, bytes] = {}
_SMALL_INTS = [bytes((SMALL_INTEGER_EXT, i)) for i in range(256)]
_SMALL_TUPLES = [bytes((SMALL_TUPLE_EXT, i)) for i in range(256)]
_TRUE = b"w\x04true"
_FALSE = b"w\x05false"


def _encode_atom(name: str) -> bytes:
    cached = _ENCODED_ATOMS.get(name)
    if cached is not None:
        return cached
    if len(name) > 255:
        raise EncodeError(f"atom longer than 255 characters: {name[:20]!r}...")
    raw = name.encode("utf-8")
    if len(raw) < 256:
        out = bytes((SMALL_ATOM_UTF8_EXT, len(raw))) + raw
    else:
        out = bytes((ATOM_UTF8_EXT,)) + _U16.pack(len(raw)) + raw
    if len(_ENCODED_ATOMS) < _ATOM_CACHE_LIMIT:
        _ENCODED_ATOMS[name] = out
    return out


def _encode_int(value: int) -> bytes:
    if 0 <= value <= 255:
        return _SMALL_INTS[value]
    if -(2**31) <= value < 2**31:
        return b"b" + _I32.pack(value)
    magnitude = -value if value < 0 else value
    digits = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little")
    sign = 1 if value < 0 else 0
    if len(digits) < 256:
        return bytes((SMALL_BIG_EXT, len(digits), sign)) + digits
    return bytes((LARGE_BIG_EXT,)) + _U32.pack(len(digits)) + bytes((sign,)) + digits


def _encode(term: Any, out: list[bytes], depth: int) -> None:  # noqa: C901
    """Append the encoding of ``term`` (no version byte); the frequent kinds first."""
    kind = type(term)
    if kind is Atom:
        cached = _ENCODED_ATOMS.get(term)
        out.append(cached if cached is not None else _encode_atom(term))
    elif kind is int:
        out.append(_SMALL_INTS[term] if 0 <= term <= 255 else _encode_int(term))
    elif kind is tuple:
        if depth >= DEFAULT_MAX_DEPTH:
            raise EncodeError(f"term nested deeper than {DEFAULT_MAX_DEPTH}")
        n = len(term)
        out.append(_SMALL_TUPLES[n] if n < 256 else b"i" + _U32.pack(n))
        _encode_items(term, out, depth + 1)
    elif kind is list or kind is FrozenList:
        if not term:
            out.append(b"j")
            return
        if depth >= DEFAULT_MAX_DEPTH:
            raise EncodeError(f"term nested deeper than {DEFAULT_MAX_DEPTH}")
        out.append(b"l" + _U32.pack(len(term)))
        _encode_items(term, out, depth + 1)
        out.append(b"j")
    elif kind is bytes:
        out.append(b"m" + _U32.pack(len(term)))
        out.append(term)
    elif kind is str:
        raw = term.encode("utf-8")
        out.append(b"m" + _U32.pack(len(raw)))
        out.append(raw)
    elif kind is Raw:
        out.append(term.body)
    elif kind is bool:
        out.append(_TRUE if term else _FALSE)
    elif kind is Pid:
        out.append(b"X" + _encode_atom(term.node) + _PID.pack(term.id, term.serial, term.creation))
    elif kind is Reference:
        ids = term.ids
        n = len(ids)
        if not 1 <= n <= 5:
            raise EncodeError(f"a reference has 1 to 5 id words, not {n}")
        out.append(_REF_HEAD[n] + _encode_atom(term.node) + _REF_TAIL[n].pack(term.creation, *ids))
    elif kind is dict or kind is FrozenMap:
        if depth >= DEFAULT_MAX_DEPTH:
            raise EncodeError(f"term nested deeper than {DEFAULT_MAX_DEPTH}")
        out.append(b"t" + _U32.pack(len(term)))
        for key, value in term.items():
            _encode(key, out, depth + 1)
            _encode(value, out, depth + 1)
    elif kind is float:
        if not math.isfinite(term):
            raise EncodeError(f"Erlang has no float {term!r}")
        out.append(b"F" + _F64.pack(term))
    else:
        _encode_rare(term, out, depth)


def _encode_items(items: Any, out: list[bytes], depth: int) -> None:
    """The elements of a tuple or list; atoms and small integers without a call each."""
    atoms = _ENCODED_ATOMS
    for item in items:
        kind = type(item)
        if kind is Atom:
            cached = atoms.get(item)
            out.append(cached if cached is not None else _encode_atom(item))
        elif kind is int and 0 <= item <= 255:
            out.append(_SMALL_INTS[item])
        else:
            _encode(item, out, depth)


def _encode_rare(term: Any, out: list[bytes], depth: int) -> None:
    kind = type(term)
    if kind is ImproperList:
        if not term.items or isinstance(term.tail, (list, ImproperList)):
            raise EncodeError("an improper list needs items and a non-list tail")
        if depth >= DEFAULT_MAX_DEPTH:
            raise EncodeError(f"term nested deeper than {DEFAULT_MAX_DEPTH}")
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
        node = _encode_atom(term.node)
        if term.id < 2**32:
            out.append(bytes((NEW_PORT_EXT,)) + node + _PORT.pack(term.id, term.creation))
        else:
            out.append(bytes((V4_PORT_EXT,)) + node + _V4_PORT.pack(term.id, term.creation))
    elif kind is ExportFun:
        if not 0 <= term.arity <= 255:
            raise EncodeError(f"fun arity {term.arity} out of range")
        out.append(bytes((EXPORT_EXT,)) + _encode_atom(term.module) + _encode_atom(term.function))
        out.append(_SMALL_INTS[term.arity])
    elif kind is OpaqueFun:
        out.append(term.raw)
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


def encode_body(term: Any) -> bytes:
    """The encoding of ``term`` without the version byte, to assemble terms from cached parts."""
    out: list[bytes] = []
    _encode(term, out, 0)
    return b"".join(out)


def encode_into(term: Any, out: list[bytes]) -> None:
    """Append the versioned encoding of ``term`` to ``out`` (avoids a join)."""
    out.append(b"\x83")
    _encode(term, out, 0)
