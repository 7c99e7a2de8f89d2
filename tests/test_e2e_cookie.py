"""The cookie canary, adversarially and end to end (SPEC safety rule 1, issue 7).

A target node holds its own cookie wherever diagnostics look: in a
gen_server's state (once nested so deep that the printer cuts it), as a
registered name, in queued messages, as an ETS table's name and in its rows,
in a process dictionary, and as the argument of a function being traced.
Over ssh, in exec mode and in a pty shell, the commands that show all of that
run against ``beamgate serve``; a user even types the cookie. The cookie
must then appear in no ssh output (``[REDACTED]`` shows where it was), no
recording, no audit line, no syslog message, no log line of the gateway,
and in no environment or command line of the gateway or of what it starts
(``beamgate demo`` starts a node). Every check also asserts the cookie *was*
there to hide (the redaction marker where the node holds it), so a test that
never exercised a path cannot pass.

Two cookies: a plain one, as Erlang generates them, and one with a double
quote, a backslash and an apostrophe, which every printer escapes (Erlang's
``~p``, JSON, the terminal sanitizer): an escaped cookie is still the cookie.
A printer that cuts a long string shows its first characters: eight of them
in a row count as a leak.

Also: error paths that format the connection config (a wrong cookie, TLS
files that cannot be loaded), ``repr`` of the objects that hold the cookie,
and the demo's generated config.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.secret import Cookie
from tests.support.erlang import ERLANG_SRC, ErlangNode, Runtime, compile_erlang, otp25
from tests.support.harness import plant
from tests.support.recordings import ROOT, beamgate
from tests.support.ssh import Client, GatewayThread, Served, free_port, keygen, write_gateway_config

#: A cut-off display showing this many characters of the cookie in a row is a leak.
WINDOW = 8


def random_text(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


COOKIES = {
    # What Erlang generates for ~/.erlang.cookie: 20 capital letters.
    "plain": lambda: random_text(20, string.ascii_uppercase),
    # Every printer escapes these three.
    "quoted": lambda: f"Q{random_text(5)}\"{random_text(5)}\\{random_text(5)}'{random_text(5)}",
}


def shown(text: str | bytes, cookie: str) -> list[str]:
    """The runs of ``WINDOW`` characters of ``cookie`` that ``text`` shows, however escaped or cut."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return sorted(_windows(cookie) & _windows(text))


def _windows(text: str) -> set[str]:
    plain = text.replace("\\", "")  # escaping (Erlang, JSON, the sanitizer) only ever adds backslashes
    return {plain[i : i + WINDOW] for i in range(len(plain) - WINDOW + 1)}


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (by parent pid), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def process_texts(pid: int) -> dict[str, bytes]:
    out = {}
    for what in ("environ", "cmdline"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # it ended meanwhile
            out[f"/proc/{pid}/{what}"] = Path(f"/proc/{pid}/{what}").read_bytes()
    return out


class UdpCollector:
    """A syslog receiver on a free UDP port: every datagram, as received."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(65536))
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


# -- the canary ------------------------------------------------------------------------------

#: Where the node keeps its cookie (``C``: the cookie as a string, ``CB``: as a binary).
PLANT = [
    "C = atom_to_list(erlang:get_cookie()), CB = list_to_binary(C), ok.",
    "Nest = fun(K, T) -> lists:foldl(fun(_, A) -> [A] end, T, lists:seq(1, K)) end, ok.",
    "Me = self(), Ready = fun() -> Me ! {ready, self()} end, ok.",  # a spawned process says it is set up
    # (a) a gen_server's state; 25 lists deep, ~tP at depth 30 shows only the binary's first characters
    "{ok, _} = gen_server:start({local, bg_canary_state}, bg_plant, "
    "#{cookie => C, bin => CB, name => list_to_atom(C), deep => Nest(25, CB)}, []), ok.",
    # (b) a registered name
    "Named = spawn(fun() -> receive stop -> ok end end), true = register(list_to_atom(C), Named), ok.",
    # (c) queued messages, one nested so deep that messages' depth 10 cuts it; and (e) the process dictionary
    "Box = spawn(fun() -> put(secret, C), Ready(), receive stop -> ok end end), "
    "receive {ready, Box} -> register(bg_canary_box, Box) end, ok.",
    "Box ! {cookie, C}, Box ! CB, Box ! list_to_atom(C), Box ! {deep, Nest(4, CB)}, ok.",
    # (d) an ETS table named after it, holding it
    "Owner = spawn(fun() -> T = ets:new(list_to_atom(C), [named_table, public]), ets:insert(T, {k, CB}), "
    "Ready(), receive stop -> ok end end), receive {ready, Owner} -> ok end, ok.",
    # a traced function called with it
    "bg_traced:start_echo(bg_canary_echo, CB), ok.",
]


@pytest.fixture(params=sorted(COOKIES))
def canary(request: pytest.FixtureRequest, runtime: Runtime, tmp_path: Path) -> Iterator[ErlangNode]:
    """A target node (OTP 25, then 28) whose cookie sits everywhere (see ``PLANT``); its REPL confirms each place."""
    node = ErlangNode(runtime, tmp_path, cookie=COOKIES[request.param]()).start()
    try:
        plant(node, tmp_path)
        beams = compile_erlang(ERLANG_SRC / "bg_traced.erl", outdir=tmp_path)
        node.eval(f'code:add_patha("{beams}"), {{module, bg_traced}} = code:ensure_loaded(bg_traced), ok.')
        for line in PLANT:
            node.eval(line)
        # The node itself says the cookie is really there (its REPL never goes through beamgate).
        assert node.eval("C.") == "[" + ",".join(str(ord(c)) for c in node.cookie) + "]"
        assert node.eval_bool("maps:get(cookie, sys:get_state(bg_canary_state)) =:= C.")
        assert node.eval_bool("whereis(list_to_atom(C)) =:= Named.")
        assert node.eval_bool(
            "{messages, [{cookie, C}, CB, list_to_atom(C), {deep, Nest(4, CB)}]} =:= process_info(Box, messages)."
        )
        assert node.eval_bool("[{k, CB}] =:= ets:lookup(list_to_atom(C), k).")
        assert node.eval_bool("{dictionary, [{secret, C}]} =:= process_info(Box, dictionary).")
        yield node
    finally:
        node.stop()


def test_the_cookie_never_leaves_the_gateway(canary: ErlangNode, tmp_path: Path) -> None:
    cookie = canary.cookie
    key = keygen(tmp_path, "alice")
    syslog = UdpCollector()
    config = write_gateway_config(
        tmp_path,
        cookie_file=canary.cookie_file,
        nodes=[canary.name],
        users={"alice": ([key], ["sre"])},
        extra=f'[audit.syslog]\naddress = "127.0.0.1:{syslog.port}"\nprotocol = "udp"\n',
    )
    served = Served(config, log_level="DEBUG").start()  # DEBUG: asyncssh logs each exec command line too
    outputs: list[str] = []
    try:
        alice = Client(served.endpoint, key, tmp_path)

        def run(*args: str, status: int = 0) -> str:
            r = alice.run(*args)
            assert r.returncode == status, f"{args}: {r.stdout}{r.stderr}"
            outputs.append(r.stdout + r.stderr)
            return r.stdout

        named = canary.eval("Named.")  # ~w prints a pid as <0.N.0>

        # (a) the state, text and JSON; the cut-off binary shows a marker, not 12 characters of the cookie
        for state in (run("state", "bg_canary_state"), json.loads(run("state", "bg_canary_state", "--json"))["state"]):
            assert 'cookie => "[REDACTED]"' in state and 'bin => <<"[REDACTED]">>' in state
            assert "name => '[REDACTED]'" in state
            assert '<<"[REDACTED]"...>>' in state  # the cut display
        # (b) the registered name, wherever names show
        assert "registered_name: [REDACTED]\n" in run("info", named)
        rows = json.loads(run("proc_count", "memory", "1000", "--json"))
        assert [r["name"] for r in rows if r["pid"] == named] == ["[REDACTED]"]
        assert any(named in line and "[REDACTED]" in line for line in run("proc_count", "memory", "1000").splitlines())
        # (c) queued messages and (e) the dictionary
        text = run("messages", "bg_canary_box")
        assert '1. {cookie,"[REDACTED]"}' in text and '2. <<"[REDACTED]">>' in text and "3. '[REDACTED]'" in text
        assert '4. {deep,[[[[<<"[REDACTED]"...>>]]]]}' in text
        queued = json.loads(run("messages", "bg_canary_box", "--json"))["messages"]
        assert queued == [
            '{cookie,"[REDACTED]"}',
            '<<"[REDACTED]">>',
            "'[REDACTED]'",
            '{deep,[[[[<<"[REDACTED]"...>>]]]]}',
        ]
        assert 'dictionary: secret => "[REDACTED]"\n' in run("info", "bg_canary_box", "dictionary")
        # (d) the ETS table's name
        tables = json.loads(run("ets", "1000", "--json"))
        assert [t["name"] for t in tables if t["name"] == "[REDACTED]"] == ["[REDACTED]"]
        assert any(line.startswith("[REDACTED] ") for line in run("ets", "1000").splitlines())
        # a trace of a function called with the cookie, with its return value
        traced = run("trace", "bg_traced:echo/1", "--limit", "2", "--return")
        assert 'bg_traced:echo(<<"[REDACTED]">>)' in traced and '--> <<"[REDACTED]">>' in traced
        events = [json.loads(line) for line in run("trace", "bg_traced:echo/1", "--limit", "1", "--json").splitlines()]
        assert events[0]["args"] == '<<"[REDACTED]">>'
        # the user types it, as a quoted name (the exec line is logged, audited, recorded)
        typed = "messages \"'" + cookie.replace("\\", "\\\\").replace('"', '\\"') + "'\""  # "'COOKIE'"
        assert run(typed) == f"0 messages queued for {named} ([REDACTED]):\n"

        # the pty shell
        shell = alice.shell()
        try:
            shell.wait_for_prompt()
            for line, needle in [
                ("state bg_canary_state", '<<"[REDACTED]"...>>'),
                ("messages bg_canary_box", "4. {deep"),
                ("ets 1000", "[REDACTED]"),
            ]:
                shell.send(line + "\r")
                shell.wait_for(needle)
                shell.wait_for_prompt()
            shell.send("exit\r")
            assert shell.wait_exit() == 0
        finally:
            shell.close()
        outputs.append(shell.raw)
        assert 'cookie => "[REDACTED]"' in shell.raw and '<<"[REDACTED]"...>>' in shell.raw

        # the gateway process: no child, and the cookie in neither its environment nor its command line
        assert descendants(served.pid) == [served.pid]
        environment = process_texts(served.pid)
    finally:
        try:
            assert served.stop() == 0
        finally:
            served.close()
            time.sleep(0.3)  # the last syslog datagrams
            syslog.close()

    places: dict[str, str | bytes] = {f"ssh output {i}": text for i, text in enumerate(outputs)} | environment
    for path in sorted((tmp_path / "state" / "recordings").glob("*.cast")):
        places[str(path)] = path.read_bytes()
    places["audit"] = (tmp_path / "state" / "audit.jsonl").read_bytes()
    places["log"] = served.log()
    places.update({f"syslog {i}": m for i, m in enumerate(syslog.messages)})
    assert {where: shown(text, cookie) for where, text in places.items() if shown(text, cookie)} == {}

    # ...and each of those places did carry it: the marker shows where it was.
    assert all(b"[REDACTED]" in Path(p).read_bytes() for p in places if p.endswith(".cast"))
    assert sum(1 for p in places if p.endswith(".cast")) == len(outputs)  # one recording per session
    typed_line = "messages \"'[REDACTED]'\""  # as typed, after redaction
    assert json.dumps(typed_line).encode() in places["audit"]  # type: ignore[operator]
    assert f"Command: {typed_line}\n" in served.log()  # asyncssh's own log line
    assert any(json.dumps(typed_line).encode() in m for m in syslog.messages)


# -- the demo --------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_demo_keeps_its_cookie_in_its_cookie_file(tmp_path: Path) -> None:
    """``beamgate demo`` starts a node: the cookie is in no environment, command line, config, output or log."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", str(free_port()), "--dir", "demo-state"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tree: list[int] = []
    try:
        assert demo.stdout is not None
        printed: list[str] = []
        deadline = time.monotonic() + 90
        while not any(line.strip().startswith("ssh ") for line in printed):
            line = demo.stdout.readline()
            if not line or time.monotonic() > deadline:
                demo.kill()
                raise AssertionError("".join(printed) + demo.communicate()[1])
            printed.append(line)
        tree = descendants(demo.pid)
        state = tmp_path / "demo-state"
        cookie = (state / "node" / ".erlang.cookie").read_text().strip()
        ssh = shlex.split(next(line for line in printed if line.strip().startswith("ssh ")))

        outputs = []
        for args, status in [
            (["info"], 0),
            (["ets", "100", "--json"], 0),  # auth's "cookies" table is listed, never read
            (["state", "auth"], 3),  # auth's state holds the cookie: protected for every role
            (["messages", "auth"], 3),
            (["state", "net_kernel"], 3),
        ]:
            r = subprocess.run([*ssh, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert r.returncode == status, r.stderr
            outputs.append(r.stdout + r.stderr)
        assert outputs[2].startswith("denied: state refuses the protected process auth for every role")

        node_pids = [p for p in tree if b"beamgate_demo" in process_texts(p).get(f"/proc/{p}/cmdline", b"")]
        assert node_pids, "the demo's node is not among its child processes"
        environments = {where: text for p in tree for where, text in process_texts(p).items()}
        assert any(b"HOME=" in text for text in environments.values())

        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=30)
        assert demo.returncode == 0, err
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in tree[1:]:  # the node runs in its own session: make sure it is gone
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    config = (state / "beamgate.toml").read_text()
    assert 'cookie_file = "node/.erlang.cookie"' in config  # the config names the file, and only that
    places: dict[str, str | bytes] = {
        "config": config,
        "demo output": "".join(printed) + out + err,
        "audit": (state / "audit.jsonl").read_bytes(),
        "node log": (state / "node.log").read_bytes(),
        **{f"ssh output {i}": text for i, text in enumerate(outputs)},
        **environments,
        **{str(p): p.read_bytes() for p in (state / "recordings").glob("*.cast")},
    }
    assert sum(1 for where in places if where.endswith(".cast")) == len(outputs)
    assert {where: shown(text, cookie) for where, text in places.items() if shown(text, cookie)} == {}


# -- error paths that format the connection config -----------------------------------------


def test_a_wrong_cookie_is_diagnosed_without_showing_either_cookie(tmp_path: Path) -> None:
    runtime = otp25()
    assert runtime is not None, "Debian's OTP 25 (erl) is not installed: run scripts/setup.sh"
    node = ErlangNode(runtime, tmp_path, cookie=COOKIES["quoted"]()).start()
    try:
        ours = COOKIES["quoted"]()
        cookie_file = tmp_path / "ours.cookie"
        cookie_file.write_text(ours + "\n")
        cookie_file.chmod(0o600)
        key = keygen(tmp_path, "alice")
        config = write_gateway_config(
            tmp_path, cookie_file=cookie_file, nodes=[node.name], users={"alice": ([key], ["sre"])}
        )
        served = Served(config, log_level="DEBUG").start()
        try:
            alice = Client(served.endpoint, key, tmp_path)
            failed = alice.run("info", "--node", node.name)
            assert failed.returncode == 1
            assert failed.stderr.startswith(f"error: {node.name} rejected our cookie"), failed.stderr
            listed = alice.run("nodes", "--json")
            assert listed.returncode == 0 and "rejected our cookie" in listed.stdout, listed.stdout
        finally:
            assert served.stop() == 0
        pinged = beamgate("ping", "--config", str(config))
        assert pinged.returncode == 1
        assert pinged.stdout.decode().startswith(f"cookie_rejected {node.name}: ")
    finally:
        node.stop()

    places: dict[str, str | bytes] = {
        "ssh": failed.stdout + failed.stderr + listed.stdout + listed.stderr,
        "ping": pinged.stdout + pinged.stderr,
        "log": served.log(),
        "audit": (tmp_path / "state" / "audit.jsonl").read_bytes(),
        **{str(p): p.read_bytes() for p in (tmp_path / "state" / "recordings").glob("*.cast")},
    }
    for cookie in (ours, node.cookie):
        assert {where: shown(text, cookie) for where, text in places.items() if shown(text, cookie)} == {}


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"cafile": "garbage"}, "clusters.test.tls.cafile: cannot load {cafile}: "),
        ({"cafile": "/etc/ssl/certs/ca-certificates.crt"}, "clusters.test.tls: cannot load certfile {certfile} "),
    ],
    ids=["bad CA file", "bad certificate"],
)
def test_tls_files_that_cannot_be_loaded_stop_the_gateway_with_one_line(
    tmp_path: Path, files: dict[str, str], problem: str
) -> None:
    secret = COOKIES["quoted"]()
    cookie_file = tmp_path / "cluster.cookie"
    cookie_file.write_text(secret + "\n")
    cookie_file.chmod(0o600)
    (tmp_path / "garbage").write_text(f"not a certificate, and not {secret} either\n")
    garbage = str(tmp_path / "garbage")  # files that exist (check-config sees to that) but hold no PEM
    paths = {"certfile": garbage, "keyfile": garbage}
    paths["cafile"] = files["cafile"] if files["cafile"].startswith("/") else garbage
    key = keygen(tmp_path, "alice")
    config = write_gateway_config(
        tmp_path,
        cookie_file=cookie_file,
        nodes=["app@localhost"],
        users={"alice": ([key], ["sre"])},
        extra="[clusters.test.tls]\n" + "".join(f'{k} = "{v}"\n' for k, v in paths.items()),
    )
    for command in ("serve", "ping"):
        out = beamgate(command, "--config", str(config))
        err = out.stderr.decode()
        assert out.returncode == 1 and out.stdout == b"", err
        assert err.startswith("error: " + problem.format(**paths)) and err.count("\n") == 1, err
        assert not shown(err, secret)


# -- repr ------------------------------------------------------------------------------------


def reachable(root: object, limit: int = 50_000) -> Iterator[object]:
    """Every object reachable from ``root`` through beamgate's own objects and plain containers.

    Objects of other libraries (asyncssh, asyncio) are reached but not entered; a ``Cookie`` is not
    entered either: holding the secret is its job, its ``repr`` is what must not show it.
    """
    seen: set[int] = set()
    todo = [root]
    while todo and len(seen) < limit:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, Cookie):
            continue
        if isinstance(obj, dict):
            todo.extend(obj.keys())
            todo.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            todo.extend(obj)
        elif type(obj).__module__.split(".")[0] in ("gateway", "commands", "policies"):
            todo.extend(vars(obj).values() if hasattr(obj, "__dict__") else [])
            for name in getattr(type(obj), "__slots__", ()):
                todo.extend([getattr(obj, name)] if hasattr(obj, name) else [])


def test_no_object_of_a_running_gateway_shows_the_cookie(tmp_path: Path) -> None:
    runtime = otp25()
    assert runtime is not None, "Debian's OTP 25 (erl) is not installed: run scripts/setup.sh"
    node = ErlangNode(runtime, tmp_path, cookie=COOKIES["quoted"]()).start()
    try:
        key = keygen(tmp_path, "alice")
        config = write_gateway_config(
            tmp_path, cookie_file=node.cookie_file, nodes=[node.name], users={"alice": ([key], ["sre"])}
        )
        gw = GatewayThread(config).start()
        try:
            assert Client(gw, key, tmp_path).run("info").returncode == 0  # connected: handshake done, peers kept
            gateway = gw.gateway
            assert gateway is not None
            cluster = gateway.clusters.by_name["test"]
            named = [gateway.config, gateway.config.clusters["test"], cluster, cluster.local, *gateway.cookies]
            for obj in named:
                for text in (repr(obj), str(obj)):
                    assert not shown(text, node.cookie), text
            assert repr(gateway.cookies[0]) == "Cookie(<redacted>)"
            assert node.name in repr(cluster) and cluster.local.name in repr(cluster.local)

            async def everything() -> list[tuple[str, str]]:  # on the gateway's loop: nothing changes meanwhile
                return [(type(o).__qualname__, repr(o)) for o in reachable(gateway)]

            texts = gw.call(everything())
        finally:
            gw.stop()
    finally:
        node.stop()
    assert len(texts) > 500  # the walk got far: config, policies, clusters, connections...
    assert sum(1 for kind, _ in texts if kind == "Cookie") == 1  # ...down to the one object that holds the cookie
    assert [(kind, text[:200]) for kind, text in texts if shown(text, node.cookie)] == []
