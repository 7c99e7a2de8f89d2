"""The input path's parts on their own: the gate, the pipe feeder (a real pipe), the line guard, the line queue.

End to end (pastes through a real pty and ssh) is ``tests/test_e2e_input.py``.
"""

from __future__ import annotations

import asyncio
import os

from hypothesis import given
from hypothesis import strategies as st

from gateway.shell_input import (
    OVERFLOW,
    PASTE_END,
    PASTE_START,
    InputGate,
    Line,
    LineGuard,
    LineQueue,
    PipeFeeder,
)


class Channel:
    """What the gate drives: asyncssh's pause_reading/resume_reading, recorded."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def gate(self, limit: int) -> InputGate:
        return InputGate(lambda: self.calls.append("pause"), lambda: self.calls.append("resume"), limit)


def test_the_gate_pauses_above_its_limit_and_resumes_at_half_counting_every_source() -> None:
    chan = Channel()
    gate = chan.gate(100)
    gate.waiting("pipe", 60)
    gate.waiting("pending", 40)
    assert chan.calls == []
    gate.waiting("pending", 41)
    assert chan.calls == ["pause"] and gate.paused
    gate.waiting("pending", 0)  # 60 still wait: above half
    assert chan.calls == ["pause"]
    gate.waiting("pipe", 50)
    assert chan.calls == ["pause", "resume"] and not gate.paused


def test_the_feeder_never_blocks_and_drains_as_the_pipe_is_read() -> None:
    async def scenario() -> None:
        chan = Channel()
        feeder = PipeFeeder(chan.gate(128 * 1024))
        feeder.write("early ")  # before the pipe exists: kept, in order
        read_fd, write_fd = os.pipe()
        try:
            feeder.attach(write_fd)
            payload = "".join(f"{i:07d}\n" for i in range(64 * 1024))  # 512 KiB: far more than a pipe holds
            feeder.write(payload)  # returns at once
            assert chan.calls == ["pause"]
            received = bytearray()
            os.set_blocking(read_fd, False)
            while len(received) < len(payload) + 6:
                try:
                    received += os.read(read_fd, 65536)
                except BlockingIOError:
                    await asyncio.sleep(0.001)  # the loop runs add_writer's drain
            assert received.decode() == "early " + payload
            assert chan.calls == ["pause", "resume"]
            feeder.detach()
        finally:
            os.close(read_fd)
            os.close(write_fd)

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_the_guard_passes_lines_up_to_its_limit_untouched() -> None:
    guard = LineGuard(10)
    assert guard.filter("0123456789\rabc\x1b[Ad\n") == "0123456789\rabc\x1b[Ad\n"
    assert not guard.lost


def test_the_guard_drops_the_rest_of_a_long_line_and_marks_its_enter() -> None:
    guard = LineGuard(10)
    out = guard.filter("0123456789ABCDE") + guard.filter("FGH\rnext\r")
    assert out == f"0123456789{OVERFLOW}\rnext\r"
    assert list(guard.lost) == [8]


def test_the_guard_takes_ctrl_c_as_the_end_of_a_line_and_drops_the_users_own_mark() -> None:
    guard = LineGuard(3)
    assert guard.filter("abcdef\x03ab\x1cc\r") == "abc\x03abc\r"
    assert not guard.lost


def test_a_paste_is_one_line_its_markers_are_not_counted_and_an_open_one_is_closed() -> None:
    guard = LineGuard(13)
    pasted = PASTE_START + "one\rtwo\rthree" + PASTE_END  # 13 characters: the CRs do not end it
    assert guard.filter(pasted + "\r") == pasted + "\r"
    assert not guard.lost
    almost = PASTE_START + "a\x1b[201xb\r" + PASTE_END + "\r"  # no end marker until the real one
    assert guard.filter(almost) == almost
    assert not guard.lost
    assert guard.filter(pasted + "!\r") == pasted + OVERFLOW + "\r"
    assert list(guard.lost) == [1]
    guard = LineGuard(10)
    long = PASTE_START + "a" * 30 + PASTE_END
    # split across chunks anywhere, markers included
    out = "".join(guard.filter(long[i : i + 4]) for i in range(0, len(long), 4)) + guard.filter("\r")
    assert out == PASTE_START + "a" * 10 + PASTE_END + OVERFLOW + "\r"
    assert list(guard.lost) == [20]


@given(st.lists(st.text(alphabet="ab\r\x1b[20~1", max_size=40), max_size=8), st.integers(1, 12))
def test_how_input_is_cut_into_chunks_changes_nothing(chunks: list[str], limit: int) -> None:
    """Paste markers split between two reads are still seen."""
    guard = LineGuard(limit)
    out = "".join(guard.filter(c) for c in chunks)
    whole = LineGuard(limit)
    assert whole.filter("".join(chunks)) == out
    assert list(whole.lost) == list(guard.lost)
    assert out.count(OVERFLOW) == len(guard.lost)


@given(st.lists(st.text(alphabet="ab \x03", max_size=30), max_size=6), st.integers(1, 12))
def test_without_pastes_each_line_keeps_its_head_and_loses_the_rest_counted(lines: list[str], limit: int) -> None:
    guard = LineGuard(limit)
    out = guard.filter("".join(line + "\r" for line in lines))
    expected, lost = "", []
    for line in lines:
        *abandoned, last = line.split("\x03")  # Ctrl-C ends a line too, and loses nothing to count
        expected += "".join(a[:limit] + "\x03" for a in abandoned)
        expected += last[:limit] + (OVERFLOW if len(last) > limit else "") + "\r"
        lost += [len(last) - limit] if len(last) > limit else []
    assert out == expected
    assert list(guard.lost) == lost


def test_the_line_queue_keeps_a_long_lines_head_counts_the_rest_and_gates_what_waits() -> None:
    async def scenario() -> None:
        chan = Channel()
        queue = LineQueue(chan.gate(20), limit=8)
        queue.feed("short\r\n" + "x" * 12)
        queue.feed("yy\nlast")
        queue.eof()
        assert chan.calls == []  # 5 + 8 + 4 waiting
        queue.feed("")
        assert [await queue.get() for _ in range(4)] == [Line("short"), Line("x" * 8, 6), Line("last"), None]
        gated = LineQueue(chan.gate(20), limit=8)
        gated.feed("1234567\n" * 3)
        assert chan.calls == ["pause"]
        await gated.get()
        await gated.get()
        assert chan.calls == ["pause", "resume"]

    asyncio.run(asyncio.wait_for(scenario(), 10))
