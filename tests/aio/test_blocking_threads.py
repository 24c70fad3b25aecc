"""The blocking facade where scripts and notebooks call it: from several threads
sharing one association (their calls take turns), and from a thread whose event
loop is running (a Jupyter notebook, an ``async def``), where it runs its own
loop in a helper thread while the caller waits."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dicomnet import blocking
from dicomnet.services.storage import StorageSCP, StoreResult
from dicomnet.services.verification import VerificationSCP
from tests.cli.helpers import ServerThread
from tests.cli.test_store import write_images

from .helpers import Pki, association_lines, wait_until


def test_threads_sharing_one_association_take_turns(
        pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    """Two threads drove the association's event loop at once: the second one's
    call failed with a bare RuntimeError ('Non-thread-safe operation invoked on an
    event loop other than the current one') and left a pending task behind; now
    each call waits for the one under way."""
    server = ServerThread({"tls": pki.server_tls()}).start()
    statuses: list[int] = []
    errors: list[BaseException] = []
    try:
        with blocking.associate("localhost", server.port, tls=pki.client_tls()) as assoc:

            def worker() -> None:
                for _ in range(25):
                    try:
                        statuses.append(int(assoc.echo()))
                    except BaseException as exc:
                        errors.append(exc)

            threads = [threading.Thread(target=worker) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
    finally:
        server.stop()
    assert errors == []
    assert statuses == [0] * 75
    ended = association_lines(aio_log)
    assert len(ended) == 1 and "released, 75 message(s) (75 success)" in ended[0], ended


def test_blocking_calls_from_a_running_event_loop(
        pki: Pki, tmp_path: Path, aio_log: pytest.LogCaptureFixture) -> None:
    """A notebook cell (its kernel's loop running) or an ``async def`` calling the
    blocking API: it raised LocalProtocolError ('cannot run inside an event loop');
    each call now runs on the association's loop in a helper thread, the caller's
    thread (and its loop) waiting for it as a blocking call does."""
    sources = write_images(tmp_path / "in", 2)
    scp = StorageSCP(tmp_path / "store")
    server = ServerThread({"tls": pki.server_tls(),
                           "providers": [VerificationSCP(), scp]}).start()
    heard: list[tuple[str, int | None]] = []

    def told(result: StoreResult) -> None:
        heard.append((result.path.name, result.status))

    async def notebook_cell() -> tuple[int, int, list[StoreResult]]:
        port, tls = server.port, pki.client_tls()
        first = blocking.echo("localhost", port, tls=tls)
        with blocking.associate("localhost", port, tls=tls) as assoc:
            second = assoc.echo()
        results = blocking.store("localhost", port, [tmp_path / "in"], tls=tls,
                                 called_ae_title="DICOMNET", on_progress=told)
        await asyncio.sleep(0)  # the caller's loop still runs
        return int(first), int(second), results

    try:
        first, second, results = asyncio.run(notebook_cell())
    finally:
        server.stop()
        scp.close()
    assert (first, second) == (0, 0)
    assert sorted((r.path, r.ok, r.status) for r in results) == sorted(
        (path, True, 0) for path in sources.values())
    assert sorted(heard) == sorted((path.name, 0) for path in sources.values())
    assert sorted(p.name for p in (tmp_path / "store").rglob("*.dcm")) == sorted(
        f"{uid}.dcm" for uid in sources)
    ended = association_lines(aio_log)
    assert len(ended) == 3 and all(": released, " in line for line in ended), ended
    for helper in [t for t in threading.enumerate() if t.name == "dicomnet-blocking"]:
        helper.join(10)  # each ends as its call returns
        assert not helper.is_alive()


LEFT_OPEN = """
import sys
from dicomnet import blocking
assoc = blocking.associate("127.0.0.1", int(sys.argv[1]))
print(int(assoc.echo()), flush=True)
"""


def _ended_before_the_server_stops(aio_log: pytest.LogCaptureFixture) -> None:
    """The server's line for the association, awaited: stopped before it read the
    A-ABORT, the server ended it itself ("server closing")."""
    asyncio.run(wait_until(lambda: bool(association_lines(aio_log)),
                           "the server's line for the association"))


def test_an_association_open_at_exit_is_aborted(aio_log: pytest.LogCaptureFixture) -> None:
    """A script ending with its association open: the peer saw the connection
    close (no A-ABORT) and the script printed 'Task was destroyed but it is
    pending!' at exit; the association is now aborted (PS3.8 7.3), quietly."""
    server = ServerThread({}).start()
    try:
        child = subprocess.run([sys.executable, "-c", LEFT_OPEN, str(server.port)],
                               check=False, capture_output=True, text=True, timeout=60)
        _ended_before_the_server_stops(aio_log)
    finally:
        server.stop()
    assert (child.returncode, child.stdout, child.stderr) == (0, "0\n", "")
    ended = association_lines(aio_log)
    assert len(ended) == 1 and "aborted (by the peer, its A-ABORT: service-user)" in ended[0], ended


def test_an_association_dropped_unreleased_is_aborted(
        aio_log: pytest.LogCaptureFixture) -> None:
    """One garbage-collected while open (a worker that forgot ``release``): it
    left its loop, socket and reader task to the garbage collector; it is
    aborted, with a ResourceWarning as an unclosed file has."""
    server = ServerThread({}).start()
    try:
        assoc = blocking.associate("127.0.0.1", server.port)
        assert int(assoc.echo()) == 0
        with pytest.warns(ResourceWarning, match="association .* was not released"):
            del assoc
            gc.collect()
        _ended_before_the_server_stops(aio_log)
    finally:
        server.stop()
    ended = association_lines(aio_log)
    assert len(ended) == 1 and "aborted (by the peer, its A-ABORT: service-user)" in ended[0], ended


def test_the_finalizer_leaves_an_association_a_call_holds() -> None:
    """At exit, a daemon thread's call may hold the association's turn with its loop
    not yet running: the finalizer aborted it and closed that loop under the call
    (found by reviewing the session's change). It now leaves it to the call."""
    server = ServerThread({}).start()
    try:
        assoc = blocking.associate("127.0.0.1", server.port)
        with assoc._turn:  # a call under way, between its turn and its loop
            assoc._finalizer()  # what the interpreter's exit runs
            assert not assoc._loop.is_closed()
        assert int(assoc.echo()) == 0
        assoc.release()
    finally:
        server.stop()
