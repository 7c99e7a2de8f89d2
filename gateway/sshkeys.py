"""OpenSSH public key lines: parsing and fingerprints (a leaf used by config and the server)."""

from __future__ import annotations

import asyncssh


class KeyFormatError(ValueError):
    """The text is not an OpenSSH public key line."""


def parse_public_key(text: str) -> asyncssh.SSHKey:
    """Parse ``ssh-ed25519 AAAA... comment``; raise :class:`KeyFormatError` if it is not one."""
    try:
        return asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        short = text.strip()[:40]
        raise KeyFormatError(f"not an OpenSSH public key ({exc}): {short!r}") from None


def fingerprint(key: asyncssh.SSHKey) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it."""
    return str(key.get_fingerprint("sha256"))


def key_identity(text: str) -> bytes:
    """The key's public blob, comment stripped: what two key lines must share to be the same key."""
    return bytes(parse_public_key(text).public_data)
