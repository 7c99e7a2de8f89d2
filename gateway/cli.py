"""The ``beamgate`` command line (SPEC "Command line").

Each sub-command is a small function that loads what it needs and calls into
the layer that does the work; nothing here decides policy or speaks a
protocol. Exit status: 0 success, 1 failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import loop as event_loop
from .config import Config, ConfigError, load_config

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[Handler, Callable[[argparse.ArgumentParser], None], str]] = {}


def subcommand(
    name: str, help_text: str
) -> Callable[[Callable[[argparse.ArgumentParser], None]], Callable[[Handler], Handler]]:
    """Register ``beamgate NAME``: ``@subcommand(...)(add_arguments)(handler)``."""

    def with_args(add_arguments: Callable[[argparse.ArgumentParser], None]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            _COMMANDS[name] = (handler, add_arguments, help_text)
            return handler

        return register

    return with_args


def _load(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        raise SystemExit(1) from None


# -- check-config ---------------------------------------------------------------------


def _check_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="the TOML config file")


@subcommand("check-config", "validate a config file; print each problem with its key path")(_check_config_args)
def cmd_check_config(args: argparse.Namespace) -> int:
    """Errors (``error: ...``, exit 1) block serving the file; warnings (``warning: ...``) never do."""
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}")
        print(f"{len(exc.issues)} problem(s) in {args.file}", file=sys.stderr)
        return 1
    errors, warnings = _policy_issues(config)
    for line in errors:
        print(f"error: {line}")
    for line in warnings:
        print(f"warning: {line}")
    if errors:
        print(f"{len(errors)} problem(s) in {args.file}", file=sys.stderr)
        return 1
    nodes = sum(len(c.nodes) for c in config.clusters.values())
    counts = f"{len(config.clusters)} cluster(s), {nodes} node(s), {len(config.users)} user(s)"
    print(f"ok: {counts}, {len(config.roles)} role(s)" + (f"; {len(warnings)} warning(s)" if warnings else ""))
    return 0


def _policy_issues(config: Config) -> tuple[list[str], list[str]]:
    """Checks owned by the policy layer (roles against the command registry): errors, then warnings."""
    from policies import config_warnings, validate_config

    return [str(i) for i in validate_config(config)], [str(i) for i in config_warnings(config)]


# -- ping -------------------------------------------------------------------------------


def _ping_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="the TOML config file")
    p.add_argument("nodes", nargs="*", metavar="NODE", help="nodes to check (default: every configured node)")


@subcommand("ping", "check distribution connectivity to each node; exit 0 only if all are ok")(_ping_args)
def cmd_ping(args: argparse.Namespace) -> int:
    from .cluster import Clusters, PingResult, ping

    config = _load(args.config)
    try:
        clusters = Clusters.from_config(config)
    except Exception as exc:  # cookie unreadable, TLS files bad: one clear line
        print(f"error: {exc}", file=sys.stderr)
        return 1

    async def run() -> list[PingResult]:
        try:
            return await ping(clusters, list(args.nodes))
        finally:
            clusters.close()

    results = event_loop.run(run())
    for result in results:
        print(result.line())
    return 0 if all(r.ok for r in results) else 1


# -- entry point ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    _import_subcommands()
    parser = argparse.ArgumentParser(
        prog="beamgate",
        description="SSH bastion for safe diagnosis of live Erlang and Elixir clusters.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    names = sorted(_COMMANDS, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER))
    for name in names:
        _handler, add_arguments, help_text = _COMMANDS[name]
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
    return parser


def _import_subcommands() -> None:
    """The sub-commands defined next to the layer they drive register themselves on import."""
    from . import audit_cli, demo, recording_cli, server_cli  # noqa: F401


#: The order ``beamgate --help`` lists sub-commands in (SPEC's order).
_ORDER = ("serve", "demo", "check-config", "ping", "verify", "replay", "recording-key", "audit")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = _COMMANDS[args.command][0]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
