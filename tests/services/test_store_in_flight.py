"""store_paths under an asynchronous operations window (PS3.7 D.3.3.3): each
C-STORE sent and not answered is counted once, and settled once, whether its
answer (or the association's error) comes through send_request's callback,
through the exception of its send, or through both."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.transport import CLOSE_GRACE, Stream
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
from dicomnet.errors import AssociationAborted
from dicomnet.services import store_batch, store_scu
from dicomnet.services.storage import store_paths
from dicomnet.services.store_scu import StoreResult
from dicomnet.storage.files import StorageError
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import AcceptorPolicy, negotiate
from dicomnet.ul.pdu import AAbort, AssociateRQ, decode_pdu
from tests.aio.helpers import run
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10


@dataclass
class Spy:
    """The count of ``_InFlight`` as it went, and what each settling answered."""

    counts: list[int] = field(default_factory=list)
    settled: list[bool] = field(default_factory=list)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    seen = Spy()

    class Spied(store_batch.InFlight):
        def add(self, plan: store_batch.Plan) -> None:
            super().add(plan)
            seen.counts.append(self.count)

        def settle(self, plan: store_batch.Plan) -> bool:
            first = super().settle(plan)
            seen.settled.append(first)
            seen.counts.append(self.count)
            return first

    monkeypatch.setattr(store_batch, "InFlight", Spied)
    return seen


def _store_to_an_aborting_scp(tmp_path: Path) -> tuple[list[StoreResult], BaseException | None]:
    """store_paths of one 16 MB object to a peer that takes the command of its
    C-STORE and its first data PDU, then aborts and reads no more: the send is
    still writing (its transport's buffer full) when the association fails."""
    image = make_image(1)
    image.Rows = image.Columns = 4096
    image.PixelData = bytes(4096 * 4096)  # 16 MB: more than loopback's buffers hold
    big = write_part10(tmp_path / "big.dcm", image, ExplicitVRLittleEndian)
    policy = AcceptorPolicy(contexts={SECONDARY_CAPTURE: [ExplicitVRLittleEndian]},
                            max_async_operations=4)

    async def scenario() -> tuple[list[StoreResult], BaseException | None]:
        done = asyncio.Event()
        finished = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            async def pdu() -> bytes:
                head = await reader.readexactly(6)
                return head + await reader.readexactly(struct.unpack(">I", head[2:])[0])

            try:
                rq = decode_pdu(await pdu())
                assert isinstance(rq, AssociateRQ)
                writer.write(negotiate(rq, policy).encode())
                while (await pdu())[11] & 1:  # command PDVs, up to a data set one (PS3.8 E.2)
                    pass
                writer.write(AAbort(source=0, reason=0).encode())
                await done.wait()  # reading nothing more
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
                finished.set()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        results: list[StoreResult] = []
        error: BaseException | None = None
        try:
            await store_paths("127.0.0.1", server.sockets[0].getsockname()[1], [big],
                              max_async_operations=4, results=results)
        except AssociationAborted as exc:
            error = exc
        finally:
            done.set()
            await finished.wait()
            server.close()
            await server.wait_closed()
        return results, error

    return run(scenario(), timeout=60)


def test_abort_while_a_store_is_being_written_settles_it_once(
        tmp_path: Path, spy: Spy) -> None:
    """Its callback hears of the abort and its send raises it too: it was
    counted out twice (the count went to -1). Cut inside its data set, it is not
    sent (the peer cannot hold a partial object)."""
    results, error = _store_to_an_aborting_scp(tmp_path)
    assert isinstance(error, AssociationAborted)
    [result] = results
    assert (result.ok, result.status, result.sent) == (False, None, False)
    assert (result.error or "").startswith(f"not sent ({store_scu.PART_WAY}): ")
    assert "abort" in (result.error or "")
    # Its answer (the abort, through the callback) settled it; its send's exception
    # found it settled. The count never went below 0 and ended at 0.
    assert spy.settled == [True, False]
    assert spy.counts == [1, 0, 0]


def test_the_peers_abort_drops_what_it_will_never_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rest of the data set queued when the peer's A-ABORT came is dropped and
    the connection cut at once (PS3.8 AA-3: close the transport connection):
    the grace that lets a reading peer take what is queued first (CLOSE_GRACE)
    held store_paths 10 s on a peer that had aborted and read nothing more."""
    graces: list[float] = []
    close_soon = Stream.close_soon

    def spied(self: Stream, *, grace: float = CLOSE_GRACE) -> None:
        graces.append(grace)
        close_soon(self, grace=grace)

    monkeypatch.setattr(Stream, "close_soon", spied)
    results, error = _store_to_an_aborting_scp(tmp_path)
    assert isinstance(error, AssociationAborted)
    assert [r.ok for r in results] == [False]
    assert graces and set(graces) == {0}


def test_answered_before_its_file_changed_keeps_its_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer answering a C-STORE before its data set was sent whole, the file then
    changing under the send: the association is aborted, but the object keeps
    the answer it had, and is reported once. It got the file's error over its
    Success (ok and an error at once) and was reported twice."""
    path = write_part10(tmp_path / "a.dcm", make_image(1), ExplicitVRLittleEndian)
    info = read_part10(path)
    plan = store_batch.Plan.of(info, StoreResult(path=path, sop_instance_uid=info.sop_instance_uid))
    rq = CStoreRQ(message_id=1, affected_sop_class_uid=info.sop_class_uid,
                  affected_sop_instance_uid=info.sop_instance_uid)

    async def prepared(*_: object) -> tuple[CStoreRQ, int, None, bytes]:
        return rq, 1, None, b""

    monkeypatch.setattr(store_batch, "prepare_file", prepared)

    class Association:
        async_window = 4
        failure: BaseException | None = None
        sent_whole: CStoreRQ | None = None
        aborted = False

        async def abort(self) -> None:
            self.aborted = True

        async def send_request(self, message: CStoreRQ, context_id: int,
                               on_reply: object, **_: object) -> None:
            assert callable(on_reply)
            on_reply((CStoreRSP(message_id_being_responded_to=1, status=0,
                                affected_sop_class_uid=info.sop_class_uid,
                                affected_sop_instance_uid=info.sop_instance_uid), None))
            raise StorageError(f"{path} changed while it was sent")

    assoc = Association()
    reported: list[tuple[bool, str | None]] = []

    async def scenario() -> None:
        await store_batch.send_batch(assoc, [plan],  # type: ignore[arg-type]
                                    lambda r: reported.append((r.ok, r.error)))

    with pytest.raises(AssociationAborted, match="a file changed while it was sent"):
        run(scenario())
    assert assoc.aborted
    assert (plan.result.ok, plan.result.status, plan.result.error) == (True, 0, None)
    assert reported == [(True, None)]
