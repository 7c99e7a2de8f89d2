"""``apps``: running applications and their versions (``application:which_applications/1``)."""

from __future__ import annotations

from typing import Any

from gateway.dist.rpc import Snippet

from .context import Context
from .format import name_text, sanitize_bytes, table
from .remote import evaluate
from .spec import Command, Invocation

APPS = Snippet(
    "apps",
    """
    Text = fun(Chars) ->
        case unicode:characters_to_binary(Chars) of
            Bin when is_binary(Bin) -> Bin;
            _ -> <<"?">>
        end
    end,
    try application:which_applications(Timeout) of
        Apps -> [{App, Text(Vsn), Text(Desc)} || {App, Desc, Vsn} <- Apps]
    catch exit:{timeout, _} -> throw({beamgate, controller_timeout, Timeout})
    end.
    """,
    ("Timeout",),
)


async def run(ctx: Context, inv: Invocation) -> list[dict[str, Any]]:
    timeout_ms = max(int(ctx.safety.eval_timeout * 500), 100)
    explain = {
        "controller_timeout": lambda _d: (
            "the application controller did not answer (busy or blocked); "
            "the node is in trouble: try info and stack application_controller"
        )
    }
    apps = await evaluate(ctx, APPS, {"Timeout": timeout_ms}, explain=explain)
    rows = [
        {"name": name_text(app), "version": sanitize_bytes(vsn), "description": sanitize_bytes(desc)}
        for app, vsn, desc in apps
    ]
    return sorted(rows, key=lambda r: r["name"])


def render(result: list[dict[str, Any]], inv: Invocation) -> str:
    return table(
        ["APPLICATION", "VERSION", "DESCRIPTION"], [[r["name"], r["version"], r["description"]] for r in result]
    )


COMMAND = Command(
    name="apps",
    summary="running applications and their versions",
    shows="Every running application with its version and description (application:which_applications/1).",
    when=(
        "Which release is this node really running, is the application you expect started, did a hot "
        "upgrade take: compare versions across nodes with --nodes."
    ),
    cost="One call to the application controller (answered from its tables); bounded by half the time limit.",
    run=run,
    render=render,
    to_json=lambda result, inv: result,
    fanout=True,
    examples=("apps", "apps --nodes 'app@*' --json"),
)
