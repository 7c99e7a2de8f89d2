"""Verifying a recording: intact, unterminated (a crash), or the first bad record and why.

The file is read once, line by line, recomputing the hash chain
(:mod:`gateway.recording_chain`). At each checkpoint record the verifier
checks, in order: the signing key is trusted, the signature is valid, the
line is in canonical form, and the checkpoint's number, record count, byte
offset and chain value match the file. If all hold, everything before it is
intact. If not, the checkpoint's list of per-record digests is aligned with
the records actually present since the last good checkpoint to name the
first bad one:

- ``changed``: a record differs from what was signed (or is not an event);
- ``removed``: records that were signed are missing;
- ``inserted``: a record that was never signed sits between signed ones;
- ``reordered``: signed records appear in another order;
- ``appended``: anything after the final checkpoint;
- ``truncated``: the file ends inside a record;
- ``foreign_key``: a checkpoint signed by a key that is not trusted.

Without a final checkpoint the recording is *unterminated*: the gateway
stopped without closing it (crash, SIGKILL, power loss). What precedes the
last good checkpoint is vouched for; the records after it are reported as
unsigned. Cutting a file exactly at a record boundary looks the same; the
audit log tells the two apart (``beamgate verify --config`` checks it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .recording_chain import CHECKPOINT, EVENT_TYPES, Checkpoint, chain_next, chain_start, fingerprint, short_digest

OK, UNTERMINATED, TAMPERED, INVALID = "ok", "unterminated", "tampered", "invalid"


@dataclass(frozen=True)
class Problem:
    kind: str
    line: int  # 1-based
    offset: int  # byte offset of that line
    detail: str
    t: float | None = None


@dataclass(frozen=True)
class Verdict:
    path: str
    status: str
    problem: Problem | None = None
    events: int = 0  # o/i/r/m records read
    checkpoints: int = 0  # good checkpoints
    verified_lines: int = 0  # lines vouched for by the last good checkpoint
    verified_t: float | None = None
    unsigned: int = 0  # records after the last good checkpoint (unterminated)
    key: str | None = None
    header: dict[str, Any] = field(default_factory=dict)
    #: Why an unterminated recording has no final checkpoint (the audit log may know better than a crash).
    why: str = "the gateway stopped without closing this recording"

    def text(self) -> str:
        """One line for a person."""
        if self.status == OK:
            return (
                f"OK {self.path}: {_count(self.events, 'event')}, {_count(self.checkpoints, 'checkpoint')}, "
                f"{_duration(self.verified_t)}, signed by {self.key}"
            )
        if self.status == UNTERMINATED:
            if self.checkpoints == 0:
                covered = "no checkpoint was written, nothing can be vouched for"
            else:
                covered = (
                    f"intact up to line {self.verified_lines} (t={self.verified_t:.3f}s, "
                    f"checkpoint {self.checkpoints}, signed by {self.key})"
                )
            return f"UNTERMINATED {self.path}: {covered}; {self.unsigned} later record(s) unsigned: {self.why}"
        p = self.problem
        assert p is not None
        if self.status == INVALID:
            return f"INVALID {self.path}: {p.detail}"
        when = f", t={p.t:.3f}s" if p.t is not None else ""
        return f"TAMPERED {self.path}: line {p.line} (byte {p.offset}{when}): {p.kind}: {p.detail}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.path,
            "status": self.status,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "verified_lines": self.verified_lines,
            "verified_t": self.verified_t,
            "unsigned": self.unsigned,
            "key": self.key,
            "session": self.header.get("beamgate", {}).get("session") if self.header else None,
        }
        if self.status == UNTERMINATED:
            out["why"] = self.why
        if self.problem is not None:
            p = self.problem
            out["problem"] = {"kind": p.kind, "line": p.line, "offset": p.offset, "t": p.t, "detail": p.detail}
        return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _duration(t: float | None) -> str:
    seconds = int(t or 0)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass(frozen=True)
class _Rec:
    index: int
    offset: int
    digest: bytes
    t: float | None
    kind: str | None  # None: not a valid event line

    def problem(self, kind: str, detail: str) -> Problem:
        return Problem(kind, self.index + 1, self.offset, detail, self.t)


class _Tampered(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def verify_file(path: Path, keys: Sequence[Ed25519PublicKey]) -> Verdict:
    """Verify one recording against the trusted public ``keys``."""
    name = str(path)
    try:
        f = path.open("rb")
    except OSError as exc:
        return Verdict(name, INVALID, Problem("unreadable", 0, 0, f"cannot read: {exc.strerror}"))
    with f:
        header_line = f.readline()
        header = _header(header_line)
        if header is None:
            detail = "not an asciicast v2 recording (the first line is not a v2 header)"
            return Verdict(name, INVALID, Problem("invalid", 1, 0, detail))
        return _Walk(name, header, header_line, {fingerprint(k): k for k in keys}).run(f)


def _header(line: bytes) -> dict[str, Any] | None:
    if not line.endswith(b"\n"):
        return None
    try:
        header = json.loads(line)
    except ValueError:
        return None
    return header if isinstance(header, dict) and header.get("version") == 2 else None


class _Walk:
    """One pass over a recording."""

    def __init__(self, name: str, header: dict[str, Any], header_line: bytes, trusted: dict[str, Any]) -> None:
        self.name, self.header, self.trusted = name, header, trusted
        self.chain = chain_start(header_line)
        self.window = [_Rec(0, 0, short_digest(header_line), None, "header")]  # since the last good checkpoint
        self.index, self.offset = 1, len(header_line)
        self.seq = 0
        self.events = 0
        self.final: _Rec | None = None
        self.verified_t: float | None = None
        self.key: str | None = None

    def run(self, f: Any) -> Verdict:
        try:
            for raw in f:
                self.record(raw)
        except _Tampered as exc:
            return self.verdict(TAMPERED, exc.problem)
        if self.final is not None:
            return self.verdict(OK)
        for rec in self.window[1:]:
            if rec.kind is None:
                return self.verdict(TAMPERED, rec.problem("changed", "not an asciicast event line"))
        return self.verdict(UNTERMINATED)

    def verdict(self, status: str, problem: Problem | None = None) -> Verdict:
        anchor = self.window[0]
        return Verdict(
            self.name,
            status,
            problem,
            events=self.events,
            checkpoints=self.seq,
            verified_lines=anchor.index + 1 if self.seq else 0,
            verified_t=self.verified_t,
            unsigned=len(self.window) - 1,
            key=self.key,
            header=self.header,
        )

    def record(self, raw: bytes) -> None:
        t, kind, data = _event(raw)
        rec = _Rec(self.index, self.offset, short_digest(raw), t, kind)
        if not raw.endswith(b"\n"):
            raise _Tampered(rec.problem("truncated", "the file ends inside a record (cut short)"))
        if self.final is not None:
            raise _Tampered(rec.problem("appended", f"after the final checkpoint (line {self.final.index + 1})"))
        if kind == CHECKPOINT:
            self.checkpoint(rec, raw, data)
        else:
            self.events += kind is not None
            self.window.append(rec)
        self.chain = chain_next(self.chain, raw)
        self.index += 1
        self.offset += len(raw)

    def checkpoint(self, rec: _Rec, raw: bytes, data: Any) -> None:
        try:
            cp = Checkpoint.parse(data)
        except ValueError as exc:
            raise _Tampered(rec.problem("changed", f"checkpoint record is malformed: {exc}")) from None
        public = self.trusted.get(cp.key)
        if public is None:
            trusted = ", ".join(self.trusted) or "none"
            raise _Tampered(
                rec.problem("foreign_key", f"checkpoint {cp.seq} is signed by {cp.key}, trusted: {trusted}")
            )
        if not cp.verify(public):
            raise _Tampered(rec.problem("changed", f"checkpoint {cp.seq}'s signature does not match its contents"))
        if raw != cp.record():
            raise _Tampered(rec.problem("changed", f"checkpoint {cp.seq}'s line was re-encoded or its time changed"))
        if cp.seq == self.seq + 1 and cp.count == rec.index and cp.end == rec.offset and cp.chain == self.chain:
            self.seq, self.key, self.verified_t = cp.seq, cp.key, cp.t
            self.window = [rec]
            if cp.final:
                self.final = rec
            return
        raise _Tampered(self.diagnose(cp, rec))

    def diagnose(self, cp: Checkpoint, at: _Rec) -> Problem:
        """Name the first record that differs from what ``cp`` signed."""
        if cp.seq <= self.seq:
            return at.problem("inserted", f"a copy of checkpoint {cp.seq}, which was already seen")
        start = cp.first - self.window[0].index
        gone = range(self.seq + 1, cp.seq)
        missing = f" (checkpoint {', '.join(map(str, gone))} missing)" if gone else ""
        if start < 0:
            return at.problem("reordered", f"checkpoint {cp.seq} is out of place")
        if start > len(self.window):
            return at.problem("removed", f"records signed by checkpoint {cp.seq} are missing before this line{missing}")
        problem = classify(self.window[start:], list(cp.digests), at)
        if problem is not None:
            return replace(problem, detail=problem.detail + missing)
        if start > 0:
            first = self.window[1]
            return first.problem("removed", f"records around here do not match the chain{missing}")
        return at.problem("changed", f"checkpoint {cp.seq} does not match the records before it")


def classify(actual: list[_Rec], expected: list[bytes], at: _Rec) -> Problem | None:
    """The first difference between records present and digests signed, with its likely cause."""
    have = [r.digest for r in actual]
    i = next((k for k, (a, e) in enumerate(zip(have, expected, strict=False)) if a != e), min(len(have), len(expected)))
    if i == len(have) == len(expected):
        return None
    if i == len(expected):
        return actual[i].problem("inserted", "this record was never signed")
    if i == len(have):
        return at.problem("removed", f"{len(expected) - i} signed record(s) missing before this line")
    a, e = have[i], expected[i]
    rec = actual[i]
    later_expected, later_have = expected[i + 1 :], have[i + 1 :]
    if a in later_expected and e not in have[i:]:
        return rec.problem("removed", f"{later_expected.index(a) + 1} signed record(s) missing before this line")
    if e in later_have and a not in expected[i:]:
        return rec.problem("inserted", "this record was never signed")
    if a not in expected and e not in have:
        what = "is not an asciicast event line" if rec.kind is None else "differs from what was signed"
        return rec.problem("changed", f"this record {what}")
    return rec.problem("reordered", "signed records appear in another order from here")


def _event(raw: bytes) -> tuple[float | None, str | None, Any]:
    """``(t, type, data)`` of an event line, or ``(None, None, None)`` if it is not one."""
    try:
        event = json.loads(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        return None, None, None
    if (
        isinstance(event, list)
        and len(event) == 3
        and isinstance(event[0], (int, float))
        and not isinstance(event[0], bool)
        and event[1] in EVENT_TYPES
    ):
        return float(event[0]), event[1], event[2]
    return None, None, None
