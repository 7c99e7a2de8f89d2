"""``beamgate serve --config FILE``: run the bastion until SIGINT or SIGTERM; SIGHUP reloads the policy."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable

from . import loop as event_loop
from .cli import subcommand
from .config import Config, ConfigError, load_config
from .logs import setup_logging


class StartError(Exception):
    """The gateway cannot start; the message says why."""


async def run_gateway(config: Config, on_ready: Callable[[str, int, str], None] | None = None) -> None:
    """Serve ``config`` until SIGINT/SIGTERM; ``on_ready(host, port, host_key_fingerprint)`` once listening."""
    from .audit import AuditError
    from .cluster import ClusterSetupError
    from .recording import RecordingError
    from .secret import CookieError
    from .server import Gateway, HostKeyError

    try:
        gateway = Gateway(config)
    except (CookieError, ClusterSetupError, HostKeyError, AuditError, RecordingError) as exc:
        raise StartError(str(exc)) from None
    try:
        host, port = await gateway.start()
    except OSError as exc:
        gateway.clusters.close()
        raise StartError(f"cannot listen on {config.server.listen_host}:{config.server.listen_port}: {exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    unwatch = gateway.policies.watch_sighup(loop, gateway.reloaded)  # users, roles, safety: no restart
    if on_ready is not None:
        on_ready(host, port, gateway.host_key_fingerprint)
    try:
        await stop.wait()
    finally:
        unwatch()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await gateway.stop()


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="the TOML config file")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


@subcommand("serve", "run the bastion (SSH server) until SIGINT or SIGTERM")(_serve_args)
def cmd_serve(args: argparse.Namespace) -> int:
    from policies import validate_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return 1
    problems = validate_config(config)
    for issue in problems:
        print(f"error: {issue}", file=sys.stderr)
    if problems:
        return 1
    setup_logging(args.log_level, [c.load_cookie() for c in config.clusters.values()])
    if args.log_level != "DEBUG":  # asyncssh logs every connection at INFO; the audit log has what matters
        logging.getLogger("asyncssh").setLevel(logging.WARNING)

    def ready(host: str, port: int, fingerprint: str) -> None:
        print(f"beamgate listening on {host}:{port}", flush=True)
        print(f"host key {fingerprint} ({config.server.host_key})", flush=True)
        logging.getLogger("beamgate").info("event loop: %s", event_loop.name())

    try:
        event_loop.run(run_gateway(config, ready))
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
