"""Distribution capability flags (``DFLAG_*``), as in OTP's ``erl_dist_protocol``.

beamgate announces the flags OTP 25-28 make mandatory, plus monitors, and
nothing that would oblige it to serve requests (no ``DFLAG_SPAWN``: a remote
node has no reason to ask us to spawn anything). ``DFLAG_PUBLISHED`` is never
set: the gateway is a *hidden* node and never shows in the target's
``nodes()``.
"""

from __future__ import annotations

PUBLISHED = 0x1
ATOM_CACHE = 0x2
EXTENDED_REFERENCES = 0x4
DIST_MONITOR = 0x8
FUN_TAGS = 0x10
DIST_MONITOR_NAME = 0x20
HIDDEN_ATOM_CACHE = 0x40
NEW_FUN_TAGS = 0x80
EXTENDED_PIDS_PORTS = 0x100
EXPORT_PTR_TAG = 0x200
BIT_BINARIES = 0x400
NEW_FLOATS = 0x800
UNICODE_IO = 0x1000
DIST_HDR_ATOM_CACHE = 0x2000
SMALL_ATOM_TAGS = 0x4000
UTF8_ATOMS = 0x10000
MAP_TAG = 0x20000
BIG_CREATION = 0x40000
SEND_SENDER = 0x80000
BIG_SEQTRACE_LABELS = 0x100000
EXIT_PAYLOAD = 0x400000
FRAGMENTS = 0x800000
HANDSHAKE_23 = 0x1000000
UNLINK_ID = 0x2000000
SPAWN = 1 << 32
NAME_ME = 1 << 33
V4_NC = 1 << 34
ALIAS = 1 << 35
MANDATORY_25_DIGEST = 1 << 36

#: "Mandatory flags for distribution in OTP 25" (erts ``dist.h``).
MANDATORY_25 = (
    EXTENDED_REFERENCES
    | FUN_TAGS
    | EXTENDED_PIDS_PORTS
    | UTF8_ATOMS
    | NEW_FUN_TAGS
    | BIG_CREATION
    | NEW_FLOATS
    | MAP_TAG
    | EXPORT_PTR_TAG
    | BIT_BINARIES
    | HANDSHAKE_23
)
#: "New mandatory flags for distribution in OTP 26".
MANDATORY_26 = V4_NC | UNLINK_ID
MANDATORY = MANDATORY_25 | MANDATORY_26

#: What beamgate announces. No PUBLISHED (hidden), no atom cache and no
#: fragments (the peer then sends every message whole, in the pass-through
#: format), no SPAWN (we accept no spawn requests).
OURS = MANDATORY | DIST_MONITOR | DIST_MONITOR_NAME | EXIT_PAYLOAD | SEND_SENDER | ALIAS


def missing_mandatory(peer_flags: int) -> list[str]:
    """Names of mandatory flags the peer did not announce (empty if none)."""
    names = {value: name for name, value in globals().items() if name.isupper() and isinstance(value, int)}
    missing = MANDATORY & ~peer_flags
    return [names.get(1 << bit, hex(1 << bit)) for bit in range(64) if missing & (1 << bit)]
