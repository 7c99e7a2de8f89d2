"""Pytest fixtures for the command tests, loaded with ``pytest_plugins = ("tests.support.fixtures",)``.

* ``beams``: where the tests' Erlang helpers are compiled, once per module;
* ``h``: a :class:`~tests.support.harness.Harness` on the ``target`` node
  (OTP 25, then OTP 28) with ``bg_plant`` (the problem planter) loaded there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.erlang import ErlangNode
from tests.support.harness import Harness, harness_for, plant


@pytest.fixture(scope="module")
def beams(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests' Erlang helpers are compiled (once per test module)."""
    return tmp_path_factory.mktemp("beams")


@pytest.fixture
def h(target: ErlangNode, beams: Path) -> Iterator[Harness]:
    """A harness on the ``target`` node (OTP 25, then 28), with ``bg_plant`` loaded there."""
    plant(target, beams)
    harness = harness_for(target)
    yield harness
    harness.close()
