"""A file the peer refused at negotiation (no context for its transfer syntax)
keeps that reason when the transfer is cancelled (a Ctrl-C) before its turn,
as it does when the association fails: "not sent: cancelled" hid it (53 of 60
RLE Lossless files in one run), as if the peer could have taken it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from dicomnet.services.storage import store_paths
from dicomnet.services.store_scu import StoreResult
from tests.aio.helpers import run
from tests.aio.rawscp import EXPLICIT_LE, IMPLICIT_LE, RawPeer, Request, raw_scp, store_response
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

U, R = ExplicitVRLittleEndian, RLELossless
#: Each file's transfer syntax, in the order they are sent (their names' order).
SYNTAXES = [U, U, U, R, U, R]
REFUSED = (f"the peer accepted no context for Secondary Capture Image Storage "
           f"({SECONDARY_CAPTURE}) in RLE Lossless ({RLELossless}) "
           "(compressed; not converted)")


def cancelled_after_first(tmp_path: Path, window: int) -> tuple[list[StoreResult], list[Path]]:
    """store_paths of SYNTAXES' files to a peer that takes uncompressed syntaxes
    only and answers the first C-STORE Success (no other), cancelled (as
    dicomnet store on a Ctrl-C) when ``on_progress`` hears of that first: the
    results, and the files ``on_progress`` heard of. Under a window of 2, the
    first two are out then."""
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n, rows=8, columns=8), syntax)
             for n, syntax in enumerate(SYNTAXES)]
    results: list[StoreResult] = []
    heard: list[Path] = []

    async def scenario() -> None:
        async def answer(peer: RawPeer, request: Request) -> None:
            if len(peer.requests) == 1:  # the others wait: the cancel comes first
                await peer.send(store_response(request, 0))

        def on_progress(result: StoreResult) -> None:
            heard.append(result.path)
            if len(heard) == 1:
                task.cancel()

        contexts = {SECONDARY_CAPTURE: [EXPLICIT_LE, IMPLICIT_LE]}
        async with raw_scp(answer, contexts=contexts, max_async_operations=window
                           ) as (port, _):
            task = asyncio.create_task(store_paths(
                "127.0.0.1", port, files, results=results, max_async_operations=window,
                on_progress=on_progress))
            with pytest.raises(asyncio.CancelledError):
                await task

    run(scenario())
    return results, heard


@pytest.mark.parametrize("window", [1, 2])
def test_a_refused_file_after_the_cancel_says_it_was_refused(tmp_path: Path,
                                                            window: int) -> None:
    results, heard = cancelled_after_first(tmp_path, window)
    assert [(r.ok, r.error, r.sent, r.retryable, r.association_failed) for r in results] == [
        (True, None, True, False, False),
        (False, "cancelled before an answer", True, False, False),
        (False, "not sent: cancelled", False, False, False),
        (False, REFUSED, False, False, False),  # was "not sent: cancelled"
        (False, "not sent: cancelled", False, False, False),
        (False, REFUSED, False, False, False)]
    # Its fate was not the cancel's: told as the others' (dicomnet store's report
    # takes those it heard of as they are).
    assert heard == [results[0].path, results[3].path, results[5].path]
