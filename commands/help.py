"""``help [CMD]``: the command list, or one command's usage and recon-style notes.

Reads the same registry as the parser and the policy engine, and lists only
what the user may run.
"""

from __future__ import annotations

import textwrap
from typing import Any

from .context import Context
from .errors import CommandError
from .spec import Command, Invocation, Param

WIDTH = 78


async def run(ctx: Context, inv: Invocation) -> dict[str, Any]:
    name = inv.args.get("cmd")
    allowed = [c for c in ctx.registry.values() if ctx.policy.may_run(c.name)]
    if name is None:
        return {"commands": [{"name": c.name, "summary": c.summary, "usage": c.usage()} for c in allowed]}
    command = ctx.registry.get(name)
    if command is None or not ctx.policy.may_run(name):
        raise CommandError(f"no command {name!r} (or you may not run it); type help for the list")
    return {"command": describe(command)}


def describe(command: Command) -> dict[str, Any]:
    return {
        "name": command.name,
        "usage": command.usage(),
        "summary": command.summary,
        "shows": command.shows,
        "when": command.when,
        "cost": command.cost,
        "arguments": [{"name": p.name, "help": p.help, "choices": list(p.choices)} for p in command.params],
        "options": [{"name": f.shown, "help": f.help} for f in command.all_flags()],
        "examples": list(command.examples),
        "notes": command.notes,
        "privileged": command.privileged,
    }


def render(result: dict[str, Any], inv: Invocation) -> str:
    if "commands" in result:
        rows = result["commands"]
        width = max((len(r["name"]) for r in rows), default=0)
        lines = [f"  {r['name']:<{width}}  {r['summary']}" for r in rows]
        return "\n".join(["Commands (help CMD for details):", *lines])
    c = result["command"]
    out = [f"usage: {c['usage']}", "", c["summary"]]
    for title, key in (("Shows", "shows"), ("When to use it", "when"), ("Cost on the node", "cost")):
        if c[key]:
            out += ["", f"{title}:", textwrap.indent(textwrap.fill(c[key], WIDTH - 2), "  ")]
    if c["arguments"]:
        out += ["", "Arguments:"]
        for a in c["arguments"]:
            choices = f" ({', '.join(a['choices'])})" if a["choices"] else ""
            out.append(f"  {a['name']:<14} {a['help']}{choices}")
    out += ["", "Options:"] + [f"  {o['name']:<22} {o['help']}" for o in c["options"]]
    if c["notes"]:
        out += ["", textwrap.indent(c["notes"].strip(), "  ")]
    if c["examples"]:
        out += ["", "Examples:"] + [f"  {e}" for e in c["examples"]]
    if c["privileged"]:
        out += ["", 'Privileged: granted only by naming it in a role, never by "*".']
    return "\n".join(out)


COMMAND = Command(
    name="help",
    summary="list commands, or explain one",
    shows="The commands you may run, or one command's usage, what it shows, when to use it and its cost.",
    when="Any time. help CMD before running something unfamiliar on a sick node.",
    cost="None: nothing is sent to any node.",
    params=(Param("CMD", "command", "the command to explain", required=False),),
    remote=False,
    run=run,
    render=render,
    examples=("help", "help proc_count"),
)
