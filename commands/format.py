"""Output helpers: sanitizing remote text, Erlang-style term printing, tables, units.

SPEC safety rule 8: remote text never reaches a terminal raw. Everything a
node sends that ends up on screen passes through :func:`sanitize`, which
shows control characters visibly (``\\x1b``, ``\\n``) instead of letting the
terminal interpret them, including C1 controls and the Unicode bidi
overrides that can make text read differently from what it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.dist.terms import Atom, BitString, ExportFun, ImproperList, OpaqueFun, Pid, Port, Reference

from .refs import display_module, format_mfa

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A)) | {0x200E, 0x200F, 0x061C}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


_CONTROLS = "\x00-\x1f\x7f-\x9f\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[{_CONTROLS}\\\\]")
_UNSAFE_KEEP_BACKSLASH = re.compile(f"[{_CONTROLS}]")


class SafeText(str):
    """Text that :func:`sanitize` produced: sanitizing it again returns it unchanged."""

    __slots__ = ()


def sanitize(text: str, *, keep_newlines: bool = False, escape_backslash: bool = True) -> str:
    """``text`` with every control character shown visibly, never interpreted.

    Backslashes are doubled too (unless ``escape_backslash`` is off), so a
    remote string that *contains* the text ``\\x1b`` cannot pass for an escape.
    The result is a :class:`SafeText`, which later passes (``table``,
    ``key_values``) leave as it is instead of escaping its escapes again.
    """
    if isinstance(text, SafeText):
        return text
    if keep_newlines:
        return SafeText("\n".join(sanitize(line, escape_backslash=escape_backslash) for line in text.split("\n")))
    pattern = _UNSAFE if escape_backslash else _UNSAFE_KEEP_BACKSLASH
    return SafeText(pattern.sub(lambda m: _escape(m.group()), text))


def safe_join(separator: str, parts: Iterable[str]) -> str:
    """``separator.join(parts)`` with each part sanitized once; ``separator`` must be our own text."""
    return SafeText(sanitize(separator).join(sanitize(p) for p in parts))


def quote(text: str, mark: str) -> str:
    """``text`` between ``mark`` quotes with the quote, backslash and controls escaped."""
    return mark + sanitize(text).replace(mark, "\\" + mark) + mark


def chars_text(value: Any) -> str:
    """Remote text that may be a charlist, a binary or an atom, decoded and sanitized."""
    if isinstance(value, list):
        return sanitize("".join(chr(c) if isinstance(c, int) and 0 <= c < 0x110000 else "?" for c in value))
    if isinstance(value, bytes):
        return sanitize_bytes(value)
    return sanitize(str(value))


def sanitize_bytes(data: bytes, *, keep_newlines: bool = False) -> str:
    """Decode remote bytes (UTF-8, undecodable bytes shown as ``\\xNN``) and sanitize."""
    text = data.decode("utf-8", "backslashreplace")
    return sanitize(text, keep_newlines=keep_newlines)


# -- Erlang-style printing of decoded terms -----------------------------------------

_PLAIN_ATOM = re.compile(r"^[a-z][A-Za-z0-9_@]*$")
_RESERVED = frozenset(
    """after and andalso band begin bnot bor bsl bsr bxor case catch cond div end fun if let maybe not of or
    orelse receive rem try when xor else""".split()
)


def atom_text(atom: str) -> str:
    if _PLAIN_ATOM.match(atom) and atom not in _RESERVED:
        return atom
    return quote(atom, "'")


def name_text(name: str) -> str:
    """A module or registered name as users write it (``MyApp.Worker``, ``my_server``), sanitized."""
    return sanitize(display_module(str(name)))


def mfa_text(term: Any) -> str | None:
    """``{M, F, Arity | Args}`` as ``mod:fun/2`` or ``MyApp.Worker.fun/2``, sanitized; ``None`` otherwise."""
    if not (isinstance(term, tuple) and len(term) == 3 and isinstance(term[0], str) and isinstance(term[1], str)):
        return None
    arity = term[2]
    if isinstance(arity, list):
        arity = len(arity)
    if not isinstance(arity, int) or isinstance(arity, bool):
        return None
    return sanitize(format_mfa(str(term[0]), str(term[1]), arity))


def pid_text(pid: Pid, local_node: str | None = None) -> str:
    """``<0.123.0>`` for pids of ``local_node``; ``<node.123.0>`` otherwise."""
    if local_node is None or pid.node == local_node:
        return f"<0.{pid.id}.{pid.serial}>"
    return f"<{pid.node}.{pid.id}.{pid.serial}>"


def term_text(term: Any, *, local_node: str | None = None, limit: int = 2000) -> str:
    """Erlang-style text for a decoded term, cut at ``limit`` characters, sanitized."""
    out: list[str] = []
    budget = [limit]
    _term(term, out, budget, local_node)
    text = "".join(out)
    if budget[0] <= 0:
        text = text[:limit] + "..."
    return sanitize(text, escape_backslash=False)


def _term(t: Any, out: list[str], budget: list[int], node: str | None) -> None:
    if budget[0] <= 0:
        return
    piece: str | None = None
    if isinstance(t, bool):
        piece = "true" if t else "false"
    elif isinstance(t, Atom):
        piece = atom_text(t)
    elif isinstance(t, int):
        piece = str(t)
    elif isinstance(t, float):
        piece = repr(t) if math.isfinite(t) else str(t)
    elif isinstance(t, bytes):
        piece = _binary_text(t)
    elif isinstance(t, str):
        piece = _binary_text(t.encode())
    elif isinstance(t, Pid):
        piece = pid_text(t, node)
    elif isinstance(t, Port):
        piece = f"#Port<0.{t.id}>" if node is None or t.node == node else f"#Port<{t.node}.{t.id}>"
    elif isinstance(t, Reference):
        piece = "#Ref<0." + ".".join(str(i) for i in reversed(t.ids)) + ">"
    elif isinstance(t, ExportFun):
        piece = f"fun {format_mfa(t.module, t.function, t.arity)}"
    elif isinstance(t, OpaqueFun):
        piece = f"#Fun<{display_module(t.module)}>"
    elif isinstance(t, BitString):
        piece = f"<<{len(t.data)} bytes, {t.bits} bits in the last>>"
    if piece is not None:
        out.append(piece)
        budget[0] -= len(piece)
        return
    if isinstance(t, tuple):
        _seq(t, "{", "}", out, budget, node)
    elif isinstance(t, list):
        if t and all(isinstance(c, int) and not isinstance(c, bool) and 32 <= c < 127 for c in t):
            s = quote("".join(chr(c) for c in t), '"')
            out.append(s)
            budget[0] -= len(s)
        else:
            _seq(t, "[", "]", out, budget, node)
    elif isinstance(t, ImproperList):
        out.append("[")
        for i, item in enumerate(t.items):
            if i:
                out.append(",")
            _term(item, out, budget, node)
        out.append("|")
        _term(t.tail, out, budget, node)
        out.append("]")
    elif isinstance(t, dict) or hasattr(t, "items"):
        out.append("#{")
        for i, (k, v) in enumerate(t.items()):
            if i:
                out.append(",")
            _term(k, out, budget, node)
            out.append(" => ")
            _term(v, out, budget, node)
            if budget[0] <= 0:
                break
        out.append("}")
    else:
        piece = repr(t)
        out.append(piece)
        budget[0] -= len(piece)


def _seq(items: Sequence[Any], open_: str, close: str, out: list[str], budget: list[int], node: str | None) -> None:
    out.append(open_)
    for i, item in enumerate(items):
        if i:
            out.append(",")
        _term(item, out, budget, node)
        if budget[0] <= 0:
            break
    out.append(close)


def _binary_text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        return "<<" + quote(text, '"') + ">>"
    if len(data) > 64:
        return f"<<{','.join(str(b) for b in data[:64])},...({len(data)} bytes)>>"
    return "<<" + ",".join(str(b) for b in data) + ">>"


# -- numbers ------------------------------------------------------------------------


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def human_count(n: float) -> str:
    """``1234567`` -> ``1,234,567``."""
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.2f}"
    return f"{int(n):,}"


def percent(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


# -- tables -------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, right: Iterable[int] = ()) -> str:
    """Aligned columns; cells are sanitized; ``right`` lists right-aligned columns."""
    right_cols = set(right)
    body = [[sanitize(c if isinstance(c, str) else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(widths[i]) if i in right_cols else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(list(headers)), *(line(r) for r in body)])


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    """``key: value`` lines with aligned values."""
    items = [(sanitize(k), sanitize(v if isinstance(v, str) else str(v))) for k, v in pairs]
    width = max((len(k) for k, _ in items), default=0)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in items)
