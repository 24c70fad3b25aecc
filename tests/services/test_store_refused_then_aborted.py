"""A file the peer refused at negotiation (no context for its transfer syntax)
keeps that reason when the association fails before its turn: "not sent:
association aborted" hid it, and called it retryable, so --retries sent it
again to be refused again."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from dicomnet.services.storage import store_paths
from dicomnet.services.store_scu import StoreResult
from dicomnet.ul.pdu import AAbort
from tests.aio.helpers import run
from tests.aio.rawscp import EXPLICIT_LE, IMPLICIT_LE, RawPeer, Request, raw_scp, store_response
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

#: Each file's transfer syntax, in the order they are sent (their names' order).
SYNTAXES = [ExplicitVRLittleEndian, RLELossless, ExplicitVRLittleEndian, RLELossless]
REFUSED = (f"the peer accepted no context for Secondary Capture Image Storage "
           f"({SECONDARY_CAPTURE}) in RLE Lossless ({RLELossless}) "
           "(compressed; not converted)")
ABORTED = "association aborted by the peer (its A-ABORT: service-user)"


def refused_then_aborted(tmp_path: Path, *, stored: int, retries: int = 0,
                         window: int = 1) -> tuple[list[StoreResult], list[int]]:
    """store_paths of SYNTAXES' files to a peer that takes uncompressed syntaxes
    only, answers ``stored`` C-STOREs Success, then aborts on the next one:
    the results, and how many C-STOREs each association received."""
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n, rows=8, columns=8), syntax)
             for n, syntax in enumerate(SYNTAXES)]
    received: list[int] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        if len(peer.requests) == 1:
            received.append(0)
        received[-1] += 1
        if len(peer.requests) > stored:
            await peer.send(AAbort(source=0, reason=0).encode())
            peer.writer.close()
            return
        await peer.send(store_response(request, 0))

    async def scenario() -> list[StoreResult]:
        contexts = {SECONDARY_CAPTURE: [EXPLICIT_LE, IMPLICIT_LE]}
        async with raw_scp(answer, contexts=contexts, max_async_operations=window
                           ) as (port, _):
            return await store_paths("127.0.0.1", port, files, retries=retries,
                                     retry_delay=0, results=results)

    results: list[StoreResult] = []
    try:
        run(scenario())
    except Exception as exc:  # nothing stored: the abort is raised, results kept
        assert str(exc) == ABORTED
    return results, received


@pytest.mark.parametrize("window", [1, 4])
def test_a_refused_file_after_the_abort_says_it_was_refused(tmp_path: Path,
                                                           window: int) -> None:
    results, received = refused_then_aborted(tmp_path, stored=1, window=window)
    assert received == [2]
    assert [(r.ok, r.error, r.retryable, r.association_failed) for r in results] == [
        (True, None, False, False),
        (False, REFUSED, False, False),
        (False, ABORTED, True, True),
        (False, REFUSED, False, False)]  # was "not sent: association aborted...", retryable
    assert [r.sent for r in results] == [True, False, True, False]


def test_a_refused_file_is_not_sent_again_by_retries(tmp_path: Path) -> None:
    """Nothing stored: the peer aborts on every association's first C-STORE. Only
    the uncompressed files are tried again; each refusal is told once."""
    results, received = refused_then_aborted(tmp_path, stored=0, retries=1)
    assert received == [1, 1]
    assert [(r.error, r.attempts, r.association_failed) for r in results] == [
        # Sent first, unanswered: last on the retry, which ends before its turn.
        (f"not sent again: {ABORTED}; an earlier attempt sent it, unanswered", 2, True),
        (REFUSED, 1, False),
        (ABORTED, 2, True),
        (REFUSED, 1, False)]
    assert [r.to_dict()["association_failed"] for r in results] == [True, False, True, False]
