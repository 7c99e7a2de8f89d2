"""The user-facing docs name what the product really has (no drift from the registry or the CLI)."""

from __future__ import annotations

import re
from pathlib import Path

from commands import REGISTRY
from gateway.cli import _COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
POLICIES = (ROOT / "docs" / "policies.md").read_text()


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start : end if end != -1 else None]


def test_readme_lists_every_command() -> None:
    table = _section(README, "## Diagnostics")
    shown = set(re.findall(r"`([a-z_]+)[ `]", table))
    assert set(REGISTRY) - shown == set(), "README's Diagnostics table misses commands"


def test_policies_doc_covers_every_command() -> None:
    missing = [name for name in REGISTRY if f"`{name}`" not in POLICIES]
    assert missing == []


def test_readme_lists_every_subcommand() -> None:
    build_parser()
    block = _section(README, "## Command line")
    assert {name for name in _COMMANDS if f"beamgate {name}" not in block} == set()


def test_readme_keeps_the_two_fresh_machine_commands() -> None:
    assert "./scripts/demo.sh" in README and "./scripts/test.sh" in README
    assert "./scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
