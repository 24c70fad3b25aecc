"""``store_paths(results=[...])``: a cancelled transfer still says what became of
each file. The cancel raises ``CancelledError`` (asyncio's contract: timeouts and
task groups rely on it), so the results are in the caller's list, each in the
words ``dicomnet store`` uses after a Ctrl-C. The peer is hand-driven
(tests/aio/rawscp.py): it answers, holds or refuses each C-STORE as told."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet import blocking
from dicomnet.errors import ConfigurationError
from dicomnet.services.storage import RetryEvent, StoreResult, store_paths
from tests.aio.helpers import run
from tests.aio.rawscp import RawPeer, Request, raw_scp, store_response
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

LOOPBACK = "127.0.0.1"
CONTEXTS = {SECONDARY_CAPTURE: [str(ExplicitVRLittleEndian)]}
OUT_OF_RESOURCES = 0xA700


def _files(folder: Path, count: int) -> list[Path]:
    return [write_part10(folder / f"{n:02d}.dcm", make_image(n, rows=8, columns=8),
                         ExplicitVRLittleEndian) for n in range(count)]


def _row(result: StoreResult) -> tuple[object, ...]:
    return (result.path.name, result.ok, result.status, result.error, result.sent,
            result.retryable, result.attempts)


def test_a_cancel_mid_transfer_leaves_every_file_said(tmp_path: Path) -> None:
    """The first object answered, the second out and held by the peer, the third
    not sent: before, the cancel lost them all (on_progress had heard of one)."""
    files = _files(tmp_path, 3)
    heard: list[StoreResult] = []
    results: list[StoreResult] = []

    async def scenario() -> list[RawPeer]:
        held, go_on = asyncio.Event(), asyncio.Event()

        async def answer(peer: RawPeer, request: Request) -> None:
            if len(peer.requests) == 2:
                held.set()
                await go_on.wait()
            else:
                await peer.send(store_response(request, 0x0000))

        async with raw_scp(answer, contexts=CONTEXTS) as (port, peers):
            task = asyncio.create_task(store_paths(LOOPBACK, port, files, results=results,
                                                   on_progress=heard.append,
                                                   max_async_operations=1))
            await asyncio.wait_for(held.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            go_on.set()
            await asyncio.wait_for(peers[0].ended.wait(), 10)
            return peers

    peers = run(scenario())
    assert [_row(r) for r in results] == [
        ("00.dcm", True, 0x0000, None, True, False, 1),
        ("01.dcm", False, None, "cancelled before an answer", True, False, 1),
        ("02.dcm", False, None, "not sent: cancelled", False, False, 1),
    ]
    assert [r.path.name for r in heard] == ["00.dcm"]
    assert peers[0].ending == "abort"  # the association was aborted, not released


def test_a_cancel_during_the_retry_wait_keeps_the_last_answer(tmp_path: Path) -> None:
    """Refused Out of Resources, waiting for its retry: its answer stays, with why
    it was not sent again; no longer retryable (nothing will send it)."""
    files = _files(tmp_path, 1)
    results: list[StoreResult] = []

    async def scenario() -> None:
        waiting = asyncio.Event()

        def on_retry(event: RetryEvent) -> None:
            waiting.set()

        async def answer(peer: RawPeer, request: Request) -> None:
            await peer.send(store_response(request, OUT_OF_RESOURCES, "disk full"))

        async with raw_scp(answer, contexts=CONTEXTS) as (port, peers):
            task = asyncio.create_task(store_paths(LOOPBACK, port, files, results=results,
                                                   retries=2, retry_delay=60,
                                                   on_retry=on_retry))
            await asyncio.wait_for(waiting.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(peers[0].ended.wait(), 10)

    run(scenario())
    assert [_row(r) for r in results] == [
        ("00.dcm", False, OUT_OF_RESOURCES, "disk full; cancelled before it was sent again",
         True, False, 1),
    ]


def test_the_results_list_is_the_one_returned(tmp_path: Path) -> None:
    """The blocking API passes it on; a finished run returns that very list."""
    files = _files(tmp_path, 2)
    results: list[StoreResult] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(store_response(request, 0x0000))

    async def scenario() -> list[StoreResult]:
        async with raw_scp(answer, contexts=CONTEXTS) as (port, _):
            return await asyncio.to_thread(blocking.store, LOOPBACK, port, files,
                                           results=results)

    returned = run(scenario())
    assert returned is results
    assert [(r.path, r.status) for r in results] == [(files[0], 0), (files[1], 0)]


def test_a_results_list_must_be_empty(tmp_path: Path) -> None:
    files = _files(tmp_path, 1)
    with pytest.raises(ConfigurationError, match="results must be an empty list"):
        run(store_paths(LOOPBACK, 104, files, results=[StoreResult(path=files[0])]))
