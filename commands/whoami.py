"""``whoami``: who the gateway thinks you are, how you logged in, and what you may do."""

from __future__ import annotations

from typing import Any

from .context import Context
from .format import key_values
from .policy import render_permissions
from .spec import Command, Invocation


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    ident = ctx.identity
    permissions = dict(ctx.policy.describe())
    return {
        "user": ident.user,
        # the roles in force now (a config reload may have changed them since login)
        "roles": list(permissions.get("roles", ident.roles)),
        "key_fingerprint": ident.key_fingerprint,
        "login": dict(ctx.extras.get("login", {})),
        "session": ident.session_id,
        "client": ident.client,
        "permissions": permissions,
    }


def render(me: dict[str, Any], inv: Invocation) -> str:
    login = me["login"]
    how = login.get("method", "publickey")
    if login.get("ca_fingerprint"):
        how += f" signed by CA {login['ca_fingerprint']}"
    if login.get("force_command"):
        how += f", forced command: {login['force_command']}"
    pairs = [
        ("user", me["user"]),
        ("roles", ", ".join(me["roles"]) or "none"),
        ("key", me["key_fingerprint"]),
        ("login", f"{how} (as {login['as']})" if login.get("as") else how),
        ("session", f"{me['session']} from {me['client']}"),
    ]
    return key_values(pairs) + "\n\n" + render_permissions(me["permissions"])


COMMAND = Command(
    name="whoami",
    summary="your user, roles, key fingerprint and what you may run where",
    shows=(
        "The user the gateway identified from your key or certificate, your roles, the key's SHA256 "
        "fingerprint, how you logged in, and your effective permissions: each command you may run with "
        "its nodes and caps, then what is refused and why (the same text as policy)."
    ),
    when="When a command is denied and you want to know why, or to check which key an agent offered.",
    cost="None: nothing is sent to any node.",
    run=run,
    render=render,
    to_json=lambda me, inv: me,
    remote=False,
    examples=("whoami", "whoami --json"),
)
