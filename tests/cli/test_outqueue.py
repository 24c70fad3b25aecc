"""LineQueue: a server's lines written by a thread of their own, over a real pipe
whose reader lags, then catches up, or never reads again."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from dicomnet.cli import outqueue
from dicomnet.cli.output import cli_session, print_json, server_output
from dicomnet.cli.outqueue import LineQueue


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    try:
        yield read, write
    finally:
        for fd in (read, write):
            with contextlib.suppress(OSError):
                os.close(fd)


def _drain(fd: int, until: bytes, timeout: float = 10) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while not got.endswith(until):
        assert time.monotonic() < deadline, got[-200:]
        got += os.read(fd, 1 << 16)
    return got


def test_lines_past_the_bound_are_dropped_then_told_once_caught_up(
        pipe: tuple[int, int]) -> None:
    read, write = pipe
    with os.fdopen(write, "w", closefd=False) as stream:
        told: list[int] = []

        def notice(count: int) -> list[str]:
            told.append(count)
            return [f"dropped {count}"]

        queue = LineQueue(stream, name="test-out", limit=200_000, notice=notice)
        line = "x" * 999
        started = time.monotonic()
        kept = [queue.put(f"{n:06} {line}") for n in range(1000)]  # 1 MB: the pipe fills
        assert time.monotonic() - started < 1  # never blocked
        # The pipe took ~64 KiB, the queue 200 KB of the rest; the others dropped.
        assert 150 < sum(kept) < 300
        dropped = kept.count(False)
        assert queue.dropped == dropped
        queue.put("last", always=True)
        out = _drain(read, b"dropped %d\n" % dropped)
        assert queue.close(5)
    lines = out.decode().splitlines()
    assert told == [dropped]
    # Those kept, in their order; then the last (past the bound), then the notice.
    assert [int(x.split()[0]) for x in lines[:-2]] == [
        n for n, ok in enumerate(kept) if ok]
    assert lines[-2:] == ["last", f"dropped {dropped}"]


def test_close_gives_up_on_a_reader_that_never_reads(pipe: tuple[int, int]) -> None:
    _, write = pipe
    with os.fdopen(os.dup(write), "w") as stream:
        queue = LineQueue(stream, name="test-out")
        for n in range(200):
            queue.put(f"{n} " + "y" * 1000)
        started = time.monotonic()
        assert not queue.close(0.5)
        assert time.monotonic() - started < 2
        # The descriptor now goes to /dev/null: a write after it does not block.
        stream.write("z" * 200_000)
        stream.flush()


def test_a_queue_given_up_never_touches_its_descriptor_number_again() -> None:
    """close() gave up on a thread blocked in write; the stream's descriptor is then
    closed and its number reused (here, by the next pipe). When the blocked write
    fails at last (its reader gone), the thread must not make that number
    /dev/null: it was a later test's pipe, which then never saw EPIPE (a flaky
    test_a_reader_gone_... in the full suite, session 34)."""
    read, write = os.pipe()
    number = os.dup(write)
    stream = os.fdopen(number, "w")
    queue = LineQueue(stream, name="test-out")
    for n in range(200):  # 200 KB: the pipe takes 64 KiB, the write blocks
        queue.put(f"{n} " + "y" * 1000)
    assert not queue.close(0.3)
    stream.close()  # the number is free; the thread's write holds the old pipe
    again_read, again_write = os.pipe()
    try:
        assert number in (again_read, again_write)
        os.close(read)  # the blocked write fails: EPIPE
        os.close(write)
        queue._thread.join(5)
        assert not queue._thread.is_alive()
        assert stat.S_ISFIFO(os.fstat(number).st_mode)  # still the new pipe
    finally:
        os.close(again_read)
        os.close(again_write)


def test_a_reader_gone_makes_the_stream_devnull_and_is_said_once() -> None:
    read, write = os.pipe()
    os.close(read)
    closed: list[bool] = []
    with os.fdopen(write, "w") as stream:
        queue = LineQueue(stream, name="test-out", on_closed=lambda: closed.append(True))
        for n in range(5):
            queue.put(str(n))
            assert queue.flush(5)
        assert queue.close(5)
    assert closed == [True]


def test_serve_output_tells_the_lines_dropped_on_both_streams(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """server_output as serve uses it, stdout's reader 100 KB behind: the JSON
    line and the WARNING once it catches up, after the lines kept, in order."""
    monkeypatch.setattr(outqueue, "DEFAULT_LIMIT", 96 << 10)
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    got: dict[int, bytes] = {out_read: b"", err_read: b""}

    def drain(fd: int) -> None:
        while chunk := os.read(fd, 1 << 16):
            got[fd] += chunk

    with os.fdopen(out_write, "w") as out, os.fdopen(err_write, "w") as err:
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        with cli_session(0, default_level=logging.INFO, dated=True), \
                server_output(json_lines=True):
            for n in range(500):
                print_json({"event": "stored", "n": n, "pad": "p" * 1000}, line=True,
                           last=False)
            readers = [threading.Thread(target=drain, args=(fd,)) for fd in got]
            for reader in readers:
                reader.start()
            print_json({"event": "stopped"}, line=True)
    for reader in readers:
        reader.join(10)
    for fd in got:
        os.close(fd)
    lines = [json.loads(line) for line in got[out_read].decode().splitlines()]
    kept = [line["n"] for line in lines if line["event"] == "stored"]
    assert kept == list(range(len(kept))) and 60 < len(kept) < 200
    # The notice comes once the queue is empty: after the stop line queued meanwhile.
    assert lines[len(kept):] in (
        [{"event": "stopped"}, {"event": "output_dropped", "stream": "stdout",
                                "lines": 500 - len(kept)}],
        [{"event": "output_dropped", "stream": "stdout", "lines": 500 - len(kept)},
         {"event": "stopped"}])
    warning = got[err_read].decode().splitlines()
    assert len(warning) == 1 and warning[0].endswith(
        f"WARNING: {500 - len(kept)} line(s) not written to stdout: its reader fell behind "
        "by more than 96 KiB of lines"), warning  # not "0 MiB": the bound in whole MiB
