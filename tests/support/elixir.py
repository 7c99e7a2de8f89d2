"""An Elixir target node for tests: Debian's ``elixir`` with a GenServer registered as ``MyApp.Worker``.

The node runs ``tests/elixir/my_app.exs`` under ``elixir --sname NAME
--cookie COOKIE``. Like :class:`~tests.support.erlang.ErlangNode` it has a
random name and cookie, and its stdin/stdout carry a REPL (Elixir code this
time), the tests' independent view of the node.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.support.erlang import ErlangError, random_cookie, random_name, short_host

SCRIPT = Path(__file__).resolve().parent.parent / "elixir" / "my_app.exs"


def elixir() -> str | None:
    return shutil.which("elixir")


class ElixirNode:
    """An Elixir node for one test. Always :meth:`stop` it (the fixture does)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.alive = random_name("bgex")
        self.name = f"{self.alive}@{short_host()}"
        self.cookie = random_cookie()
        self.proc: subprocess.Popen[str] | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ElixirNode {self.name}>"

    def start(self, timeout: float = 60.0) -> ElixirNode:
        exe = elixir()
        if exe is None:
            raise ErlangError("elixir is not installed: run scripts/setup.sh")
        args = [exe, "--sname", self.alive, "--cookie", self.cookie, str(SCRIPT)]
        env = {**os.environ, "HOME": str(self.workdir)}
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=self.workdir,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise ErlangError(f"{self} exited during start: {''.join(lines)}")
            lines.append(line)
            if line.startswith("READY "):
                return self
        raise ErlangError(f"{self} did not start within {timeout}s: {''.join(lines)}")

    def eval(self, code: str, timeout: float = 30.0) -> str:
        """Evaluate one line of Elixir on the node; return ``inspect`` of the value."""
        if self.proc is None or self.proc.poll() is not None:
            raise ErlangError(f"{self} is not running")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            rid = str(next(self._ids))
            self.proc.stdin.write(f"{rid}\t{' '.join(code.strip().splitlines())}\n")
            self.proc.stdin.flush()
            timer = threading.Timer(timeout, self.kill)
            timer.start()
            try:
                while True:
                    line = self.proc.stdout.readline()
                    if not line:
                        raise ErlangError(f"{self} exited while evaluating {code!r}")
                    parts = line.rstrip("\n").split("\t", 2)
                    if len(parts) == 3 and parts[0] == rid:
                        break
            finally:
                timer.cancel()
        if parts[1] != "ok":
            raise ErlangError(f"{code!r} failed on {self}: {parts[2]}")
        return parts[2]

    def kill(self) -> None:
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
