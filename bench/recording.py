"""Cost of tamper evidence: the signed recorder against a plain asciicast writer, and verify's speed.

The workload is shaped like a diagnostic session: keystrokes (one character
each), echoes, and command output of 80 to 4000 characters, with a signed
checkpoint every 100 records (about every 5 s at 20 records per second).
Both writers redact the cookie in every text and flush every record.

Prints records per second for each writer and their ratio, the file-size
overhead of the checkpoints, the cost of one checkpoint, and how fast
``verify`` reads a recording compared with merely parsing its JSON lines.

    python3 bench/recording.py [--records 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import RecordingConfig
from gateway.recording import RecordingStore
from gateway.recording_verify import OK, verify_file
from gateway.secret import Cookie

COOKIE = Cookie(b"bench-cookie-NOT-SECRET-42")


def workload(n: int) -> list[tuple[str, str]]:
    rng = random.Random(7)
    out: list[tuple[str, str]] = []
    while len(out) < n:
        for ch in "proc_count memory 10\r":
            out.append(("i", ch))
            out.append(("o", ch))
        table = "".join(
            f"<0.{rng.randrange(99999)}.0>  {rng.randrange(10**9):>12}  gen_server:loop/7\r\n" for _ in range(10)
        )
        out.append(("o", table * rng.choice((1, 2, 8))))
        out.append(("o", "alice@app@host> "))
    return out[:n]


class PlainWriter:
    """An unsigned asciicast writer: what a recorder costs without tamper evidence."""

    def __init__(self, path: Path) -> None:
        self.f = path.open("w", encoding="utf-8")
        self.start = time.monotonic()
        self.f.write(json.dumps({"version": 2, "width": 80, "height": 24}) + "\n")

    def event(self, kind: str, data: str) -> None:
        t = round(time.monotonic() - self.start, 6)
        self.f.write(json.dumps([t, kind, COOKIE.redact(data)], ensure_ascii=False) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def timed(fn: Callable[[], None]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20000)
    args = parser.parse_args()
    events = workload(args.records)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        store = RecordingStore(
            RecordingConfig(base / "rec", base / "key", 365, 3600.0, 0),
            COOKIE.redact,
            pending=COOKIE.pending_prefix,
        )

        plain_path = base / "plain.cast"

        def run_plain() -> None:
            w = PlainWriter(plain_path)
            for kind, data in events:
                w.event(kind, data)
            w.close()

        signed_path: list[Path] = []

        def run_signed(every: int) -> None:
            r = store.start(session_id="bench", user="alice", client="127.0.0.1:1", key_fingerprint="SHA256:x")
            for i, (kind, data) in enumerate(events, 1):
                (r.input if kind == "i" else r.output)(data)
                if i % every == 0:
                    r.checkpoint()
            r.close()
            signed_path.append(r.path)

        t_plain = min(timed(run_plain) for _ in range(3))
        t_records = min(timed(lambda: run_signed(len(events))) for _ in range(3))
        t_signed = min(timed(lambda: run_signed(100)) for _ in range(3))
        signed = signed_path[-1]
        n = len(events)
        print(f"records: {n}, {sum(len(d) for _, d in events) / 1e6:.1f} M characters")
        print(f"plain asciicast writer            : {n / t_plain:10,.0f} records/s")
        print(f"signed recorder, records only     : {n / t_records:10,.0f} records/s")
        print(f"  ratio plain time / signed time  : {t_plain / t_records:10.2f} (1.0 = no cost)")
        print(f"signed, checkpoint every 100      : {n / t_signed:10,.0f} records/s")
        size_plain, size_signed = plain_path.stat().st_size, signed.stat().st_size
        print(f"file size signed/plain            : {size_signed / size_plain:10.3f}")

        r = store.start(session_id="cp", user="alice", client="127.0.0.1:1", key_fingerprint="SHA256:x")
        per_cp = []
        for _ in range(50):
            for kind, data in events[:100]:
                (r.input if kind == "i" else r.output)(data)
            began = time.perf_counter()
            r.checkpoint()
            per_cp.append(time.perf_counter() - began)
        r.close()
        per_cp.sort()
        cp = per_cp[25]
        print(f"one checkpoint (100 records: sign + fdatasync): median {cp * 1e3:.2f} ms")
        per_record = t_records / n
        busy = 20 * per_record + cp / 5
        print(f"at 20 records/s, a checkpoint every 5 s: {busy * 1e3:.2f} ms of work per second of session")

        def parse_only() -> None:
            with signed.open("rb") as f:
                for line in f:
                    json.loads(line)

        t_parse = min(timed(parse_only) for _ in range(3))
        verdicts = []
        t_verify = min(timed(lambda: verdicts.append(verify_file(signed, [store.public_key]))) for _ in range(3))
        assert verdicts[-1].status == OK, verdicts[-1].text()
        mb = size_signed / 1e6
        print(f"verify                            : {mb / t_verify:10.1f} MB/s ({n / t_verify:,.0f} records/s)")
        print(f"  ratio verify / json.loads of every line: {t_verify / t_parse:.2f}")


if __name__ == "__main__":
    main()
