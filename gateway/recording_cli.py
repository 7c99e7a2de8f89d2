"""``beamgate verify``, ``beamgate replay`` and ``beamgate recording-key``.

``verify`` trusts the keys given with ``--key FILE`` (what a reviewer away
from the gateway uses: the public key exported by ``recording-key``) and,
with ``--config``, the gateway's own recording key; with ``--config`` it
also cross-checks unterminated recordings against the audit log, which
tells a crash (no ``session_end``) from a file cut short after the session
ended. Exit status: 0 all intact, 1 any tampered or unreadable file, 3 none
tampered but some unterminated (their signed prefix is intact), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .cli import _load, subcommand
from .config import Config
from .recording import SUFFIX
from .recording_chain import RecordingKeyError, export_public_key, fingerprint, load_public_keys, load_signing_key
from .recording_verify import INVALID, TAMPERED, UNTERMINATED, Problem, Verdict, verify_file
from .replay import ReplayError, frames, play

EXIT_UNTERMINATED = 3

# -- verify -------------------------------------------------------------------------------


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="recordings, or folders of recordings (*.cast)")
    p.add_argument(
        "--key", action="append", default=[], metavar="PUBFILE",
        help="trusted public key (from `beamgate recording-key`); repeat for rotated keys",
    )  # fmt: skip
    p.add_argument("--config", help="trust the gateway's own key, and cross-check with its audit log")
    p.add_argument("--json", action="store_true", help="one JSON object per recording")


@subcommand(
    "verify",
    "check recordings' signatures: OK, UNTERMINATED (crash; signed prefix intact), or the first bad line and why",
)(_verify_args)
def cmd_verify(args: argparse.Namespace) -> int:
    config = _load(args.config) if args.config else None
    try:
        keys = _trusted_keys(args.key, config)
    except RecordingKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not keys:
        print("error: no trusted key: pass --key PUBFILE (from `beamgate recording-key`) or --config", file=sys.stderr)
        return 2
    ended, failed = _audited_ends(config) if config else ({}, {})
    worst = 0
    for path in _recordings(args.files):
        verdict = verify_file(path, keys)
        if verdict.status == UNTERMINATED and path.name in failed:
            verdict = replace(verdict, why=failed[path.name])
        elif verdict.status == UNTERMINATED and path.name in ended:
            verdict = _cut_short(path, verdict, ended[path.name])
        print(json.dumps(verdict.to_json()) if args.json else verdict.text(), flush=True)
        if verdict.status in (TAMPERED, INVALID):
            worst = 1
        elif verdict.status == UNTERMINATED and worst == 0:
            worst = EXIT_UNTERMINATED
    return worst


def _trusted_keys(key_files: list[str], config: Config | None) -> list[Ed25519PublicKey]:
    keys: list[Ed25519PublicKey] = []
    for name in key_files:
        keys += load_public_keys(Path(name))
    if config is not None:
        keys.append(load_signing_key(Path(config.recording.signing_key)).public_key())
    return keys


def _recordings(names: list[str]) -> list[Path]:
    paths: list[Path] = []
    for name in names:
        p = Path(name)
        paths += sorted(p.glob(f"*{SUFFIX}")) if p.is_dir() else [p]
    return paths


def _audited_ends(config: Config) -> tuple[dict[str, str], dict[str, str]]:
    """From the audit log, by recording file name: when its session ended, and why it failed if it did.

    A recording the gateway could not write (``recording_failed``: disk full, folder removed) has no
    final checkpoint for a known reason; it is not cut short by someone.
    """
    from .audit_read import LogCheck, read_log, visible

    ended: dict[str, str] = {}
    failed: dict[str, str] = {}
    path = Path(config.audit.path)
    try:
        for _, record in read_log(path, LogCheck()):
            name = record.get("recording")
            if not isinstance(name, str):
                continue
            if record.get("event") == "session_end":
                ended[name] = visible(record.get("ts"))
            elif record.get("event") == "recording_failed" and record.get("stage") == "write":
                failed[name] = (
                    f"the gateway could not write it ({visible(record.get('error'))}), "
                    f"as its audit log records at {visible(record.get('ts'))}"
                )
    except FileNotFoundError:
        pass  # no audit log yet: nothing to cross-check
    except OSError as exc:
        print(f"warning: cannot read audit log {path} ({exc.strerror}): no cross-check", file=sys.stderr)
    return ended, failed


def _cut_short(path: Path, verdict: Verdict, ended_at: str) -> Verdict:
    detail = (
        f"the audit log records this session's end at {ended_at}, but the recording has no final "
        "checkpoint: it was cut short at a line boundary"
    )
    line = verdict.verified_lines + verdict.unsigned
    return replace(verdict, status=TAMPERED, problem=Problem("truncated", line, path.stat().st_size, detail))


# -- replay -------------------------------------------------------------------------------


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a recording (a bare file name is looked up with --config)")
    p.add_argument("--speed", type=float, default=1.0, help="playback speed factor (default 1)")
    p.add_argument(
        "--from-offset", type=int, default=0, metavar="K",
        help="start at the event at byte K (the `offset` of a command in `beamgate audit`)",
    )  # fmt: skip
    p.add_argument("--idle-limit", type=float, default=None, metavar="S", help="cap pauses at S seconds")
    p.add_argument("--config", help="the gateway config: find FILE in its recording folder, verify with its key")
    p.add_argument(
        "--key", action="append", default=[], metavar="PUBFILE",
        help="verify against this public key before playing (as `verify --key`)",
    )  # fmt: skip
    p.add_argument(
        "--unverified", action="store_true", help="play even a recording that fails verification (shown raw!)"
    )


@subcommand("replay", "play a recording in the terminal, exactly as the user saw it")(_replay_args)
def cmd_replay(args: argparse.Namespace) -> int:
    config = _load(args.config) if args.config else None
    path = Path(args.file)
    if config is not None and not path.exists() and path.name == args.file:
        path = Path(config.recording.dir) / args.file
    if args.speed <= 0:
        print("error: --speed must be greater than 0", file=sys.stderr)
        return 2
    refused = _check_before_replay(path, args.key, config, args.unverified)
    if refused is not None:
        return refused
    try:
        play(
            frames(path, args.from_offset),
            sys.stdout.buffer,
            speed=args.speed,
            idle_limit=args.idle_limit,
            clear=args.from_offset > 0,
        )
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return 0


def _check_before_replay(path: Path, key_files: list[str], config: Config | None, anyway: bool) -> int | None:
    """Verify ``path`` before its bytes reach the reviewer's terminal; an exit status if it must not play.

    Replay writes the recorded output raw (escape sequences included), so a
    changed file could drive the reviewer's terminal: with a key to trust,
    a tampered or foreign-signed recording is refused unless ``--unverified``.
    """
    try:
        keys = _trusted_keys(key_files, config)
    except RecordingKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not keys:
        print(f"warning: {path} not verified (give --key PUBFILE or --config FILE)", file=sys.stderr)
        return None
    if not path.is_file():
        return None  # replay says why it cannot read it
    verdict = verify_file(path, keys)
    if verdict.status in (TAMPERED, INVALID):
        if not anyway:
            print(f"error: {verdict.text()}; not played (--unverified plays it anyway)", file=sys.stderr)
            return 1
        print(f"warning: {verdict.text()}; playing it anyway", file=sys.stderr)
    elif verdict.status == UNTERMINATED:
        print(f"warning: {verdict.text()}", file=sys.stderr)
    return None


# -- recording-key ------------------------------------------------------------------------


def _key_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="the gateway config")
    p.add_argument("--out", metavar="PUBFILE", help="write the key there instead of stdout")


@subcommand("recording-key", "print the public key that signs recordings, for reviewers' `verify --key`")(_key_args)
def cmd_recording_key(args: argparse.Namespace) -> int:
    config = _load(args.config)
    try:
        public = load_signing_key(Path(config.recording.signing_key)).public_key()
    except RecordingKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    line = export_public_key(public)
    if args.out:
        Path(args.out).write_text(line)
        print(f"wrote {args.out}: {fingerprint(public)}", file=sys.stderr)
    else:
        sys.stdout.write(line)
    return 0
