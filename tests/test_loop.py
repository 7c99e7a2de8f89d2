"""The entry points' event loop: uvloop by default, asyncio's own on request."""

from __future__ import annotations

import asyncio

import pytest

from gateway import loop


async def loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loop.ENV, raising=False)
    assert loop.name() == "uvloop"
    assert loop.run(loop_module()).startswith("uvloop")


@pytest.mark.parametrize("value", ["asyncio", " AsyncIO "])
def test_the_environment_forces_asyncios_own_loop(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(loop.ENV, value)
    assert loop.name() == "asyncio"
    assert loop.run(loop_module()).startswith("asyncio")


def test_errors_come_through_either_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom() -> None:
        raise LookupError("nope")

    for value in ("", "asyncio"):
        monkeypatch.setenv(loop.ENV, value)
        with pytest.raises(LookupError, match="nope"):
            loop.run(boom())
