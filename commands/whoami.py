"""``whoami``: who the gateway thinks you are, how you logged in, and what you may do."""

from __future__ import annotations

from typing import Any

from .context import Context
from .format import key_values
from .spec import Command, Invocation


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    ident = ctx.identity
    return {
        "user": ident.user,
        "roles": list(ident.roles),
        "key_fingerprint": ident.key_fingerprint,
        "login": dict(ctx.extras.get("login", {})),
        "session": ident.session_id,
        "client": ident.client,
        "permissions": dict(ctx.policy.describe()),
    }


def _listed(value: Any) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_listed(v)}" for k, v in value.items()) or "-"
    return str(value)


def render(me: dict[str, Any], inv: Invocation) -> str:
    login = me["login"]
    how = login.get("method", "publickey")
    if login.get("ca_fingerprint"):
        how += f" signed by CA {login['ca_fingerprint']}"
    if login.get("force_command"):
        how += f", forced command: {login['force_command']}"
    pairs = [
        ("user", me["user"]),
        ("roles", _listed(me["roles"])),
        ("key", me["key_fingerprint"]),
        ("login", how),
        ("session", f"{me['session']} from {me['client']}"),
    ]
    pairs += [(k, _listed(v)) for k, v in me["permissions"].items() if k not in ("user", "roles")]
    return key_values(pairs)


COMMAND = Command(
    name="whoami",
    summary="your user, roles, key fingerprint and what you may run where",
    shows=(
        "The user the gateway identified from your key or certificate, your roles, the key's SHA256 "
        "fingerprint, how you logged in, and your effective permissions (commands and node patterns)."
    ),
    when="When a command is denied and you want to know why, or to check which key an agent offered.",
    cost="None: nothing is sent to any node.",
    run=run,
    render=render,
    to_json=lambda me, inv: me,
    remote=False,
    examples=("whoami", "whoami --json"),
)
