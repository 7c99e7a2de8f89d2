"""Tamper evidence for recordings: the hash chain, signed checkpoints and the recording key.

A recording is an asciicast v2 file: a header line, then one JSON array per
line (a *record*). Records are numbered from 0 (the header). The writer keeps
a SHA-256 chain over the exact bytes of every line, newline included::

    chain(0) = SHA256("beamgate recording v1\\n" || header line)
    chain(i) = SHA256(chain(i-1) || line i)

Every few seconds, and when the session ends, it appends a *checkpoint*
record ``[t, "c", DATA]``: an event type players ignore (asciicast v2 leaves
the list of event types open; asciinema 2.x plays only ``"o"``, asciinema 3
reads unknown one-letter types as "other"). ``DATA`` is a JSON object, as a
string, signed with the gateway's Ed25519 recording key. It states the chain
value before it, how many records precede it, where it starts in the file,
whether it is the last one, and a 6-byte digest of every record since the
previous checkpoint (the header for the first) so that the verifier can say
*which* record is bad and *how* (changed, removed, inserted, reordered) rather
than only that the chain broke. The checkpoint line is itself chained, so the
next checkpoint covers it; the final checkpoint's line must be byte-identical
to its canonical encoding, so every byte of a closed file is covered.

Keys are Ed25519, stored as unencrypted PKCS#8 PEM (mode 0600), identified by
their OpenSSH SHA-256 fingerprint, and exported for reviewers as an OpenSSH
public key line (``ssh-keygen -lf`` shows the same fingerprint).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT = 1
CHECKPOINT = "c"
EVENT_TYPES = frozenset({"o", "i", "r", "m", CHECKPOINT})
DIGEST_BYTES = 6
_CHAIN_DOMAIN = b"beamgate recording v1\n"
_SIGN_DOMAIN = b"beamgate recording checkpoint v1\n"
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


class RecordingKeyError(Exception):
    """A recording key cannot be created, read or parsed; the message says why."""


# -- records and the chain -----------------------------------------------------------


def encode_record(t: float, kind: str, data: str) -> bytes:
    """One asciicast v2 event line, newline included, as asciinema writes it."""
    return (json.dumps([t, kind, data], ensure_ascii=False) + "\n").encode("utf-8")


def chain_start(header_line: bytes) -> bytes:
    return hashlib.sha256(_CHAIN_DOMAIN + header_line).digest()


def chain_next(chain: bytes, line: bytes) -> bytes:
    return hashlib.sha256(chain + line).digest()


def short_digest(line: bytes) -> bytes:
    """The per-record digest a checkpoint lists, for locating a bad record (not for integrity)."""
    return hashlib.sha256(line).digest()[:DIGEST_BYTES]


# -- checkpoints ---------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement about everything in the file before this record."""

    seq: int  # 1, 2, ... in file order
    t: float  # the record's own time
    first: int  # index of the record digests[0] describes (0 = header, else the previous checkpoint)
    count: int  # records before this one, header included (= this record's index)
    end: int  # byte offset where this record starts
    chain: bytes  # chain(count - 1)
    digests: tuple[bytes, ...]  # short digests of records first .. count-1
    final: bool
    key: str  # fingerprint of the signing key
    signature: bytes = b""

    def _fields(self) -> dict[str, Any]:
        return {
            "v": FORMAT,
            "seq": self.seq,
            "t": self.t,
            "first": self.first,
            "count": self.count,
            "end": self.end,
            "chain": self.chain.hex(),
            "digests": base64.b64encode(b"".join(self.digests)).decode("ascii"),
            "final": self.final,
            "key": self.key,
        }

    def signed_message(self) -> bytes:
        return _SIGN_DOMAIN + json.dumps(self._fields(), sort_keys=True, separators=(",", ":")).encode("ascii")

    def signed_by(self, private_key: Ed25519PrivateKey) -> Checkpoint:
        return replace(self, signature=private_key.sign(self.signed_message()))

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(self.signature, self.signed_message())
        except InvalidSignature:
            return False
        return True

    def data(self) -> str:
        """The record's data string (canonical: the verifier re-encodes and compares)."""
        fields = self._fields()
        fields["sig"] = base64.b64encode(self.signature).decode("ascii")
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    def record(self) -> bytes:
        return encode_record(self.t, CHECKPOINT, self.data())

    @classmethod
    def parse(cls, data: Any) -> Checkpoint:
        """Read a checkpoint record's data; ``ValueError`` says what is malformed."""
        if not isinstance(data, str):
            raise ValueError("checkpoint data is not a string")
        try:
            f = json.loads(data)
        except json.JSONDecodeError:
            raise ValueError("checkpoint data is not JSON") from None
        if not isinstance(f, dict) or f.get("v") != FORMAT:
            raise ValueError(f"checkpoint format is not version {FORMAT}")
        try:
            raw = base64.b64decode(f["digests"], validate=True)
            digests = tuple(raw[i : i + DIGEST_BYTES] for i in range(0, len(raw), DIGEST_BYTES))
            cp = cls(
                seq=_int(f["seq"]),
                t=_number(f["t"]),
                first=_int(f["first"]),
                count=_int(f["count"]),
                end=_int(f["end"]),
                chain=bytes.fromhex(f["chain"]),
                digests=digests,
                final=_bool(f["final"]),
                key=str(f["key"]),
                signature=base64.b64decode(f["sig"], validate=True),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint field missing or malformed ({exc})") from None
        if not _FINGERPRINT.match(cp.key):  # it is shown to reviewers: no terminal control text
            raise ValueError("checkpoint key is not a SHA256 fingerprint")
        if len(raw) % DIGEST_BYTES or len(cp.chain) != 32 or cp.data() != data:
            raise ValueError("checkpoint data is not in canonical form")
        return cp


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError("expected a non-negative integer")
    return v


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("expected a number")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("expected a boolean")
    return v


# -- keys ------------------------------------------------------------------------------


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """``SHA256:...`` exactly as ``ssh-keygen -lf`` prints it for the exported key."""
    line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def export_public_key(public_key: Ed25519PublicKey, comment: str = "beamgate-recording-key") -> str:
    """The OpenSSH public key line a reviewer passes to ``beamgate verify --key``."""
    line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode('ascii')} {comment}\n"


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The gateway's recording key at ``path``, created (mode 0600) if missing.

    Refuses a key file that group or others may read, like OpenSSH does.
    """
    try:
        return _load_private(path)
    except FileNotFoundError:
        pass
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a key another process created meanwhile
        except FileExistsError:
            return _load_private(path)
        finally:
            tmp.unlink()
    except OSError as exc:
        raise RecordingKeyError(f"cannot create recording key {path}: {exc.strerror}") from None
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The existing recording key at ``path`` (never creates one)."""
    try:
        return _load_private(path)
    except FileNotFoundError:
        raise RecordingKeyError(f"no recording key at {path} (the gateway creates it when it starts)") from None


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        st = path.stat()
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RecordingKeyError(f"cannot read recording key {path}: {exc.strerror}") from None
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise RecordingKeyError(f"recording key {path} has mode {mode:04o}; it must be 0600 (run: chmod 600 {path})")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise RecordingKeyError(f"recording key {path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RecordingKeyError(f"recording key {path} is not an Ed25519 key")
    return key


def load_public_keys(path: Path) -> list[Ed25519PublicKey]:
    """Trusted keys from a file: OpenSSH public key lines, a PEM public key, or the private key itself."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecordingKeyError(f"cannot read key file {path}: {exc.strerror}") from None
    keys: list[Ed25519PublicKey] = []
    try:
        if b"PRIVATE KEY-----" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if isinstance(private, Ed25519PrivateKey):
                keys.append(private.public_key())
        elif b"-----BEGIN PUBLIC KEY-----" in data:
            public = serialization.load_pem_public_key(data)
            if isinstance(public, Ed25519PublicKey):
                keys.append(public)
        else:
            for line in data.splitlines():
                line = line.strip()
                if line and not line.startswith(b"#"):
                    public = serialization.load_ssh_public_key(b" ".join(line.split()[:2]))
                    if not isinstance(public, Ed25519PublicKey):
                        raise ValueError("not an ssh-ed25519 key")
                    keys.append(public)
    except (ValueError, TypeError, IndexError) as exc:
        raise RecordingKeyError(f"key file {path} holds no usable Ed25519 key: {exc}") from None
    if not keys:
        raise RecordingKeyError(f"key file {path} holds no Ed25519 key")
    return keys
