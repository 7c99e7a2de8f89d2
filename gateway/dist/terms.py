"""Python values for Erlang terms.

The mapping is chosen so that a decoded term re-encodes to an equal term, and
so that values built by beamgate cannot be confused for one another:

======================  =====================================================
Erlang                  Python
======================  =====================================================
atom                    :class:`Atom` (a ``str`` subclass); ``true``/``false``
                        decode to ``True``/``False``
integer, float          ``int``, ``float``
binary                  ``bytes`` (a Python ``str`` *encodes* as a UTF-8
                        binary: user text always travels as a binary, never
                        as an atom; SPEC safety rule 3)
bitstring               :class:`BitString`
proper list             ``list`` (a ``STRING_EXT`` decodes to a list of ints)
improper list           :class:`ImproperList`
tuple                   ``tuple``
map                     ``dict`` (unhashable keys are frozen, see
                        :class:`FrozenList` and :class:`FrozenMap`)
pid, port, reference    :class:`Pid`, :class:`Port`, :class:`Reference`
fun M:F/A               :class:`ExportFun`
closure                 :class:`OpaqueFun` (kept as its encoded bytes)
======================  =====================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


class Atom(str):
    """An Erlang atom. Compares equal to the ``str`` of its name."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


# Pids, ports and references are decoded by the thousand (every RPC reply
# holds two pids and a reference), so they are plain slotted dataclasses: a
# frozen dataclass costs about 1 us more per instance to build. Treat them as
# immutable all the same; they hash by value.


@dataclass(slots=True)
class Pid:
    """A process identifier: ``<node.id.serial>`` with the node's creation."""

    node: Atom
    id: int
    serial: int
    creation: int

    def __hash__(self) -> int:
        return hash((self.id, self.serial, self.creation, self.node))


@dataclass(slots=True)
class Port:
    node: Atom
    id: int
    creation: int

    def __hash__(self) -> int:
        return hash((self.id, self.creation, self.node))


@dataclass(slots=True)
class Reference:
    node: Atom
    creation: int
    ids: tuple[int, ...]

    def __hash__(self) -> int:
        return hash(self.ids) ^ self.creation  # refs are looked up per RPC reply: keep it cheap


@dataclass(frozen=True, slots=True)
class BitString:
    """A binary whose last byte holds only ``bits`` significant bits (1..8).

    The significant bits are the high ones, as Erlang encodes them; the
    unused low bits are cleared on construction so equal bitstrings compare
    equal.
    """

    data: bytes
    bits: int

    def __post_init__(self) -> None:
        if self.data and 1 <= self.bits < 8:
            last = self.data[-1] & (0xFF << (8 - self.bits)) & 0xFF
            if last != self.data[-1]:
                object.__setattr__(self, "data", self.data[:-1] + bytes((last,)))


@dataclass(frozen=True, slots=True)
class ExportFun:
    """``fun Module:Function/Arity``."""

    module: Atom
    function: Atom
    arity: int


@dataclass(frozen=True, slots=True)
class OpaqueFun:
    """A closure from a remote node: kept as its encoded form, never called.

    ``module`` is parsed out only for display.
    """

    module: Atom
    raw: bytes


@dataclass(frozen=True, slots=True)
class ImproperList:
    """``[a, b | tail]`` where ``tail`` is not a list."""

    items: tuple[Any, ...]
    tail: Any


class FrozenList(tuple[Any, ...]):
    """A list used as a map key (Python lists are unhashable). Encodes as a list."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"FrozenList({list(self)!r})"


class FrozenMap(Mapping[Any, Any]):
    """A map used as a map key. Encodes as a map."""

    __slots__ = ("_items", "_hash")

    def __init__(self, items: Iterable[tuple[Any, Any]]) -> None:
        self._items = dict(items)
        self._hash = hash(frozenset(self._items.items()))

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


TRUE = Atom("true")
FALSE = Atom("false")
UNDEFINED = Atom("undefined")
OK = Atom("ok")
ERROR = Atom("error")


def freeze(term: Any) -> Any:
    """Return a hashable equivalent of ``term`` (for use as a map key)."""
    if isinstance(term, list):
        return FrozenList(freeze(t) for t in term)
    if isinstance(term, dict):
        return FrozenMap((freeze(k), freeze(v)) for k, v in term.items())
    if isinstance(term, tuple) and not isinstance(term, FrozenList):
        return tuple(freeze(t) for t in term)
    if isinstance(term, ImproperList):
        return ImproperList(tuple(freeze(t) for t in term.items), freeze(term.tail))
    return term
