"""What store_paths says of an object across retries: one sent on an earlier
attempt and left unanswered, then not sent again before the last attempt
failed, may be held by the peer, and its result says so."""

from __future__ import annotations

from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.dimse.messages import CStoreRQ
from dicomnet.services.storage import store_paths
from dicomnet.services.store_scu import StoreResult
from dicomnet.ul.pdu import AAbort
from tests.aio.helpers import run
from tests.aio.rawscp import RawPeer, Request, raw_scp, store_response
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, uid, write_part10


def test_an_object_sent_before_and_not_sent_again_is_not_called_unsent(tmp_path: Path) -> None:
    """The peer reads each association's second C-STORE whole, then aborts. First
    attempt: 0 stored, 1 read and aborted on, 2 and 3 not sent. Retry (those
    never sent first): 2 stored, 3 read and aborted on, 1 not sent again. Object
    1 was at the peer whole on the first attempt, unanswered: it was reported
    "not sent: ..." with ``sent`` False, as if the peer could not hold it."""
    results, received = _aborted_on_each_second(tmp_path, retries=1)
    assert received == [[uid(9, 0), uid(9, 1)], [uid(9, 2), uid(9, 3)]]
    assert [(r.ok, r.status, r.attempts) for r in results] == [
        (True, 0, 1), (False, None, 2), (True, 0, 2), (False, None, 2)]
    once = results[1]
    assert once.sent
    assert once.error is not None
    assert once.error.startswith("not sent again: ")
    assert "an earlier attempt sent it, unanswered" in once.error
    # The object aborted on at the last attempt reads as before.
    assert results[3].sent and "abort" in (results[3].error or "")
    assert not (results[3].error or "").startswith("not sent")


def test_an_object_aborted_on_stays_behind_the_later_suspects(tmp_path: Path) -> None:
    """The peer aborts on each association's second C-STORE, read whole. Attempt
    1: 0 stored, aborted on 1. Attempt 2 (1 last): 2 stored, aborted on 3, 1 not
    sent again. The retry order looked only at that attempt: 1, not sent in it,
    went first on attempt 3, ahead of 3. The earlier suspect stays last."""
    results, received = _aborted_on_each_second(tmp_path, retries=2)
    assert received == [[uid(9, 0), uid(9, 1)], [uid(9, 2), uid(9, 3)],
                        [uid(9, 3), uid(9, 1)]]
    assert [(r.ok, r.status, r.attempts, r.sent) for r in results] == [
        (True, 0, 1, True), (False, None, 3, True), (True, 0, 2, True),
        (True, 0, 3, True)]


def _aborted_on_each_second(tmp_path: Path, *, retries: int
                            ) -> tuple[list[StoreResult], list[list[str]]]:
    """store_paths of four files to a peer that reads each association's second
    C-STORE whole, then aborts (answering the others Success): the results, and
    the SOP Instance UIDs each association received, in order."""
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n, rows=8, columns=8),
                          ExplicitVRLittleEndian) for n in range(4)]
    received: list[list[str]] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        assert isinstance(request.message, CStoreRQ)
        if len(peer.requests) == 1:
            received.append([])
        received[-1].append(request.message.affected_sop_instance_uid)
        if len(peer.requests) == 2:
            await peer.send(AAbort(source=0, reason=0).encode())
            peer.writer.close()
            return
        await peer.send(store_response(request, 0))

    async def scenario() -> list[StoreResult]:
        async with raw_scp(answer, contexts={SECONDARY_CAPTURE: [ExplicitVRLittleEndian]}
                           ) as (port, _):
            return await store_paths("127.0.0.1", port, files, retries=retries, retry_delay=0)

    return run(scenario()), received
