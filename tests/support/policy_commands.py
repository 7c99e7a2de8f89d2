"""SPEC's command list as small Command declarations, for the policy tests.

The real diagnostics are written concurrently; the policy engine only reads
a command's grammar and traits (params, flags, kinds, choices, ``remote``,
``fanout``, ``privileged``), so these declarations follow SPEC's grammar and
the issues' flag names. Their ``run`` sends the invocation's values to the
node as bindings of one fixed snippet that returns them (``ECHO``): what
reaches a node is exactly what the test then inspects. ``info`` without a
process runs the real node overview (:mod:`commands.info`); ``help`` and
``policy`` are the real commands.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from commands import help as help_command
from commands import info as info_command
from commands import policy as policy_command
from commands.context import Context
from commands.refs import FunSpec, GlobalRef, NameRef, PidRef
from commands.spec import Command, Flag, Invocation, Param
from gateway.dist.rpc import Snippet

ROLES_DIR = Path(__file__).resolve().parents[2] / "policies" / "roles"
ECHO = Snippet("policy_test_echo", "Args.", ("Args",))

PROC_ATTRS = ("memory", "reductions", "message_queue_len", "total_heap_size", "heap_size", "binary_memory")
INET_ATTRS = ("recv_cnt", "recv_oct", "send_cnt", "send_oct", "cnt", "oct")
ALLOC_WHAT = ("memory", "fragmentation", "cache_hit_rates", "average_block_sizes", "sbcs_to_mbcs")
INFO_KEYS = (
    "meta", "signals", "location", "memory_used", "work", "registered_name", "dictionary", "group_leader",
    "status", "links", "monitors", "monitored_by", "trap_exit", "initial_call", "current_stacktrace", "memory",
    "message_queue_len", "heap_size", "total_heap_size", "garbage_collection", "reductions", "binary", "messages",
)  # fmt: skip


def plain(value: Any) -> Any:
    """A parsed value as plain data for the wire: names as atom text, specs as [module, function, arity]."""
    if isinstance(value, NameRef):
        return value.name
    if isinstance(value, (PidRef, GlobalRef)):
        return str(value)
    if isinstance(value, FunSpec):
        return [value.module, value.function or "_", -1 if value.arity is None else value.arity]
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None:
        return "none"
    return value


def wire_args(inv: Invocation) -> list[Any]:
    values = {**inv.args, **inv.flags}
    return [inv.name, [(k, plain(values[k])) for k in sorted(values)]]


async def echo(ctx: Context, inv: Invocation) -> Any:
    return await ctx.need_target().run(ECHO, {"Args": wire_args(inv)})


async def local(ctx: Context, inv: Invocation) -> Any:
    return {"command": inv.name}


async def info_run(ctx: Context, inv: Invocation) -> Any:
    if inv.args.get("proc") is None:
        return await info_command.run(ctx, inv)
    return await echo(ctx, inv)


def _render(result: Any, inv: Invocation) -> str:
    return repr(result)


def cmd(name: str, *params: Param, flags: tuple[Flag, ...] = (), **traits: Any) -> Command:
    run = traits.pop("run", echo if traits.get("remote", True) else local)
    return Command(
        name=name, summary=f"{name} (test declaration)", shows="-", when="-", cost=traits.pop("cost", "-"),
        run=run, render=_render, params=params, flags=flags, **traits,
    )  # fmt: skip


def n_param(default: int = 10) -> Param:
    return Param("N", "int", "rows", required=False, default=default, min=1, max=1000)


def ms_param(default: int = 1000) -> Param:
    return Param("MS", "int", "window in ms", required=False, default=default, min=1, max=60_000)


def proc_param(required: bool = True) -> Param:
    return Param("PROC", "proc", "a process", required=required)


def spec_registry() -> dict[str, Command]:
    """SPEC's commands: the real help and policy, the others declared here."""
    commands = [
        help_command.COMMAND,
        cmd("whoami", remote=False),
        policy_command.COMMAND,
        cmd("nodes", remote=False),
        cmd("use", Param("NODE", "node", "the node"), remote=False),
        cmd(
            "info",
            proc_param(required=False),
            Param("KEY", "word", "keys", required=False, many=True, choices=INFO_KEYS),
            run=info_run,
            fanout=True,
        ),
        cmd("proc_count", Param("ATTR", "choice", "attribute", choices=PROC_ATTRS), n_param(), fanout=True),
        cmd(
            "proc_window",
            Param("ATTR", "choice", "attribute", choices=PROC_ATTRS),
            n_param(),
            ms_param(),
            fanout=True,
        ),
        cmd("bin_leak", n_param(), fanout=True, cost="Heavy: garbage-collects every process."),
        cmd(
            "alloc",
            Param("WHAT", "choice", "what", choices=ALLOC_WHAT),
            Param("MODE", "choice", "current or max", required=False, default="current", choices=("current", "max")),
            fanout=True,
        ),
        cmd("scheduler_usage", ms_param(), fanout=True),
        cmd("ports", fanout=True),
        cmd("inet_count", Param("ATTR", "choice", "attribute", choices=INET_ATTRS), n_param(), fanout=True),
        cmd(
            "inet_window",
            Param("ATTR", "choice", "attribute", choices=INET_ATTRS),
            n_param(),
            ms_param(),
            fanout=True,
        ),
        cmd("ets", n_param(), fanout=True),
        cmd("stack", proc_param()),
        cmd(
            "state",
            proc_param(),
            flags=(Flag("timeout", "int", "call timeout in ms", metavar="MS", default=1000, min=1, max=60_000),),
        ),
        cmd("messages", proc_param(), Param("N", "int", "messages", required=False, default=10, min=1, max=10_000)),
        cmd("apps", fanout=True),
        cmd(
            "trace",
            Param("SPEC", "funspec", "what to trace", many=True),
            flags=(
                Flag("limit", "int", "messages in total", metavar="N", min=1, max=1_000_000),
                Flag("rate", "rate", "messages per period", metavar="N/SECONDS"),
                Flag("for", "int", "seconds", metavar="SECONDS", min=1, max=86_400),
                Flag("pid", "proc", "which processes", metavar="PROC|new|existing|all"),
                Flag("return", "bool", "show return values"),
                Flag("match", "text", "argument pattern", metavar="ARGPATTERN"),
                Flag("local", "bool", "local calls too"),
            ),
            streaming=True,
        ),
        cmd("exit", remote=False),
        cmd("kill", proc_param(), privileged=True, cost="Ends the process: its supervisor decides what happens."),
    ]
    return {c.name: c for c in commands}


def role_file(name: str) -> str:
    return (ROLES_DIR / f"{name}.toml").read_text()


def config_text(
    cookie_file: Path,
    users: Mapping[str, list[str]],
    roles: str,
    *,
    nodes: tuple[str, ...] = ("app@h1", "app@h2", "db@h1"),
    extra: str = "",
) -> str:
    """A whole config: one cluster ``prod`` with ``nodes``, the ``users`` (name -> roles), ``roles`` TOML."""
    user_tables = "".join(f"\n[users.{u}]\nkeys = []\nroles = {json.dumps(list(r))}\n" for u, r in users.items())
    cluster = f'[clusters.prod]\ncookie_file = "{cookie_file}"\nnodes = {json.dumps(list(nodes))}\n'
    return f"{cluster}{extra}\n{user_tables}\n{roles}\n"


def write_policy_config(tmp_path: Path, users: Mapping[str, list[str]], roles: str, **kwargs: Any) -> Path:
    """Write a config (and a cookie file for it) under ``tmp_path``; return its path."""
    cookie = tmp_path / "prod.cookie"
    if not cookie.exists():
        cookie.write_text("policytestcookie\n")
        cookie.chmod(0o600)
    path = tmp_path / "beamgate.toml"
    path.write_text(config_text(cookie, users, roles, **kwargs))
    return path
