"""C-STOREs received in memory are answered by the store thread's callback, without
a task per request (``StorageSCP.start``, ``ServerAssociation.answer_for``): every
answer still goes out, in the window, before the A-RELEASE-RP (PS3.7 D.3.3.3);
an answer that must wait for the wire goes through a task; a failure that is no
storage status aborts the association."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.association import Association
from dicomnet.aio.client import associate
from dicomnet.aio.transport import Receiver
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP, DimseMessage
from dicomnet.errors import DicomNetError
from dicomnet.services.storage import StorageSCP, StoredInstance
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import LOOPBACK, run, running_server, wait_until
from tests.storage.dicomfiles import SECONDARY_CAPTURE, store_payloads

SYNTAX = str(ExplicitVRLittleEndian)
COUNT = 6


def _objects(tmp_path: Path) -> list[tuple[str, bytes]]:
    return store_payloads(tmp_path / "in", COUNT)


class SlowSCP(StorageSCP):
    """Finishes each store round late, so that requests wait for their answers; counts
    the jobs it started."""

    def __init__(self, *args: Any, delay: float = 0.3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay = delay
        self.started = 0

    def _start_round(self, jobs: list[Any]) -> Any:
        self.started += len(jobs)
        return super()._start_round(jobs)

    def _finish_round(self, started: Any) -> Any:
        time.sleep(self.delay)
        return super()._finish_round(started)


async def _send_all(port: int, objects: list[tuple[str, bytes]], scp: SlowSCP, *,
                    release_early: bool) -> list[int]:
    async with associate(LOOPBACK, port, max_async_operations=8,
                         contexts=[ContextRequest(SECONDARY_CAPTURE, (SYNTAX,))]) as assoc:
        ctx = assoc.context_for(SECONDARY_CAPTURE).context_id
        tasks = [asyncio.ensure_future(assoc.request_one(
            CStoreRQ(message_id=n + 1, affected_sop_class_uid=SECONDARY_CAPTURE,
                     affected_sop_instance_uid=uid), ctx, dataset=data))
            for n, (uid, data) in enumerate(objects)]
        await wait_until(lambda: scp.started == len(objects), "every store started")
        if release_early:
            # A-RELEASE-RQ while every answer is outstanding: the server must send
            # them all before its A-RELEASE-RP.
            await assoc.release()
        replies = await asyncio.gather(*tasks)
    statuses = []
    for rsp, _ in replies:
        assert isinstance(rsp, CStoreRSP)
        statuses.append(rsp.status)
    return statuses


@pytest.mark.parametrize("release_early", [False, True], ids=["answers-then-release",
                                                              "release-while-storing"])
def test_every_answer_comes_before_the_release(tmp_path: Path, release_early: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    objects = _objects(tmp_path)
    sent: list[int] = []
    original = Association.send_now

    def counting(self: Association, message: DimseMessage, context_id: int) -> None:
        sent.append(getattr(message, "message_id_being_responded_to", -1))
        original(self, message, context_id)

    async def main() -> list[int]:
        scp = SlowSCP(tmp_path / "out")
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return await _send_all(server.port, objects, scp, release_early=release_early)
        finally:
            scp.close()

    monkeypatch.setattr(Association, "send_now", counting)
    statuses = run(main(), timeout=20)
    assert statuses == [0] * COUNT
    # Answered by the callbacks, not by tasks, and in order.
    assert sent == list(range(1, COUNT + 1))
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == COUNT


def test_an_answer_waits_for_a_peer_that_does_not_read(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Under write pressure an answer is sent by a task that waits for the wire."""
    objects = _objects(tmp_path)
    original_init = Receiver.__init__

    def pressed(self: Receiver) -> None:
        original_init(self)
        self.writing_paused = True  # as if the peer had stopped reading

    def refuse(self: Association, message: DimseMessage, context_id: int) -> None:
        raise AssertionError("answered at once under write pressure")

    monkeypatch.setattr(Receiver, "__init__", pressed)
    monkeypatch.setattr(Association, "send_now", refuse)

    async def main() -> list[int]:
        scp = SlowSCP(tmp_path / "out", delay=0.0)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return await _send_all(server.port, objects, scp, release_early=False)
        finally:
            scp.close()

    assert run(main(), timeout=20) == [0] * COUNT


def test_a_failure_that_is_no_status_aborts(tmp_path: Path) -> None:
    """An unexpected error in the store thread ends the association (as a failed
    operation task did), rather than leaving the request unanswered."""
    objects = _objects(tmp_path)[:1]

    class BrokenSCP(SlowSCP):
        def _finish_round(self, started: Any) -> Any:
            raise RuntimeError("disk controller on fire")

    async def main() -> BaseException | None:
        scp = BrokenSCP(tmp_path / "out", delay=0.0)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                try:
                    await _send_all(server.port, objects, scp, release_early=False)
                except DicomNetError as exc:
                    return exc
                return None
        finally:
            scp.close()

    error = run(main(), timeout=20)
    assert error is not None
    assert "abort" in str(error).lower()


def test_a_handler_still_runs_in_a_task(tmp_path: Path) -> None:
    """With an ``on_c_store`` handler the store is answered after it ran, its status
    included (the task path)."""
    objects = _objects(tmp_path)
    seen: list[str] = []

    async def handler(instance: StoredInstance) -> int:
        await asyncio.sleep(0)
        seen.append(instance.sop_instance_uid)
        return 0xB000 if len(seen) == 1 else 0

    async def main() -> list[int]:
        scp = SlowSCP(tmp_path / "out", delay=0.0, on_c_store=handler)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return await _send_all(server.port, objects, scp, release_early=False)
        finally:
            scp.close()

    statuses = run(main(), timeout=20)
    assert sorted(statuses) == [0] * (COUNT - 1) + [0xB000]
    assert sorted(seen) == sorted(uid for uid, _ in objects)
