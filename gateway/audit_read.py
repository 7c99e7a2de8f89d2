"""Reading the audit log: the hash-chain check and the search behind ``beamgate audit``.

:func:`read_log` streams the records and checks the chain as it goes (see
:mod:`gateway.audit` for the line format). A break names the line where the
chain stops matching and the likely cause: ``seq`` tells a changed line
(same count) from removed lines (a gap) and inserted or reordered ones (a
step back). The chain cannot catch a change to the very last line on its
own; the syslog copy, if configured, can.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from .audit import GENESIS, line_hash
from .config import parse_duration


@dataclass(frozen=True)
class ChainBreak:
    line: int
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.detail}"


@dataclass
class LogCheck:
    """What :func:`read_log` found about the chain (filled in while reading)."""

    lines: int = 0
    continues: str | None = None  # the previous log's last hash, when this file continues one
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.breaks


def read_log(path: Path, check: LogCheck) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each record; chain findings go to ``check``."""
    prev_hash: str | None = None
    prev_seq: int | None = None
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            check.lines = number
            if not raw.endswith(b"\n"):
                check.breaks.append(ChainBreak(number, "the log ends inside a line (cut short)"))
            line = raw.rstrip(b"\n")
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError
            except ValueError:
                check.breaks.append(ChainBreak(number, "not a JSON audit record"))
                prev_hash, prev_seq = line_hash(line), None
                continue
            seq, prev = record.get("seq"), record.get("prev")
            if prev_hash is None:
                if prev != GENESIS:
                    check.continues = str(prev)
            elif prev != prev_hash:
                check.breaks.append(ChainBreak(number, _cause(prev_seq, seq)))
            elif isinstance(seq, int) and prev_seq is not None and seq != prev_seq + 1:
                check.breaks.append(ChainBreak(number, f"seq {seq} follows {prev_seq}"))
            prev_hash, prev_seq = line_hash(line), seq if isinstance(seq, int) else None
            yield number, record


def _cause(prev_seq: int | None, seq: Any) -> str:
    if not isinstance(seq, int) or prev_seq is None:
        return "chain broken: the previous line was changed, or lines were removed or inserted"
    if seq == prev_seq + 1:
        return "chain broken: the previous line was changed after it was written"
    if seq > prev_seq + 1:
        return f"chain broken: {seq - prev_seq - 1} line(s) removed before this one"
    return f"chain broken: lines inserted or reordered (seq {seq} after {prev_seq})"


def check_log(path: Path) -> LogCheck:
    """Read the whole log only to check its chain."""
    check = LogCheck()
    for _ in read_log(path, check):
        pass
    return check


# -- search ---------------------------------------------------------------------------


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 date or time (UTC unless it says otherwise), or a duration ago (``"2h"``, ``"7d"``)."""
    now = now or datetime.now(UTC)
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO 8601 time (2024-05-01T10:00Z) nor a duration (2h)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Query:
    """Filters of ``beamgate audit``; each set one must match (``*`` globs allowed in names)."""

    user: str | None = None
    node: str | None = None
    command: str | None = None
    session: str | None = None
    event: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        if self.event is not None and record.get("event") != self.event:
            return False
        for pattern, value in ((self.user, record.get("user")), (self.node, record.get("node"))):
            if pattern is not None and not (isinstance(value, str) and fnmatchcase(value, pattern)):
                return False
        if self.session is not None and record.get("session") != self.session:
            return False
        if self.command is not None:
            name = command_name(record)
            if name is None or not fnmatchcase(name, self.command):
                return False
        if self.since is not None or self.until is not None:
            when = record_time(record)
            if when is None:
                return False
            if (self.since is not None and when < self.since) or (self.until is not None and when > self.until):
                return False
        return True


def command_name(record: dict[str, Any]) -> str | None:
    name = record.get("command")
    if isinstance(name, str):
        return name
    line = record.get("line")
    if isinstance(line, str) and line.split():
        return line.split()[0]
    return None


def record_time(record: dict[str, Any]) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(record["ts"]))
    except (KeyError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def describe(record: dict[str, Any]) -> str:
    """One line for a person: time, event, user, session, then what matters for that event.

    Every value is shown with control characters escaped: the audit log holds
    text users and clients chose (a typed line, a claimed user name).
    """
    ts = visible(record.get("ts", "?"))[:19]
    who = f"{visible(record.get('user') or '-'):<12} {visible(record.get('session') or '-'):<6}"
    head = f"{ts}Z  {visible(record.get('event', '?')):<15} {who}"
    if record.get("event") in ("command", "denied"):
        rule = f"({visible(record['rule'])})" if record.get("rule") else ""
        parts = [
            visible(record.get("node") or "-"),
            json.dumps(str(record.get("line", ""))),
            f"{visible(record.get('decision', '?'))}{rule}",
        ]
        if record.get("event") == "command":
            parts += [visible(record.get("outcome", "?")), f"{visible(record.get('duration_ms', '?'))}ms"]
            parts.append(f"{visible(record.get('output_bytes', '?'))}B")
        else:
            parts.append(visible(record.get("reason", "")))
    else:
        skip = {
            "ts",
            "event",
            "user",
            "session",
            "seq",
            "prev",
            "recording",
            "recording_offset",
            "offset",
            "key_fingerprint",
        }
        parts = [f"{visible(k)}={visible(v)}" for k, v in record.items() if k not in skip and v is not None]
    if record.get("recording"):
        offset = record_offset(record)
        parts.append(f"rec={visible(record['recording'])}" + (f"@{visible(offset)}" if offset is not None else ""))
    return f"{head} {'  '.join(parts)}"


def record_offset(record: dict[str, Any]) -> int | None:
    """Where in its recording an event happened (``recording_offset``; ``offset`` in early logs)."""
    offset = record.get("recording_offset", record.get("offset"))
    return offset if isinstance(offset, int) and not isinstance(offset, bool) else None


def visible(value: Any) -> str:
    """``value`` as text safe for a terminal: quoted and escaped when it has spaces or control characters."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return json.dumps(text) if (not text or not text.isprintable() or " " in text) else text
