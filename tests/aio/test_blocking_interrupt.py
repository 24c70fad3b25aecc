"""Ctrl-C in a script using the blocking facade: the association is aborted
(the peer reads an A-ABORT), KeyboardInterrupt reaches the script, and nothing
else is printed; the objects answered before it were told to on_progress."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dicomnet.services.storage import StorageSCP
from tests.cli.helpers import ServerThread, reaped
from tests.cli.test_store import write_images

from .helpers import log_lines

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SCRIPT = """
import sys
from dicomnet import blocking
def told(result):
    print("answered", result.status, flush=True)
try:
    blocking.store("127.0.0.1", int(sys.argv[1]), [sys.argv[2]], on_progress=told)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


#: The same from a notebook cell: the caller's thread runs an event loop (here
#: without asyncio.run's SIGINT handler, as IPython's kernel runs a cell: the
#: interrupt is a KeyboardInterrupt in the main thread).
NOTEBOOK_SCRIPT = """
import asyncio, sys
from dicomnet import blocking
def told(result):
    print("answered", result.status, flush=True)
async def cell():
    blocking.store("127.0.0.1", int(sys.argv[1]), [sys.argv[2]], on_progress=told)
loop = asyncio.new_event_loop()
task = loop.create_task(cell())
try:
    loop.run_until_complete(task)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    task.exception()  # retrieved: the cell failed with it
finally:
    loop.close()
"""


#: The same from a coroutine under asyncio.run, whose own SIGINT handler only
#: cancels the main task on a first Ctrl-C: that task was blocked in the call,
#: the store went on to its end, and only a second Ctrl-C interrupted it.
ASYNCIO_RUN_SCRIPT = """
import asyncio, sys
from dicomnet import blocking
def told(result):
    print("answered", result.status, flush=True)
async def main():
    blocking.store("127.0.0.1", int(sys.argv[1]), [sys.argv[2]], on_progress=told)
try:
    # Not in debug mode (-X dev's): its "Executing <Task ...> took 0.6 seconds" is
    # right, a blocking call in a coroutine holds the loop, and no concern here.
    asyncio.run(main(), debug=False)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


#: Python's own Ctrl-C handler in the child, as an interactive start has it. A
#: suite started in the background by a shell without job control (``scripts/test
#: &``, nohup) runs with SIGINT ignored, which its children inherit: Python keeps
#: an ignored SIGINT, and so does the blocking API (it replaces only Python's
#: default handler), so the store ran to its end and these tests failed.
PRELUDE = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"


@pytest.mark.parametrize("script", [SCRIPT, NOTEBOOK_SCRIPT, ASYNCIO_RUN_SCRIPT],
                         ids=["script", "notebook", "asyncio-run"])
def test_ctrl_c_in_blocking_store_aborts_the_association(
        script: str, tmp_path: Path, aio_log: pytest.LogCaptureFixture) -> None:
    one_at_a_time = asyncio.Lock()

    async def slow(stored: object) -> int:
        async with one_at_a_time:  # an answer every 0.2 s: the send is under way
            await asyncio.sleep(0.2)
        return 0

    write_images(tmp_path / "in", 30)
    scp = StorageSCP(tmp_path / "store", on_c_store=slow)
    server = ServerThread({"providers": [scp]}).start()
    try:
        child = subprocess.Popen(
            [sys.executable, "-X", "dev", "-c", PRELUDE + script, str(server.port),
             str(tmp_path / "in")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with reaped(child):
            assert child.stdout is not None
            for _ in range(3):
                assert child.stdout.readline().startswith("answered 0")
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=30)
    finally:
        server.stop()
        scp.close()
    assert child.returncode == 0, err
    assert out.splitlines()[-1] == "interrupted"
    assert err == ""  # was: "Event loop is closed", "Task was destroyed but it is pending!"
    ended = log_lines(aio_log, contains="association DICOMNET@")
    assert len(ended) == 1 and "aborted (by the peer, its A-ABORT: service-user)" in ended[0], ended


def test_a_sigint_handler_installed_during_a_blocking_call_stays(tmp_path: Path) -> None:
    """The blocking API handles Ctrl-C with a handler of its own while a call runs,
    and puts Python's back after it: not over one the script installed meanwhile
    (here from on_progress), which it used to overwrite."""
    from dicomnet import blocking

    def mine(signum: int, frame: object) -> None:
        pass

    def install(result: object) -> None:
        signal.signal(signal.SIGINT, mine)

    write_images(tmp_path / "in", 1)
    scp = StorageSCP(tmp_path / "store")
    server = ServerThread({"providers": [scp]}).start()
    try:
        results = blocking.store("127.0.0.1", server.port, [tmp_path / "in"], on_progress=install)
        assert [r.ok for r in results] == [True]
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        server.stop()
        scp.close()
