"""A file listed by store_paths and replaced before its turn by something that is
no regular file: it fails alone, with why, and the others go on. A FIFO put in
its place blocked the whole event loop in open() (waiting for a writer that
never comes): dicomnet store hung, its timeouts and Ctrl-C with it. (A writer
thread here opens the FIFO so that the test fails rather than hangs.)"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.services.storage import store_paths
from dicomnet.services.store_scu import StoreResult
from tests.aio.helpers import run
from tests.aio.rawscp import RawPeer, Request, raw_scp, store_response
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, uid, write_part10


class _Writer:
    """Opens the FIFO for writing (which waits for a reader), then closes it: an
    open() blocked on the FIFO ends, reading nothing, rather than hang the test.
    ``stop`` ends its own wait when nobody opened it."""

    def __init__(self, fifo: Path) -> None:
        self.fifo = fifo
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            os.close(os.open(self.fifo, os.O_WRONLY))

    def stop(self) -> None:
        release_writer(self.fifo, self.thread)


def release_writer(fifo: Path, writer: threading.Thread) -> None:
    """End ``writer``'s open() of ``fifo`` for writing with a reader of our own,
    held open until that open() returns: a reader opened and closed before the
    thread got to its open() (a busy machine) left it waiting for ever."""
    while writer.is_alive():
        try:
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:  # gone: the writer's open fails too
            writer.join()
            return
        try:
            writer.join(0.05)
        finally:
            os.close(reader)


@pytest.mark.parametrize("accepted", [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
                         ids=["as-is", "converted"])
def test_a_file_swapped_for_a_fifo_fails_alone(tmp_path: Path, accepted: str) -> None:
    """Sent as it is (read into PDUs) or converted (read by pydicom, in a thread
    that the store waited for): both opened the FIFO."""
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n, rows=8, columns=8),
                          ExplicitVRLittleEndian) for n in range(3)]
    victim = files[1]
    writers: list[_Writer] = []

    def swap(result: StoreResult) -> None:
        if result.path == files[0]:
            victim.unlink()
            os.mkfifo(victim)
            writers.append(_Writer(victim))
            writers[-1].thread.start()

    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(store_response(request, 0))

    async def scenario() -> tuple[list[StoreResult], list[RawPeer]]:
        async with raw_scp(answer, contexts={SECONDARY_CAPTURE: [accepted]}) as (port, peers):
            return await store_paths("127.0.0.1", port, files, on_progress=swap), peers

    try:
        results, peers = run(scenario())
    finally:
        for writer in writers:
            writer.stop()
    assert [(r.ok, r.status, r.sent) for r in results] == [
        (True, 0, True), (False, None, False), (True, 0, True)]
    assert results[1].error == f"not sent: {victim} is no regular file any more"
    [peer] = peers
    assert [r.message.affected_sop_instance_uid for r in peer.requests  # type: ignore[union-attr]
            ] == [uid(9, 0), uid(9, 2)]
