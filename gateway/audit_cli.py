"""``beamgate audit``: search the audit log, and check its hash chain.

Every search also checks the chain of the whole log as it reads; a break is
reported on stderr and makes the exit status 1 (the results are still
printed: a reviewer needs them most then). ``--verify`` only checks.
Exit status: 0 intact (whether or not anything matched), 1 chain broken or
log unreadable, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .audit import EVENTS
from .audit_read import LogCheck, Query, check_log, describe, parse_time, read_log
from .cli import _load, subcommand


def _audit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="the gateway config (names the audit log)")
    p.add_argument("--user", help="events of this user (glob: 'ali*')")
    p.add_argument("--node", help="events on this node (glob: 'app@*')")
    # not dest="command": that holds the sub-command name
    p.add_argument(
        "--command",
        dest="command_name",
        metavar="C",
        help="command and denied events of this command (e.g. proc_count)",
    )
    p.add_argument("--session", help="events of this session id")
    p.add_argument("--event", choices=sorted(EVENTS), help="only this kind of event")
    p.add_argument("--since", metavar="T", help="from this time: ISO 8601 (UTC unless it says) or a duration ago (2h)")
    p.add_argument("--until", metavar="T", help="up to this time (same forms as --since)")
    p.add_argument("--json", action="store_true", help="print matching records as JSON lines, as stored")
    p.add_argument("--verify", action="store_true", help="only check the log's hash chain")


@subcommand("audit", "search the audit log by user, node, command and time; checks its hash chain")(_audit_args)
def cmd_audit(args: argparse.Namespace) -> int:
    config = _load(args.config)
    path = Path(config.audit.path)
    try:
        query = Query(
            user=args.user,
            node=args.node,
            command=args.command_name,
            session=args.session,
            event=args.event,
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.verify:
            check = check_log(path)
        else:
            check = LogCheck()
            matched = 0
            for _, record in read_log(path, check):
                if query.matches(record):
                    matched += 1
                    print(json.dumps(record, separators=(",", ":")) if args.json else describe(record), flush=True)
            print(f"{matched} event(s)", file=sys.stderr)
    except OSError as exc:
        print(f"error: cannot read audit log {path}: {exc.strerror}", file=sys.stderr)
        return 1
    for issue in check.breaks:
        print(f"error: audit log {path}: {issue}", file=sys.stderr)
    if args.verify and check.intact:
        start = f"continues an earlier log (prev {check.continues[:16]}...)" if check.continues else "starts fresh"
        print(f"OK {path}: {check.lines} lines, hash chain intact, {start}")
    return 0 if check.intact else 1
