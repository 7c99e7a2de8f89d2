"""What is written last: a session's recording before its ``session_end``, the audit log before the process exits.

``session_end`` is the session's last word in the audit log: by then the
recording has its final checkpoint, so the event can say where the
recording ends and whether it is complete. ``Gateway.stop`` closes the audit
log last, which sends what the syslog forwarder (a daemon thread, gone with
the process) still holds: a real ``beamgate serve`` stopped with SIGTERM
has delivered everything up to its ``server_stop`` to a real TCP collector.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.audit import AuditError
from tests.support.recordings import beamgate
from tests.support.ssh import Client, GatewayThread, KeyPair, Served, keygen, write_gateway_config
from tests.test_syslog import TcpCollector


def config(d: Path, extra: str = "") -> tuple[Path, KeyPair]:
    cookie = d / "cookie"
    cookie.write_text("notused\n")
    cookie.chmod(0o600)
    key = keygen(d, "alice")
    path = write_gateway_config(
        d, cookie_file=cookie, nodes=["absent@localhost"], users={"alice": ([key], ["sre"])}, extra=extra
    )
    return path, key


def test_session_end_comes_after_the_recordings_final_checkpoint(tmp_path: Path) -> None:
    path, key = config(tmp_path)
    gw = GatewayThread(path).start()
    try:
        r = Client(gw, key, tmp_path).run("whoami")
        assert r.returncode == 0, r.stderr
        end = gw.wait_audit("session_end")
        cast = gw.config.recording.dir / end["recording"]
        assert end["recording_offset"] == cast.stat().st_size  # nothing was written to it afterwards
        assert end["recording_complete"] is True and end["recording_checkpoints"] >= 1
        verified = beamgate("verify", "--config", str(path), str(cast))
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        gw.stop()
    assert gw.gateway is not None
    with pytest.raises(AuditError, match="closed"):  # stop() closed the log, and with it the forwarder
        gw.gateway.audit.emit("server_stop", reason="again")


def test_a_stopped_gateway_has_sent_its_last_audit_lines_to_syslog(tmp_path: Path) -> None:
    collector = TcpCollector()
    path, key = config(tmp_path, f'[audit.syslog]\naddress = "127.0.0.1:{collector.port}"\nprotocol = "tcp"\n')
    served = Served(path).start()
    try:
        assert Client(served.endpoint, key, tmp_path).run("whoami").returncode == 0
        served.wait_audit("session_end")
        assert served.stop() == 0
        written = [e["event"] for e in served.audit()]
        received = [json.loads(m.split(b" - ", 1)[1])["event"] for m in collector.wait_for(len(written))]
        assert received == written and written[-1] == "server_stop"
    finally:
        served.close()
        collector.close()
