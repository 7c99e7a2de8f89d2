"""Benchmark: the SSH gateway against OpenSSH's own sshd, and under 50 concurrent sessions.

Run from the repository root: ``python3 bench/ssh.py [--runs 30] [--sessions 50] [--commands 20]``.

1. **Login + whoami**: the wall time of ``ssh -i KEY host whoami`` (connect,
   key exchange, public key login, exec, exit) against ``beamgate serve`` and,
   in the same run and interleaved, against Debian's ``/usr/sbin/sshd``
   started on loopback with ``ForceCommand /usr/bin/whoami``. Same client,
   same key type, same key exchange (curve25519-sha256), same options.
   Reported as medians and their ratio (target: the gateway within 1.5x of
   sshd). sshd forks and re-executes itself for every connection and runs
   the forced command through the user's shell; the gateway is one running
   process, so this ratio mostly measures that difference.
2. **Load**: ``--sessions`` concurrent shell sessions (``ssh -T``, one
   OpenSSH client each), each running ``--commands`` ``info --json`` commands
   one after the other against one real target node. Reported: errors (must
   be zero), per-command latency p50/p99 as the client sees it, and the
   gateway process's peak resident memory (VmHWM) before and after.

Everything runs on this machine: the target node (``erl``), the gateway (a
``beamgate serve`` subprocess), sshd, and the clients share its cores, so
absolute figures depend on the machine; the ratio is the comparable figure.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SSHD = "/usr/sbin/sshd"
#: Both servers are measured with the same key exchange (OpenSSH would otherwise pick sntrup761x25519).
KEX = "curve25519-sha256"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


def start_node(work: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    erl = shutil.which("erl")
    if erl is None:
        sys.exit("error: erl is not installed (run scripts/setup.sh)")
    home = work / "node"
    home.mkdir()
    cookie = home / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16))
    cookie.chmod(0o600)
    alive = f"bench{os.getpid()}"
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.Popen(
        [erl, "-sname", alive, "-noshell", "-noinput", "-eval", 'io:format("READY~n").'],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    if b"READY" not in proc.stdout.readline():
        sys.exit("error: the target node did not start")
    return proc, f"{alive}@{socket.gethostname().split('.', 1)[0]}", cookie


def start_gateway(work: Path, node: str, cookie: Path, key: Path, sessions: int) -> tuple[subprocess.Popen[str], int]:
    config = work / "beamgate.toml"
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:0"
host_key = "state/host_key"
max_sessions = {sessions + 8}
max_sessions_per_user = {sessions + 8}

[clusters.bench]
cookie_file = "{cookie}"
nodes = ["{node}"]

[recording]
dir = "state/recordings"

[audit]
path = "state/audit.jsonl"

[users.bench]
keys = ["{key.with_suffix(".pub").read_text().strip()}"]
roles = ["sre"]

[roles.sre]
commands = ["*"]
nodes = ["*"]
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--log-level", "WARNING"],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        sys.exit(f"error: the gateway did not start: {line}{proc.stderr.read() if proc.stderr else ''}")
    proc.stdout.readline()  # host key line
    return proc, int(m.group(1))


def start_sshd(work: Path, key: Path) -> tuple[subprocess.Popen[bytes], int]:
    if not os.path.exists(SSHD):
        sys.exit("error: /usr/sbin/sshd is not installed (Debian: apt-get install openssh-server)")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    host_key = keygen(work / "sshd_host_key")
    authorized = work / "authorized_keys"
    authorized.write_text(key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    config = work / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
ForceCommand /usr/bin/whoami
LogLevel ERROR
"""
    )
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("error: sshd did not start")
            time.sleep(0.05)
    return proc, port


def ssh_argv(key: Path, port: int, user: str, *command: str, tty: str = "-T") -> list[str]:
    return [
        "ssh", "-F", "/dev/null", tty, "-i", str(key), "-p", str(port),
        "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        "-o", f"KexAlgorithms={KEX}",
        f"{user}@127.0.0.1", *command,
    ]  # fmt: skip


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    took = time.perf_counter() - started
    if r.returncode != 0:
        sys.exit(f"error: {' '.join(argv)} failed: {r.stderr.decode(errors='replace')}")
    return took


def peak_rss_kib(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of ``pid`` in KiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def session(argv: list[str], commands: int, latencies: list[float], errors: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for _ in range(commands):
            started = time.perf_counter()
            proc.stdin.write(b"info --json\n")
            await proc.stdin.drain()
            while True:
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                if not line:
                    errors.append("session ended early")
                    return
                if b'"process_count"' in line:
                    latencies.append(time.perf_counter() - started)
                    break
                if b"error:" in line or b"usage:" in line or b"denied:" in line:
                    errors.append(line.decode(errors="replace").strip())
                    break
        proc.stdin.write(b"exit\n")
        await proc.stdin.drain()
        proc.stdin.close()
        if await asyncio.wait_for(proc.wait(), 60) != 0:
            errors.append(f"ssh exited with {proc.returncode}")
    except (TimeoutError, OSError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def load(argv: list[str], sessions: int, commands: int) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(session(argv, commands, latencies, errors) for _ in range(sessions)))
    return latencies, errors, time.perf_counter() - started


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30, help="logins per server for the comparison")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--commands", type=int, default=20, help="info commands per session")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="beamgate-bench-") as tmp:
        work = Path(tmp)
        key = keygen(work / "bench_key")
        node, node_name, cookie = start_node(work)
        gateway, gw_port = start_gateway(work, node_name, cookie, key, args.sessions)
        sshd, sshd_port = start_sshd(work, key)
        try:
            gw_argv = ssh_argv(key, gw_port, "diag", "whoami")
            sshd_argv = ssh_argv(key, sshd_port, getpass.getuser(), "whoami")
            for argv in (gw_argv, sshd_argv):  # warm up both (imports, caches, page cache)
                for _ in range(3):
                    timed(argv)
            gw_times, sshd_times = [], []
            for _ in range(args.runs):  # interleaved, so both see the same machine load
                gw_times.append(timed(gw_argv))
                sshd_times.append(timed(sshd_argv))
            gw_med, sshd_med = statistics.median(gw_times), statistics.median(sshd_times)
            print(f"login + whoami, {args.runs} runs each (median / p90):")
            print(f"  beamgate  {gw_med * 1000:7.1f} ms / {percentile(gw_times, 90) * 1000:7.1f} ms")
            print(f"  sshd      {sshd_med * 1000:7.1f} ms / {percentile(sshd_times, 90) * 1000:7.1f} ms")
            print(f"  ratio     {gw_med / sshd_med:.2f}x  (target <= 1.5x)")

            rss_before, _ = peak_rss_kib(gateway.pid)
            latencies, errors, wall = asyncio.run(load(ssh_argv(key, gw_port, "diag"), args.sessions, args.commands))
            rss_after, peak = peak_rss_kib(gateway.pid)
            total = args.sessions * args.commands
            print(f"\n{args.sessions} concurrent sessions x {args.commands} info commands ({total} in {wall:.1f} s):")
            print(f"  completed {len(latencies)}, errors {len(errors)}")
            for e in errors[:5]:
                print(f"    {e}")
            if latencies:
                print(
                    f"  latency   p50 {percentile(latencies, 50) * 1000:.1f} ms, "
                    f"p99 {percentile(latencies, 99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
                )
            print(
                f"  gateway memory: {rss_before / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB "
                f"({(peak - rss_before) / 1024:.1f} MiB for {args.sessions} sessions), {rss_after / 1024:.1f} MiB after"
            )
            return 0 if not errors and len(latencies) == total else 1
        finally:
            for proc in (gateway, sshd):
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
            os.killpg(node.pid, signal.SIGTERM)
            node.wait(10)


if __name__ == "__main__":
    sys.exit(main())
