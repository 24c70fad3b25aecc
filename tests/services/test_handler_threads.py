"""The threads of plain (sync) handlers do not hold the process at exit: a
handler that never returns kept ``dicomnet serve``, or any program, from
exiting after Ctrl-C or SIGTERM (the pool's workers were joined at exit).
The server's close says how many were still running."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from dicomnet.services.workers import HandlerThreads

SCRIPT = """
import asyncio, logging, sys, threading
from dicomnet.aio.client import associate
from dicomnet.aio.server import serve
from dicomnet.errors import DicomNetError
from dicomnet.services.verification import VerificationSCP

logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
entered = threading.Event()

def on_c_echo(assoc):
    entered.set()
    threading.Event().wait()  # never returns

async def main():
    server = await serve(host="127.0.0.1", port=0, providers=[VerificationSCP(on_c_echo)])
    async with associate("127.0.0.1", server.port) as assoc:
        echo = asyncio.ensure_future(assoc.echo())
        assert await asyncio.to_thread(entered.wait, 20)
        server.close()
        await server.wait_closed()
        try:
            await echo
        except DicomNetError:
            pass
    print("closed", flush=True)

asyncio.run(main())
sys.exit(7)
"""


def test_a_hung_sync_handler_does_not_keep_the_process_from_exiting() -> None:
    child = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                           check=False, timeout=60)
    assert (child.returncode, child.stdout) == (7, "closed\n"), child.stderr
    assert ("dicomnet.aio WARNING server closed while 1 plain handler(s) of this process "
            "still run in worker threads (this server's or another's): not waited for, "
            "answers to this server's peers dropped") in child.stderr.splitlines()


def test_handler_threads_are_daemons_made_as_needed_up_to_the_most_and_kept() -> None:
    pool = HandlerThreads(2, "test-handler")
    go_on = threading.Event()
    started = threading.Semaphore(0)
    names: list[str] = []

    def job(value: int) -> int:
        names.append(threading.current_thread().name)
        started.release()
        assert threading.current_thread().daemon
        go_on.wait(20)
        return value * 2

    def fails() -> None:
        raise KeyError("the submitter hears of it")

    try:
        first, second, third = (pool.submit(job, n) for n in (1, 2, 3))
        assert started.acquire(timeout=20) and started.acquire(timeout=20)
        # Two threads at most: the third job waits for one of them.
        assert not third.running() and pool.running == 2
        go_on.set()
        assert [f.result(20) for f in (first, second, third)] == [2, 4, 6]
        with pytest.raises(KeyError, match="the submitter hears"):
            pool.submit(fails).result(20)
        assert pool.submit(job, 5).result(20) == 10
    finally:
        go_on.set()
    assert set(names) == {"test-handler_0", "test-handler_1"}  # kept for the next jobs
    assert pool.running == 0
