"""Node names: ``alive@host``, short (host without dots) or long.

A node started with ``-sname`` only talks to short-named nodes and one
started with ``-name`` only to long-named ones, so the gateway picks the
style of its own name from the target's.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from .errors import NodeNameError

_ALIVE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


@dataclass(frozen=True, slots=True)
class NodeName:
    alive: str
    host: str

    @classmethod
    def parse(cls, text: str) -> NodeName:
        alive, sep, host = text.partition("@")
        if not sep or not alive or not host or "@" in host:
            raise NodeNameError(f"{text!r} is not a node name (expected name@host)")
        if not _ALIVE.match(alive):
            raise NodeNameError(
                f"{text!r}: the part before @ may hold only letters, digits, '_' and '-'"
            )
        if len(text.encode("utf-8")) > 255:
            raise NodeNameError(f"{text[:40]!r}...: a node name has at most 255 bytes")
        if any(c.isspace() or ord(c) < 0x20 for c in host):
            raise NodeNameError(f"{text!r}: the host part holds spaces or control characters")
        return cls(alive, host)

    @property
    def longnames(self) -> bool:
        """True when the host part is a fully qualified name or an IP address."""
        return "." in self.host or ":" in self.host

    def __str__(self) -> str:
        return f"{self.alive}@{self.host}"


def local_host(longnames: bool, override: str | None = None) -> str:
    """The host part for the gateway's own node name, in the requested style."""
    if override:
        return override
    if longnames:
        fqdn = socket.getfqdn()
        if "." in fqdn:
            return fqdn
        return "127.0.0.1"
    return socket.gethostname().split(".", 1)[0]
