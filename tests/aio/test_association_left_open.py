"""An asyncio association its user never released nor aborted (an
``open_association`` result, or ``associate()`` not used with ``async with``).

Its connection keeps it alive while its event loop runs; when the loop ends
(``asyncio.run`` returning cancels its reader task) it is aborted (A-ABORT,
PS3.8 7.3) and its connection closed, with a ResourceWarning naming the peer,
as an unclosed file has. One collected with its loop closed some other way
gets the warning and its connection closed, nothing else (no I/O from a
finalizer)."""

from __future__ import annotations

import asyncio
import gc
import re
import subprocess
import sys
import time
import warnings

import pytest

from dicomnet.aio import client as aio_client
from tests.cli.helpers import ServerThread

from .helpers import LOOPBACK, association_lines, run


def _socket_closed(assoc: aio_client.ClientAssociation) -> bool:
    return bool(assoc.stream.writer.get_extra_info("socket").fileno() == -1)


def test_an_association_open_when_asyncio_run_ends_is_aborted(
        aio_log: pytest.LogCaptureFixture) -> None:
    """``asyncio.run`` returns with the association open: its reader task was
    cancelled and its socket left open until collected (asyncio's 'unclosed
    transport' warning, naming no peer), the peer seeing no A-ABORT."""
    kept: list[aio_client.ClientAssociation] = []

    async def main(port: int) -> None:
        assoc = await aio_client.open_association(LOOPBACK, port)
        assert int(await assoc.echo()) == 0
        kept.append(assoc)  # referenced still: no collector involved

    server = ServerThread({}).start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run(main(server.port))
        assert _socket_closed(kept[0])
        for _ in range(1000):  # the server's own thread logs the end
            if association_lines(aio_log):
                break
            time.sleep(0.01)
    finally:
        server.stop()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == [
        f"association with {LOOPBACK}:{server.port} was not released: aborted"]
    ended = association_lines(aio_log)
    assert len(ended) == 1 and "aborted (by the peer, its A-ABORT: service-user)" in ended[0], ended
    assert any(re.search(r"aborting: not released, its event loop ending", line)
               for line in (r.getMessage() for r in aio_log.records)), aio_log.text


def test_an_association_collected_with_its_loop_closed_is_closed() -> None:
    """Its loop closed without cancelling its tasks (``run_until_complete`` then
    ``close``): the collected association closes its connection and warns,
    naming the peer."""
    server = ServerThread({}).start()
    try:
        loop = asyncio.new_event_loop()
        try:
            assoc = loop.run_until_complete(aio_client.open_association(LOOPBACK, server.port))
            sock = assoc.stream.writer.get_extra_info("socket")
        finally:
            loop.close()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del assoc
            gc.collect()
        assert sock.fileno() == -1
    finally:
        server.stop()
    messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert f"association with {LOOPBACK}:{server.port} was not released: closed" in messages


def test_a_released_association_gives_no_warning() -> None:
    kept: list[aio_client.ClientAssociation] = []

    async def main(port: int) -> None:
        assoc = await aio_client.open_association(LOOPBACK, port)
        await assoc.release()
        kept.append(assoc)

    server = ServerThread({}).start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run(main(server.port))
            del kept[:]
            gc.collect()
    finally:
        server.stop()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


LOOP_CLOSED = """
import asyncio, gc, sys
from dicomnet.aio.client import open_association
loop = asyncio.new_event_loop()
assoc = loop.run_until_complete(open_association("127.0.0.1", int(sys.argv[1])))
loop.close()
del assoc
gc.collect()
print("collected", flush=True)
"""


@pytest.mark.parametrize("warnings_on", [False, True], ids=["default", "resource-warnings"])
def test_an_association_whose_loop_closed_under_it_has_asyncio_log_nothing(
        warnings_on: bool) -> None:
    """Its loop closed without cancelling its tasks: asyncio's "Task was destroyed
    but it is pending!" error log (printed even with warnings off) repeated
    what our ResourceWarning says. The socket, transport and stream writer
    collected with it still warn "unclosed" (ResourceWarning, hidden by
    default): their finalizers run first, and a transport cannot be closed once
    its loop is (see ClientAssociation._start)."""
    server = ServerThread({}).start()
    try:
        flags = ["-W", "always::ResourceWarning"] if warnings_on else []
        child = subprocess.run([sys.executable, *flags, "-c", LOOP_CLOSED, str(server.port)],
                               check=False, capture_output=True, text=True, timeout=60)
    finally:
        server.stop()
    assert (child.returncode, child.stdout) == (0, "collected\n"), child.stderr
    assert "Task was destroyed" not in child.stderr
    ours = f"ResourceWarning: association with {LOOPBACK}:{server.port} was not released: closed"
    if warnings_on:
        assert child.stderr.count(ours) == 1, child.stderr
    else:
        assert child.stderr == ""
