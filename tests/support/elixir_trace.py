"""An Elixir node for the trace tests: Debian's Elixir on OTP 25, with a compiled test module.

:func:`elixir_ebin` finds Elixir's own ``ebin`` from the ``elixir`` script;
:func:`compile_elixir` compiles a test-only ``.ex`` file with ``elixirc``
(cached by modification time). The node itself is an ordinary
:class:`~tests.support.erlang.ErlangNode` with both directories on its code
path, so the fixture REPL stays the tests' independent view of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from tests.support.erlang import ERLANG_SRC

BUILD = ERLANG_SRC / "ebin_elixir"
_lock = threading.Lock()


def elixir_ebin() -> Path | None:
    """Elixir's standard library ``ebin``, or ``None`` when Elixir is not installed."""
    script = shutil.which("elixir")
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
