"""``--match`` argument patterns: a small, safe parser of Erlang term syntax.

The user writes the arguments a traced call must have, as an Erlang list
pattern: ``'[3, _]'``, ``'[{error, _}, _]'``, ``'[<<"GET">>, #{path => _}]'``.
Only literals and the wildcard ``_`` (or ``_Name``) are allowed: no
variables, guards, bodies, operators or function calls, so nothing the user
types can ever be evaluated on a node (SPEC safety rule 2).

The result is not an Erlang term but a *tagged tree* of fixed tags, sent to
the target as data; the trace snippet rebuilds the match-specification head
from it there. Atoms travel as binaries (``{atom, <<"error">>}``) and are
resolved with ``binary_to_existing_atom`` on the node (SPEC safety rule 3):
an atom the node has never seen cannot occur in any call, so such a pattern
is refused there rather than creating the atom.

Tree (every tag is a fixed atom of beamgate's vocabulary)::

    '_'                           wildcard
    {atom, Name :: binary()}      an atom, resolved on the target
    {lit, integer() | float() | binary() | [char()]}
    {tuple, [Node]}
    {list, [Node]}                proper list
    {cons, [Node], TailNode}      [A, B | Tail]
    {map, [{KeyNode, ValueNode}]} keys must be wildcard-free

Atoms whose name starts with ``$`` (match-spec variables such as ``'$1'``)
and the quoted atom ``'_'`` are refused: inside a match specification they
would not mean what they say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.dist.terms import Atom

MAX_DEPTH = 32
MAX_NODES = 2000

WILDCARD = Atom("_")
_ATOM = Atom("atom")
_LIT = Atom("lit")
_TUPLE = Atom("tuple")
_LIST = Atom("list")
_CONS = Atom("cons")
_MAP = Atom("map")

_RESERVED = frozenset(
    """after and andalso band begin bnot bor bsl bsr bxor case catch cond div end fun if let maybe not of or
    orelse receive rem try when xor else""".split()
)
_DIGITS = frozenset("0123456789")
_ESCAPES = {"n": 10, "r": 13, "t": 9, "v": 11, "b": 8, "f": 12, "e": 27, "s": 32, "d": 127, "0": 0}


class PatternError(ValueError):
    """The text is not an argument pattern; the message says where and why."""


@dataclass(frozen=True)
class ArgPattern:
    """A parsed ``--match`` pattern: the tree for the target and what it implies."""

    text: str
    tree: Any
    #: Number of arguments for a proper list pattern; ``None`` for ``_`` or ``[A | _]``.
    arity: int | None

    @property
    def constrains(self) -> bool:
        """Does the pattern constrain some argument? ``_``, ``[_, _]`` and ``[_ | _]`` do not.

        A pattern of wildcards only fixes how many arguments there are, which
        narrows a module-wide trace to the functions of that arity: no narrowing.
        """
        if self.tree == WILDCARD:
            return False
        _tag, items, *tail = self.tree
        return any(item != WILDCARD for item in (*items, *tail))


def parse_pattern(text: str) -> ArgPattern:
    """Parse an argument-list pattern; raise :class:`PatternError` with a usable message."""
    parser = _Parser(text)
    tree = parser.term(0)
    parser.skip_space()
    if parser.pos != len(text):
        raise parser.error("unexpected text after the pattern")
    if tree == WILDCARD:
        return ArgPattern(text, tree, None)
    if not isinstance(tree, tuple) or tree[0] not in (_LIST, _CONS):
        raise PatternError("the pattern must be a list of arguments, e.g. '[3, _]' (or _ for any arguments)")
    return ArgPattern(text, tree, len(tree[1]) if tree[0] == _LIST else None)


def has_wildcard(tree: Any) -> bool:
    if tree == WILDCARD:
        return True
    if not isinstance(tree, tuple):
        return False
    tag = tree[0]
    if tag in (_TUPLE, _LIST):
        return any(has_wildcard(t) for t in tree[1])
    if tag == _CONS:
        return any(has_wildcard(t) for t in tree[1]) or has_wildcard(tree[2])
    if tag == _MAP:
        return any(has_wildcard(k) or has_wildcard(v) for k, v in tree[1])
    return False


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.nodes = 0

    # -- helpers ----------------------------------------------------------------------

    def error(self, message: str) -> PatternError:
        near = self.text[self.pos : self.pos + 12]
        where = f"at character {self.pos + 1}" + (f" ({near!r})" if near else " (end of pattern)")
        return PatternError(f"{message} {where}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def peek(self, token: str) -> bool:
        self.skip_space()
        return self.text.startswith(token, self.pos)

    def expect(self, token: str) -> None:
        if not self.peek(token):
            if self.text[self.pos : self.pos + 1] in tuple("+-*/=<>!?"):
                raise self.error("operators are not allowed: only literals and _")
            raise self.error(f"expected {token!r}")
        self.pos += len(token)

    def accept(self, token: str) -> bool:
        if self.peek(token):
            self.pos += len(token)
            return True
        return False

    # -- grammar ----------------------------------------------------------------------

    def term(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.error(f"the pattern nests deeper than {MAX_DEPTH} levels")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error(f"the pattern has more than {MAX_NODES} elements")
        self.skip_space()
        if self.pos >= len(self.text):
            raise self.error("the pattern ends too early")
        c = self.text[self.pos]
        if c == "{":
            self.pos += 1
            return (_TUPLE, self.sequence("}", depth))
        if c == "[":
            return self.list(depth)
        if self.text.startswith("<<", self.pos):
            return self.binary()
        if self.text.startswith("#{", self.pos):
            return self.map(depth)
        if c == '"':
            return (_LIT, [ord(ch) for ch in self.quoted('"')])
        if c == "'":
            return self.atom(self.quoted("'"))
        if c == "$":
            return (_LIT, self.char())
        if c in _DIGITS or (c == "-" and self.text[self.pos + 1 : self.pos + 2] in _DIGITS):
            return (_LIT, self.number())
        if c == "_" or c.isalpha():
            return self.name()
        if c == ":":
            raise self.error("use Erlang syntax for atoms (ok, not :ok)")
        raise self.error(f"unexpected {c!r}: only literals and _ are allowed")

    def sequence(self, close: str, depth: int) -> list[Any]:
        items: list[Any] = []
        if self.accept(close):
            return items
        while True:
            items.append(self.term(depth + 1))
            if self.accept(close):
                return items
            self.expect(",")

    def list(self, depth: int) -> Any:
        self.pos += 1
        items: list[Any] = []
        if self.accept("]"):
            return (_LIST, items)
        while True:
            items.append(self.term(depth + 1))
            if self.accept("]"):
                return (_LIST, items)
            if self.accept("|"):
                tail = self.term(depth + 1)
                self.expect("]")
                if isinstance(tail, tuple) and tail[0] == _LIST:
                    return (_LIST, items + tail[1])
                if isinstance(tail, tuple) and tail[0] == _CONS:
                    return (_CONS, items + tail[1], tail[2])
                return (_CONS, items, tail)
            self.expect(",")

    def map(self, depth: int) -> Any:
        self.pos += 2
        pairs: list[tuple[Any, Any]] = []
        if self.accept("}"):
            return (_MAP, pairs)
        while True:
            key = self.term(depth + 1)
            if has_wildcard(key):
                raise self.error("map keys must be literals (no _)")
            if self.peek(":="):
                raise self.error("use => in map patterns")
            self.expect("=>")
            pairs.append((key, self.term(depth + 1)))
            if self.accept("}"):
                return (_MAP, pairs)
            self.expect(",")

    def binary(self) -> Any:
        self.pos += 2
        if self.accept(">>"):
            return (_LIT, b"")
        if self.peek('"'):
            text = self.quoted('"')
            self.expect(">>")
            return (_LIT, text.encode("utf-8"))
        data = bytearray()
        while True:
            self.skip_space()
            value = self.char() if self.peek("$") else self.number()
            if not isinstance(value, int) or not 0 <= value <= 255:
                raise self.error("binary segments must be integers from 0 to 255")
            data.append(value)
            if self.accept(">>"):
                return (_LIT, bytes(data))
            self.expect(",")

    def name(self) -> Any:
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] in "_@"):
            self.pos += 1
        word = self.text[start : self.pos]
        if word[0] == "_":
            return WILDCARD
        if not word.isascii():
            self.pos = start
            raise self.error(f"quote the atom {word!r} ('...')")
        if word[0].isupper():
            self.pos = start
            raise self.error(f"{word!r} is a variable: patterns take literals and _ only")
        if self.text[self.pos : self.pos + 1] in ("(", ":"):
            self.pos = start
            raise self.error("function calls are not allowed: only literals and _")
        if word in _RESERVED:
            self.pos = start
            raise self.error(f"{word!r} is a reserved word; quote it as '{word}' to mean the atom")
        return self.atom(word)

    def atom(self, name: str) -> Any:
        if name == "_" or name.startswith("$"):
            raise self.error(
                f"the atom {name!r} is not allowed in a pattern (it has a meaning in match specifications)"
            )
        if len(name) > 255:
            raise self.error("atom longer than 255 characters")
        return (_ATOM, name.encode("utf-8"))

    def number(self) -> int | float:
        m_start = self.pos
        text = self.text
        if text.startswith("-", self.pos):
            self.pos += 1
        while self.pos < len(text) and (text[self.pos] in _DIGITS or text[self.pos] == "_"):
            self.pos += 1
        digits = text[m_start : self.pos].replace("_", "")
        if not digits.lstrip("-"):
            raise self.error("expected a number")
        if self.pos < len(text) and text[self.pos] == "#":
            self.pos += 1
            base = int(digits.lstrip("-") or "0")
            if not 2 <= base <= 36:
                raise self.error("the base of a number must be from 2 to 36")
            start = self.pos
            while self.pos < len(text) and text[self.pos].isalnum():
                self.pos += 1
            try:
                return int(text[start : self.pos], base) * (-1 if digits.startswith("-") else 1)
            except ValueError:
                raise self.error(f"not a base-{base} number") from None
        if text[self.pos : self.pos + 1] == "." and text[self.pos + 1 : self.pos + 2] in _DIGITS:
            self.pos += 1
            while self.pos < len(text) and text[self.pos] in _DIGITS:
                self.pos += 1
            if text[self.pos : self.pos + 1] in ("e", "E"):
                self.pos += 1
                if text[self.pos : self.pos + 1] in ("+", "-"):
                    self.pos += 1
                exp_start = self.pos
                while self.pos < len(text) and text[self.pos] in _DIGITS:
                    self.pos += 1
                if self.pos == exp_start:
                    raise self.error("incomplete exponent")
            return float(text[m_start : self.pos].replace("_", ""))
        if len(digits.lstrip("-")) > 100:
            raise self.error("integer too long")
        return int(digits)

    def char(self) -> int:
        self.pos += 1  # the $
        if self.pos >= len(self.text):
            raise self.error("$ needs a character")
        if self.text[self.pos] == "\\":
            return self.escape()
        ch = self.text[self.pos]
        self.pos += 1
        return ord(ch)

    def escape(self) -> int:
        self.pos += 1  # the backslash
        if self.pos >= len(self.text):
            raise self.error("incomplete escape")
        c = self.text[self.pos]
        self.pos += 1
        if c in _ESCAPES:
            return _ESCAPES[c]
        if c == "x":
            if self.text[self.pos : self.pos + 1] == "{":
                end = self.text.find("}", self.pos)
                if end < 0:
                    raise self.error("unterminated \\x{...}")
                digits, self.pos = self.text[self.pos + 1 : end], end + 1
            else:
                digits, self.pos = self.text[self.pos : self.pos + 2], self.pos + 2
            try:
                value = int(digits, 16)
            except ValueError:
                raise self.error("bad \\x escape") from None
            if value > 0x10FFFF:
                raise self.error("character code above 10FFFF")
            return value
        return ord(c)

    def quoted(self, mark: str) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise self.error(f"unterminated {mark}...{mark}")
            c = self.text[self.pos]
            if c == mark:
                self.pos += 1
                return "".join(out)
            if c == "\\":
                out.append(chr(self.escape()))
            else:
                out.append(c)
                self.pos += 1
