"""What a server tells of an association that ends while its objects are being
written (``serve(on_connection_event=...)``, ``StorageSCP(on_stored=...)``, the
lines of ``dicomnet serve --json``): every object of it that became durable is
told before the association's end, so that a program reading the events sees
the objects of an association, then its end, never an object after it."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.server_events import AssociationEnded, ConnectionEvent
from dicomnet.services.storage import StorageSCP, StoredInstance
from dicomnet.services.store_sink import SPILL_THRESHOLD
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import AAbort, encode_pdata
from tests.aio.helpers import read_until_eof, run, running_server, wait_until
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10
from tests.storage.rawscu import RawAssociation, store_command


def _dataset(folder: Path, number: int) -> tuple[str, bytes]:
    path = write_part10(folder / f"{number}.dcm", make_image(number, rows=256, columns=256),
                        ExplicitVRLittleEndian)
    info = read_part10(path)
    return info.sop_instance_uid, path.read_bytes()[info.dataset_offset:]


def test_objects_stored_as_the_peer_aborts_are_told_before_the_association_ended(
        tmp_path: Path) -> None:
    """Eight C-STOREs in a window of eight, and the peer's A-ABORT in the same
    write: the server starts each as it arrives and the store thread writes them
    (fsync) while the loop reads the A-ABORT. The end was told at once, and the
    objects durable after it were told after it (as pynetdicom showed:
    association_ended "unanswered": 2, then two "stored" lines). Now the end
    waits for the store round: stored, then told, and not answered."""
    objects = [_dataset(tmp_path / "in", n) for n in range(8)]
    told: list[str] = []
    ended: list[AssociationEnded] = []

    def on_event(event: ConnectionEvent) -> None:
        if isinstance(event, AssociationEnded):
            told.append("ended")
            ended.append(event)

    def on_stored(instance: StoredInstance) -> None:
        told.append(instance.sop_instance_uid)

    async def main() -> None:
        scp = StorageSCP(tmp_path / "out", on_stored=on_stored)
        async with running_server(providers=[scp], on_connection_event=on_event) as server:
            peer = await RawAssociation.open(
                server.port, [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))],
                window=8)
            assert peer.window == 8
            ctx = peer.context_id(SECONDARY_CAPTURE)
            pdus: list[bytes] = []
            for message_id, (sop, data) in enumerate(objects, 1):
                pdus.append(encode_pdata(ctx, True, True, store_command(
                    SECONDARY_CAPTURE.encode(), sop.encode(), message_id)))
                pdus += peer.data_pdus(ctx, data)
            await peer.send(b"".join([*pdus, AAbort(source=0, reason=0).encode()]))
            await read_until_eof(peer.reader, 15.0)
            await peer.close()
            await wait_until(lambda: bool(ended), "the association's end")
        # The server closed: every store round has ended.

    run(main())
    stored = {read_part10(p).sop_instance_uid for p in (tmp_path / "out").rglob("*.dcm")}
    assert stored, "no object stored before the abort was read: the test proves nothing"
    assert told[-1] == "ended", told
    assert set(told[:-1]) == stored
    end = ended[0]
    assert (end.how, end.reason) == ("aborted", "its A-ABORT: service-user")
    # Those read with the A-ABORT are not performed (nobody to answer): at most 8.
    assert len(stored) <= end.objects <= 8
    assert sum(end.answers.values()) + end.unanswered == end.messages



@pytest.mark.parametrize("path", ["spilled", "handler"])
def test_an_object_committed_as_the_peer_aborts_is_told(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """An object is being written when the peer aborts: a 2 MiB one (past
    SPILL_THRESHOLD) by a worker thread's commit, a small one by the store
    thread when an on_c_store handler is set (no fast path). Its operation's
    task is cancelled; the write goes on (never a file half-named) and the
    object was stored and indexed, but never told to on_stored: a program
    following the --json "stored" lines missed an object the archive holds.
    Now what is stored and indexed is told, before the association's end; the
    handler is not run (its answer would go nowhere). The peer got no answer:
    it may send the object again, and the duplicate policy then applies.

    The write is held (in StorageSCP._place, in its thread) until the peer's
    A-ABORT has cancelled the operation: no timing."""
    rows = 1024 if path == "spilled" else 64
    source = write_part10(tmp_path / "in" / "x.dcm", make_image(7, rows=rows, columns=1024),
                          ExplicitVRLittleEndian)
    info = read_part10(source)
    data = source.read_bytes()[info.dataset_offset:]
    assert (len(data) > SPILL_THRESHOLD) == (path == "spilled")
    told: list[str] = []
    handled: list[str] = []
    tasks: list[asyncio.Task[object]] = []
    placing = threading.Event()
    place, handle = StorageSCP._place, StorageSCP.handle

    def held_place(self: StorageSCP, *args: Any, **kwargs: Any) -> Any:
        placing.set()
        for _ in range(1000):  # the operation cancelled, or 10 s
            if tasks and (tasks[0].cancelling() or tasks[0].done()):
                break
            time.sleep(0.01)
        return place(self, *args, **kwargs)

    async def recorded_handle(self: StorageSCP, *args: Any) -> Any:
        tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        return await handle(self, *args)

    monkeypatch.setattr(StorageSCP, "_place", held_place)
    monkeypatch.setattr(StorageSCP, "handle", recorded_handle)

    def on_event(event: ConnectionEvent) -> None:
        if isinstance(event, AssociationEnded):
            told.append("ended")

    def on_stored(instance: StoredInstance) -> None:
        told.append(instance.sop_instance_uid)

    async def on_c_store(instance: StoredInstance) -> None:
        handled.append(instance.sop_instance_uid)

    async def main() -> None:
        scp = StorageSCP(tmp_path / "out", on_stored=on_stored,
                         on_c_store=on_c_store if path == "handler" else None)
        async with running_server(providers=[scp], on_connection_event=on_event) as server:
            peer = await RawAssociation.open(
                server.port, [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))])
            ctx = peer.context_id(SECONDARY_CAPTURE)
            await peer.send(encode_pdata(ctx, True, True, store_command(
                SECONDARY_CAPTURE.encode(), info.sop_instance_uid.encode())),
                *peer.data_pdus(ctx, data))
            assert await asyncio.to_thread(placing.wait, 15.0), "never written"
            await peer.send(AAbort(source=0, reason=0).encode())
            await read_until_eof(peer.reader, 15.0)
            await peer.close()
            await wait_until(lambda: "ended" in told, "the association's end")

    run(main())
    stored = list((tmp_path / "out").rglob("*.dcm"))
    assert len(stored) == 1
    with StorageIndex(tmp_path / "out" / "index.sqlite") as index:
        row = index.get_instance(info.sop_instance_uid)
    assert row is not None and Path(row.relative_path).name == stored[0].name
    assert told == [info.sop_instance_uid, "ended"]
    assert handled == []
