"""A third Ctrl-C quits at once even when nobody reads stderr or stdout:
``serve`` under a stalled log reader, its pipes full. Its ``error:`` line and
--json document were written blocking, and the instant exit waited forever."""

from __future__ import annotations

import os
import subprocess
import sys

from dicomnet.cli.common import EXIT_INTERRUPTED

#: run_async in a child whose clean-up ignores its cancels; before the third
#: SIGINT it fills its stdout and stderr pipes, which the parent does not read.
_STALLED = """
import asyncio, os, signal, sys
from dicomnet.cli.common import run_async
from dicomnet.cli.exits import promise_json

promise_json(["--json"])

def fill(fd):
    os.set_blocking(fd, False)
    for size in (4096, 1):  # whole pages, then any byte a page has left
        try:
            while True:
                os.write(fd, b"x" * size)
        except BlockingIOError:
            pass
    os.set_blocking(fd, True)

async def stubborn():
    loop = asyncio.get_running_loop()
    signal.raise_signal(signal.SIGINT)
    try:
        await loop.create_future()
    finally:
        signal.raise_signal(signal.SIGINT)
        try:
            await loop.create_future()
        except asyncio.CancelledError:
            pass
        fill(1)
        fill(2)
        signal.raise_signal(signal.SIGINT)
        await loop.create_future()

run_async(stubborn, verbose=0)
"""


def test_a_third_ctrl_c_quits_with_its_output_pipes_full_and_unread() -> None:
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    with os.fdopen(out_read, "rb") as out, os.fdopen(err_read, "rb") as err:
        with os.fdopen(out_write, "wb") as out_w, os.fdopen(err_write, "wb") as err_w:
            child = subprocess.Popen([sys.executable, "-c", _STALLED],
                                     stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w)
            try:
                code = child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                raise AssertionError("the third Ctrl-C blocked on a full pipe") from None
            assert code == EXIT_INTERRUPTED
            # The write ends' O_NONBLOCK (shared with this process, and with any
            # other holding them) was set for the exit only: it is cleared again.
            assert os.get_blocking(out_write) and os.get_blocking(err_write)
        for stream in (out, err):
            data = stream.read()
            # What was there: no line, document nor traceback got in (or blocked).
            assert len(data) >= 4096 and set(data) == {ord("x")}, data[:200]
