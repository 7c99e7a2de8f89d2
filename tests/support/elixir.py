"""Elixir for tests: Debian's ``elixir`` (OTP 25), two ways.

* :class:`ElixirNode`: a real Elixir VM (``elixir --sname NAME --cookie
  COOKIE tests/elixir/my_app.exs``) running a GenServer registered as
  ``MyApp.Worker``. Like :class:`~tests.support.erlang.ErlangNode` it has a
  random name and cookie, and its stdin/stdout carry a REPL (Elixir code
  this time), the tests' independent view of the node.
* :func:`elixir_ebin` and :func:`compile_elixir`: Elixir's own ``ebin`` and
  a compiled test-only ``.ex`` file, to put on an ordinary
  :class:`~tests.support.erlang.ErlangNode`'s code path (the trace tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from tests.support.erlang import ERLANG_SRC, ErlangError, ReplProcess, random_cookie, random_name, short_host

SCRIPT = Path(__file__).resolve().parent.parent / "elixir" / "my_app.exs"
BUILD = ERLANG_SRC / "ebin_elixir"
_lock = threading.Lock()


def elixir() -> str | None:
    return shutil.which("elixir")


def elixir_ebin() -> Path | None:
    """Elixir's standard library ``ebin``, or ``None`` when Elixir is not installed."""
    script = elixir()
    if script is None:
        return None
    ebin = Path(os.path.realpath(script)).parent.parent / "lib" / "elixir" / "ebin"
    return ebin if (ebin / "Elixir.Kernel.beam").exists() else None


def compile_elixir(source: Path, outdir: Path = BUILD) -> Path:
    """Compile ``source`` into ``outdir`` (once per change) and return ``outdir``."""
    with _lock:
        outdir.mkdir(parents=True, exist_ok=True)
        stamp = outdir / (source.stem + ".stamp")
        if not stamp.exists() or stamp.stat().st_mtime < source.stat().st_mtime:
            subprocess.run(["elixirc", "--ignore-module-conflict", "-o", str(outdir), str(source)], check=True)
            stamp.touch()
    return outdir


class ElixirNode(ReplProcess):
    """An Elixir node for one test. Always :meth:`stop` it (the fixture does)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir
        self.alive = random_name("bgex")
        self.name = f"{self.alive}@{short_host()}"
        self.cookie = random_cookie()

    def __repr__(self) -> str:
        return f"<ElixirNode {self.name}>"

    def start(self, timeout: float = 60.0) -> ElixirNode:
        exe = elixir()
        if exe is None:
            raise ErlangError("elixir is not installed: run scripts/setup.sh")
        args = [exe, "--sname", self.alive, "--cookie", self.cookie, str(SCRIPT)]
        self._spawn(args, {**os.environ, "HOME": str(self.workdir)}, self.workdir, timeout)
        return self

    def eval(self, code: str, timeout: float = 30.0) -> str:
        """Evaluate one line of Elixir on the node; return ``inspect`` of the value."""
        return self._request(" ".join(code.strip().splitlines()), code, timeout)
