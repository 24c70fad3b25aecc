"""The asynchronous operations window of a server association (PS3.7 D.3.3.3):
``OperationsWindow``, and messages started from the read callback while the
association's task waits (``ServerAssociation._deliver``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.association import Association
from dicomnet.aio.client import associate
from dicomnet.aio.operations import OperationsWindow
from dicomnet.aio.server import ServerAssociation
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
from dicomnet.errors import DicomNetError
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import LOOPBACK, run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE, store_payloads

SYNTAX = str(ExplicitVRLittleEndian)


def test_the_window_hands_slots_first_come_first_served() -> None:
    async def main() -> list[str]:
        window = OperationsWindow(2)
        assert window.try_take() and window.try_take()
        assert not window.try_take()
        order: list[str] = []

        async def wait(name: str) -> None:
            await window.take()
            order.append(name)

        first = asyncio.ensure_future(wait("first"))
        second = asyncio.ensure_future(wait("second"))
        await asyncio.sleep(0)
        assert order == []
        window.release()
        await asyncio.sleep(0)
        assert order == ["first"]
        assert not window.try_take()  # "second" waits: no overtaking it
        window.release()
        await asyncio.gather(first, second)
        window.release()
        window.release()
        assert window.try_take() and window.try_take() and not window.try_take()
        return order

    assert run(main()) == ["first", "second"]


def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    async def main() -> bool:
        window = OperationsWindow(1)
        assert window.try_take()
        doomed = asyncio.ensure_future(window.take())
        heir = asyncio.ensure_future(window.take())
        await asyncio.sleep(0)
        window.release()  # handed to "doomed"...
        doomed.cancel()  # ...which is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await doomed
        await asyncio.wait_for(heir, 2)  # the slot went on to the next waiter
        cancelled = asyncio.ensure_future(window.take())
        await asyncio.sleep(0)
        cancelled.cancel()  # cancelled while waiting: leaves the queue
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        window.release()
        return window.try_take()

    assert run(main())


def _objects(tmp_path: Path, count: int) -> list[tuple[str, bytes]]:
    return store_payloads(tmp_path / "in", count)


async def _store_all(port: int, objects: list[tuple[str, bytes]], window: int) -> list[int]:
    async with associate(LOOPBACK, port, max_async_operations=window,
                         contexts=[ContextRequest(SECONDARY_CAPTURE, (SYNTAX,))]) as assoc:
        ctx = assoc.context_for(SECONDARY_CAPTURE).context_id
        replies = await asyncio.gather(*[assoc.request_one(
            CStoreRQ(message_id=n + 1, affected_sop_class_uid=SECONDARY_CAPTURE,
                     affected_sop_instance_uid=uid), ctx, dataset=data)
            for n, (uid, data) in enumerate(objects)])
    statuses = []
    for rsp, _ in replies:
        assert isinstance(rsp, CStoreRSP)
        statuses.append(rsp.status)
    return statuses


@pytest.mark.parametrize("window", [1, 8])
def test_stores_start_without_waking_the_task(tmp_path: Path, window: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Each C-STORE received in memory is started from the read callback, in order,
    within the window; the association's task wakes only for the association's
    own events (request, release), not once per object."""
    objects = _objects(tmp_path, 12)
    started: list[int] = []
    wakes: list[int] = []
    real_start_now = ServerAssociation._start_now
    real_read_events = Association._read_events

    def start_now(self: ServerAssociation, messages: list[Any]) -> tuple[list[Any], Any]:
        rest, error = real_start_now(self, messages)
        started.extend(m.message_id for _, m, _ in messages[:len(messages) - len(rest)])
        return rest, error

    async def read_events(self: Association) -> list[Any]:
        wakes.append(1)
        return await real_read_events(self)

    monkeypatch.setattr(ServerAssociation, "_start_now", start_now)
    monkeypatch.setattr(Association, "_read_events", read_events)

    async def main() -> list[int]:
        scp = StorageSCP(tmp_path / "out")
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return await _store_all(server.port, objects, window)
        finally:
            scp.close()

    assert run(main(), timeout=30) == [0] * len(objects)
    assert started == sorted(started) and len(started) >= len(objects) // 2
    assert len(wakes) < len(objects)
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == len(objects)


def test_a_start_that_raises_aborts_the_association(tmp_path: Path) -> None:
    """An error from ``start`` called from the read callback ends the association,
    as it does from the task: the peer hears of it, nothing is left half-done."""
    objects = _objects(tmp_path, 1)

    class BrokenSCP(StorageSCP):
        def start(self, *args: Any) -> bool:
            raise RuntimeError("no more store thread")

    async def main() -> BaseException | None:
        scp = BrokenSCP(tmp_path / "out")
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                try:
                    await _store_all(server.port, objects, 1)
                except DicomNetError as exc:
                    return exc
                return None
        finally:
            scp.close()

    started = time.monotonic()
    error = run(main(), timeout=30)
    assert error is not None and "abort" in str(error).lower()
    assert time.monotonic() - started < 25  # not the DIMSE timeout
    assert list((tmp_path / "out").rglob("*.dcm")) == []
