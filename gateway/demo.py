"""``beamgate demo``: a local target node and a gateway in front of it, with no config at all.

In a state directory (``./demo-state`` by default) the demo creates what an
operator would: a random cluster cookie (mode 0600, in the node's own
``HOME/.erlang.cookie``, so it never travels through an environment variable
or a command line), the gateway's host key, a key pair for the demo user,
a ``known_hosts`` line for the gateway and a config file. It then starts a
local Erlang node with something worth looking at (named processes, an ETS
table, a busy process, a growing mailbox, a large binary; OTP modules only,
through ``-eval``), serves on 127.0.0.1, and prints the exact ``ssh`` line to
type. Ctrl-C stops the gateway and the node. Keys and the host key are kept
between runs, so the printed line keeps working.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncssh

from . import loop as event_loop
from .cli import subcommand
from .config import load_config
from .logs import setup_logging
from .server import load_host_key
from .server_cli import StartError, run_gateway

NODE_ALIVE = "beamgate_demo"
USER = "demo"
READY = "BEAMGATE_DEMO_READY"

INSTALL_ERLANG = """error: Erlang/OTP is not installed (no `erl` on PATH); the demo needs it for its target node.
Install it, then run the demo again:
  Debian/Ubuntu:  sudo apt-get install erlang-base
  Fedora:         sudo dnf install erlang
  macOS:          brew install erlang
or run ./scripts/setup.sh, which installs everything beamgate needs."""

#: What the demo node runs at start: fixed code of our own (no user input), OTP modules only.
NODE_SETUP = """
Idle = fun Idle() -> receive _ -> Idle() end end,
[register(list_to_atom("demo_worker_" ++ integer_to_list(I)), spawn(Idle)) || I <- [1, 2, 3]],
register(demo_cache, spawn(fun() ->
    ets:new(demo_sessions, [named_table, public, set]),
    ets:insert(demo_sessions, [{I, <<"session-", (integer_to_binary(I))/binary>>, erlang:system_time()}
                               || I <- lists:seq(1, 5000)]),
    Idle()
end)),
register(demo_busy, spawn(fun Busy() ->
    _ = lists:sort([rand:uniform(1000000) || _ <- lists:seq(1, 20000)]),
    timer:sleep(50),
    Busy()
end)),
Slow = spawn(fun Slow() -> receive _ -> timer:sleep(100), Slow() end end),
register(demo_mailbox, Slow),
register(demo_feeder, spawn(fun Feed() ->
    case erlang:process_info(Slow, message_queue_len) of
        {message_queue_len, N} when N < 500 -> [Slow ! {job, J} || J <- lists:seq(1, 20)];
        _ -> ok
    end,
    timer:sleep(1000),
    Feed()
end)),
register(demo_binholder, spawn(fun() ->
    Blob = binary:copy(<<"beamgate">>, 1024 * 1024),
    receive stop -> byte_size(Blob) end
end)),
io:format("~s~n", ["BEAMGATE_DEMO_READY"]).
"""


class DemoError(Exception):
    """The demo cannot start; the message says what to do."""


def _private_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    path.chmod(0o600)


def _user_key(state: Path) -> Path:
    path = state / "demo_ed25519"
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="beamgate-demo")
        _private_file(path, key.export_private_key("openssh"))
        path.with_name(path.name + ".pub").write_bytes(key.export_public_key("openssh"))
    return path


def _write_config(state: Path, port: int, node: str, user_key: Path) -> Path:
    public = user_key.with_name(user_key.name + ".pub").read_text().strip()
    path = state / "beamgate.toml"
    path.write_text(
        f"""# Written by `beamgate demo`; rewritten on every run.
[server]
listen = "127.0.0.1:{port}"
host_key = "ssh_host_ed25519_key"
idle_timeout = "30m"

[clusters.demo]
cookie_file = "node/.erlang.cookie"
nodes = ["{node}"]

[recording]
dir = "recordings"
signing_key = "recording_ed25519_key"

[audit]
path = "audit.jsonl"

[users.{USER}]
keys = ["{public}"]
roles = ["sre"]

[roles.sre]
commands = ["*"]
nodes = ["*"]
"""
    )
    return path


def start_node(erl: str, state: Path, timeout: float = 30.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start the demo target node; returns the process and the node's name."""
    home = state / "node"
    home.mkdir(mode=0o700, exist_ok=True)
    _private_file(home / ".erlang.cookie", secrets.token_hex(20).encode())
    log_path = state / "node.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERL_")}
    env["HOME"] = str(home)  # erl reads HOME/.erlang.cookie: the cookie is in no argument or variable
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [erl, "-sname", NODE_ALIVE, "-noshell", "-noinput", "-eval", NODE_SETUP],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while READY not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_node(proc)
            tail = log_path.read_text(errors="replace").strip()[-800:]
            raise DemoError(f"the demo node did not start (see {log_path}):\n{tail}")
        time.sleep(0.1)
    return proc, f"{NODE_ALIVE}@{socket.gethostname().split('.', 1)[0]}"


def stop_node(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _shown(path: Path) -> str:
    try:
        text = str(path.relative_to(Path.cwd()))
    except ValueError:
        text = str(path)
    return shlex.quote(text)


def ssh_line(state: Path, key: Path, port: int) -> str:
    return (
        f"ssh -i {_shown(key)} -p {port} -o IdentitiesOnly=yes "
        f"-o UserKnownHostsFile={_shown(state / 'known_hosts')} diag@127.0.0.1"
    )


def run_demo(port: int, state: Path) -> int:
    erl = shutil.which("erl")
    if erl is None:
        print(INSTALL_ERLANG, file=sys.stderr)
        return 1
    state = state.resolve()
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    host_key = load_host_key(state / "ssh_host_ed25519_key")
    key = _user_key(state)
    host_line = host_key.export_public_key("openssh").decode().strip()
    (state / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_line}\n")
    try:
        node, node_name = start_node(erl, state)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        config = load_config(_write_config(state, port, node_name, key))
        setup_logging("WARNING", [c.load_cookie() for c in config.clusters.values()])

        def ready(host: str, bound: int, fingerprint: str) -> None:
            print(
                f"beamgate demo\n"
                f"  target node  {node_name} (log: {_shown(state / 'node.log')})\n"
                f"  gateway      {host}:{bound}, host key {fingerprint}\n"
                f"  state        {_shown(state)} (config, keys, recordings, audit log)\n\n"
                f"Connect with:\n\n  {ssh_line(state, key, bound)}\n\n"
                "Then try: nodes, info, whoami, help. Ctrl-C here stops the gateway and the node.",
                flush=True,
            )

        try:
            event_loop.run(run_gateway(config, ready))
        except StartError as exc:
            print(
                f"error: {exc}" + (" (pass --port N to use another port)" if "listen" in str(exc) else ""),
                file=sys.stderr,
            )
            return 1
        print("demo stopped", flush=True)
        return 0
    finally:
        stop_node(node)


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=2222, help="port on 127.0.0.1 to serve on (default 2222)")
    p.add_argument("--dir", type=Path, default=Path("demo-state"), help="state directory (default ./demo-state)")


@subcommand("demo", "self-contained demo: a local target node and the gateway, no config needed")(_demo_args)
def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(args.port, args.dir)
