"""The real OpenSSH client against a real gateway, for end-to-end tests.

* :func:`keygen` and :func:`sign` make keys and user certificates with
  ``ssh-keygen`` (``-s`` signs with a CA, as an operator would);
* :func:`write_gateway_config` writes a complete config (server, one cluster
  of real target nodes, users, roles, recording, audit);
* :class:`GatewayThread` runs :class:`gateway.server.Gateway` on its own
  event loop in a background thread, listening on a free port;
* :class:`Served` runs ``beamgate serve --config F`` as a real child process
  instead (for tests that SIGKILL the gateway, or read its log);
* :class:`Client` runs ``ssh`` (and ``sftp``) against it with a pinned host
  key, no agent, no config file; :meth:`Client.shell` spawns an interactive
  session in a real pty (pexpect) rendered with pyte; :meth:`Client.start`
  runs one exec command in the background (:class:`Running`), for tests that
  act while it streams.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pexpect
import pyte

from gateway.config import Config, load_config
from gateway.server import Gateway
from tests.support.recordings import ROOT

T = TypeVar("T")


@dataclass(frozen=True)
class KeyPair:
    private: Path

    @property
    def public(self) -> Path:
        return self.private.with_name(self.private.name + ".pub")

    @property
    def line(self) -> str:
        return self.public.read_text().strip()

    @property
    def cert(self) -> Path:
        return self.private.with_name(self.private.name + "-cert.pub")

    def fingerprint(self, path: Path | None = None) -> str:
        out = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(path or self.public)], check=True, capture_output=True, text=True
        ).stdout
        return out.split()[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for programs that need one named)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(directory: Path, name: str) -> KeyPair:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
    return KeyPair(path)


def sign(
    ca: KeyPair,
    key: KeyPair,
    principals: Sequence[str],
    *,
    validity: str = "-5m:+1h",
    options: Sequence[str] = (),
    identity: str = "test-cert",
) -> Path:
    """``ssh-keygen -s CA -n PRINCIPALS -V VALIDITY -O OPTION... key.pub``: writes ``key-cert.pub``."""
    args = ["ssh-keygen", "-q", "-s", str(ca.private), "-I", identity, "-V", validity]
    if principals:
        args += ["-n", ",".join(principals)]
    for option in options:
        args += ["-O", option]
    subprocess.run([*args, str(key.public)], check=True, capture_output=True)
    return key.cert


def write_gateway_config(
    directory: Path,
    *,
    cookie_file: Path,
    nodes: Sequence[str],
    users: dict[str, tuple[Sequence[KeyPair], Sequence[str]]],
    roles: str = '[roles.sre]\ncommands = ["*"]\nnodes = ["*"]\n',
    server: str = "",
    ca_keys: Sequence[KeyPair] = (),
    throttle: tuple[int, str, str] = (1000, "1s", "1s"),
    recording: str = "",
    extra: str = "",
) -> Path:
    """A complete config; ``users`` maps a name to (keys, roles); ``server`` and ``recording`` add lines
    to ``[server]`` and ``[recording]``; ``extra`` is appended (e.g. ``[audit.syslog]``).

    ``throttle`` is (``auth_max_failures``, ``auth_failure_window``, ``auth_lockout``): by default
    loose enough that one test's refused logins do not slow down the next.
    """
    node_list = ", ".join(json.dumps(n) for n in nodes)
    cas = ", ".join(json.dumps(k.line) for k in ca_keys)
    user_tables = "".join(
        f"\n[users.{name}]\nkeys = [{', '.join(json.dumps(k.line) for k in keys)}]\nroles = {json.dumps(list(r))}\n"
        for name, (keys, r) in users.items()
    )
    path = directory / "beamgate.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:0"
host_key = "state/host_key"
trusted_user_ca_keys = [{cas}]
auth_max_failures = {throttle[0]}
auth_failure_window = "{throttle[1]}"
auth_lockout = "{throttle[2]}"
{server}

[clusters.test]
cookie_file = "{cookie_file}"
nodes = [{node_list}]
connect_timeout = "3s"
call_timeout = "5s"

[recording]
dir = "state/recordings"
signing_key = "state/recording_key"
{recording}

[audit]
path = "state/audit.jsonl"
{user_tables}
{roles}
{extra}
"""
    )
    return path


class AuditView:
    """Reading a running gateway's audit log (``audit_path``), waiting for events to be written."""

    audit_path: Path

    def audit(self, event: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """Audit events (of kind ``event``), from the ``since``-th record of the log on."""
        if not self.audit_path.exists():
            return []
        lines = self.audit_path.read_text().splitlines()[since:]
        records = [json.loads(line) for line in lines if line.strip()]
        return [r for r in records if event is None or r["event"] == event]

    def mark(self) -> int:
        """A position in the audit log, for :meth:`wait_audit` to look only at what follows."""
        return len(self.audit())

    def wait_audit(
        self,
        event: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda r: True,
        *,
        since: int = 0,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """The last ``event`` after ``since`` that matches ``predicate``, waiting for it to be written."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.audit(event, since) if predicate(r)]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event} audit event matched; last ones: {self.audit()[-5:]}")
            time.sleep(0.05)


class GatewayThread(AuditView):
    """A gateway serving ``config`` from a background thread, on a free port."""

    def __init__(self, config: Config | Path) -> None:
        self.config = config if isinstance(config, Config) else load_config(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway", daemon=True)
        self.gateway: Gateway | None = None
        self.host = "127.0.0.1"
        self.port = 0

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> GatewayThread:
        self.thread.start()

        async def start() -> tuple[str, int]:
            self.gateway = Gateway(self.config)
            return await self.gateway.start()

        self.host, self.port = self.call(start())
        return self

    def stop(self) -> None:
        if self.gateway is not None:
            self.call(self.gateway.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def host_key_line(self) -> str:
        assert self.gateway is not None
        return self.gateway.host_key.export_public_key("openssh").decode().strip()

    @property
    def audit_path(self) -> Path:
        return self.config.audit.path


def read_cast(path: Path) -> tuple[dict[str, Any], list[list[Any]]]:
    lines = path.read_text().splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:] if line.startswith("[")]


def cast_output(path: Path) -> str:
    """Everything the recording says the terminal received, concatenated."""
    return "".join(e[2] for e in read_cast(path)[1] if e[1] == "o")


class Endpoint(Protocol):
    """Where a gateway listens and the host key it must present."""

    host: str
    port: int

    @property
    def host_key_line(self) -> str: ...


@dataclass(frozen=True)
class Listening:
    """A gateway running elsewhere (a ``beamgate serve`` subprocess)."""

    host: str
    port: int
    host_key_line: str


_serve_logs = itertools.count(1)


class Served(AuditView):
    """``beamgate serve --config FILE`` as a real child process; its log (stderr) goes to :attr:`log_path`."""

    def __init__(self, config: Path, *, log_level: str = "INFO") -> None:
        self.config_path = config
        self.config = load_config(config)
        self.log_level = log_level
        self.log_path = config.parent / f"serve-{next(_serve_logs)}.log"
        self.proc: subprocess.Popen[str] | None = None
        self._endpoint: Listening | None = None

    @property
    def audit_path(self) -> Path:
        return self.config.audit.path

    @property
    def endpoint(self) -> Listening:
        assert self._endpoint is not None, "not started"
        return self._endpoint

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Served:
        argv = ["serve", "--config", str(self.config_path), "--log-level", self.log_level]
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", *argv],
                cwd=self.config_path.parent,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.proc.stdout is not None
        listening = self.proc.stdout.readline()
        m = re.fullmatch(r"beamgate listening on (\S+):(\d+)\n", listening)
        if m is None:
            self.proc.kill()
            self.proc.wait(30)
            raise AssertionError(f"beamgate serve did not start: {listening!r}\n{self.log()}")
        self.proc.stdout.readline()  # the host key's fingerprint
        public = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(self.config.server.host_key)], capture_output=True, text=True, check=True
        ).stdout.strip()
        self._endpoint = Listening(m[1], int(m[2]), public)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (a clean shutdown); returns the exit status."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL: nothing runs after it."""
        return self._end(signal.SIGKILL, 30.0)

    def _end(self, sig: int, timeout: float) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        status = self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return status

    def close(self) -> None:
        """Kill it if it still runs (for ``finally`` blocks)."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def serve(config: Path) -> tuple[subprocess.Popen[str], Listening]:
    """``beamgate serve`` for ``config`` (:class:`Served`), once it listens: its process and address.

    The caller owns the process (``kill`` it, or SIGTERM and ``communicate``).
    """
    served = Served(config).start()
    assert served.proc is not None
    return served.proc, served.endpoint


class Running:
    """One exec command running in the background: its stdout lines as they arrive."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout: float = 30.0) -> str:
        """The first stdout line matching the regular expression ``pattern`` (searched), waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines if re.search(pattern, line)]
            if found:
                return found[0]
            if time.monotonic() > deadline or (self.proc.poll() is not None and not self._reader.is_alive()):
                stderr = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
                raise AssertionError(f"no line matching {pattern!r}; stdout: {self.lines} stderr: {stderr!r}")
            time.sleep(0.02)

    def wait(self, timeout: float = 60.0) -> tuple[int, str, str]:
        """Wait for ssh to exit: (status, stdout, stderr)."""
        status = self.proc.wait(timeout)
        self._reader.join(10)
        assert self.proc.stderr is not None
        return status, "".join(line + "\n" for line in self.lines), self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


class Client:
    """The OpenSSH client, pinned to one gateway's host key, with one identity."""

    def __init__(self, gateway: Endpoint, key: KeyPair, directory: Path, *, cert: Path | None = None) -> None:
        self.gateway = gateway
        self.key = key
        self.cert = cert
        self.known_hosts = directory / f"known_hosts_{gateway.port}"
        self.known_hosts.write_text(f"[{gateway.host}]:{gateway.port} {gateway.host_key_line}\n")

    def options(self, *extra: str) -> list[str]:
        opts = [
            "-F", "/dev/null",
            "-i", str(self.key.private),
            "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=10",
        ]  # fmt: skip
        if self.cert is not None:
            opts += ["-o", f"CertificateFile={self.cert}"]
        return [*extra, *opts]  # ssh keeps the first value of an option: the caller's win

    def argv(self, *args: str, user: str = "diag", options: Sequence[str] = ()) -> list[str]:
        return ["ssh", *self.options(*options), "-p", str(self.gateway.port), f"{user}@{self.gateway.host}", *args]

    def run(
        self,
        *args: str,
        user: str = "diag",
        options: Sequence[str] = (),
        input: str | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """``ssh [options] user@gateway ARGS...``; stdin closed unless ``input`` is given."""
        return subprocess.run(
            self.argv(*args, user=user, options=options),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str, user: str = "diag", options: Sequence[str] = ()) -> Running:
        """``ssh [options] user@gateway ARGS...`` in the background; stdin closed."""
        return Running(self.argv(*args, user=user, options=options))

    def shell(
        self, *args: str, columns: int = 100, rows: int = 30, user: str = "diag", options: Sequence[str] = ()
    ) -> Screen:
        """An interactive session (``ssh -tt [options]``) in a real pty of ``columns`` x ``rows``."""
        argv = self.argv(*args, user=user, options=["-tt", *options])
        child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", dimensions=(rows, columns), timeout=30)
        return Screen(child, columns, rows)


class Screen:
    """An interactive ssh in a real pty, its output rendered by a VT100 emulator (pyte)."""

    def __init__(self, child: pexpect.spawn, columns: int, rows: int) -> None:  # type: ignore[type-arg]
        self.child = child
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.Stream(self.screen)
        #: Everything the terminal received, unrendered.
        self.raw = ""

    def pump(self, seconds: float = 0.2) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self._read(0.05):
                break

    def _read(self, timeout: float) -> bool:
        try:
            data = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return True
        except pexpect.EOF:
            return False
        self.raw += data
        self.stream.feed(data)
        return True

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, needle: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not on screen:\n{self.text()}")
            if not self._read(0.1) and needle not in self.text():
                raise AssertionError(f"session ended before {needle!r} appeared:\n{self.text()}")

    def wait_raw(self, needle: str, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until the terminal has received ``needle`` ``count`` times (scrolled off the screen or not)."""
        deadline = time.monotonic() + timeout
        while self.raw.count(needle) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not received {count} times:\n{self.text()}\n{self.raw[-3000:]!r}")
            self.pump(0.1)

    def wait_for_prompt(self, timeout: float = 20.0) -> None:
        """Wait until the cursor's line is a prompt (ends with ``> ``) with nothing typed."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.screen.display[self.screen.cursor.y][: self.screen.cursor.x]
            if line.endswith("> "):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"no prompt:\n{self.text()}")
            if not self._read(0.1):
                raise AssertionError(f"session ended:\n{self.text()}")

    def send(self, text: str) -> None:
        self.child.send(text)

    def resize(self, columns: int, rows: int) -> None:
        self.screen.resize(rows, columns)
        self.child.setwinsize(rows, columns)

    def wait_exit(self, timeout: float = 20.0) -> int | None:
        deadline = time.monotonic() + timeout
        while self.child.isalive():
            if time.monotonic() > deadline:
                raise AssertionError(f"ssh did not exit:\n{self.text()}")
            self._read(0.1)
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
