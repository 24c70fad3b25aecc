"""What an ``on_c_store`` handler may answer: a status a C-STORE-RSP can carry
(PS3.4 B.2.3). Pending (FF00H, FF01H) and Cancel (FE00H) belong to the
operations that have several responses or a C-CANCEL (PS3.7 9.1.2-9.1.4,
Annex C); a C-STORE has one response and no cancel, so a handler answering one
is a handler bug: the object is answered Processing Failure (0110H), as for
any answer that is not a status, and the server logs why."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.dimse.messages import CStoreRSP, DimseMessage
from dicomnet.dimse.status import Status
from dicomnet.services.storage import HookAnswer, StorageSCP, StoredInstance
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10
from tests.storage.rawscu import RawAssociation, store_command

PROCESSING_FAILURE = 0x0110
CONTEXT = [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))]


def _answers(root: Path, hook: object, files: list[Path]) -> list[DimseMessage | str]:
    """Each file's data set C-STOREd in turn on one raw association to a StorageSCP
    with ``hook`` for ``on_c_store``, and each answer (or why none came)."""

    async def scenario() -> list[DimseMessage | str]:
        scp = StorageSCP(root, on_c_store=hook)  # type: ignore[arg-type]
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                assoc = await RawAssociation.open(server.port, CONTEXT)
                answers: list[DimseMessage | str] = []
                for n, path in enumerate(files):
                    info = read_part10(path)
                    await assoc.send_store(
                        assoc.context_id(SECONDARY_CAPTURE),
                        store_command(info.sop_class_uid.encode(),
                                      info.sop_instance_uid.encode(), message_id=n + 1),
                        path.read_bytes()[info.dataset_offset:])
                    # Bounded only so that a server that never answers fails the test.
                    answers.append(await assoc.outcome(timeout=10))
                await assoc.release()
                return answers
        finally:
            scp.close()

    return run(scenario())


@pytest.mark.parametrize("answer", [
    0xFF00, 0xFF01, 0xFE00, Status(0xFF00), (0xFF01, "more to come"),
], ids=["pending", "pending-warning", "cancel", "pending-status-object", "pending-comment"])
def test_a_handler_answering_a_status_no_c_store_has_costs_a_processing_failure(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, answer: HookAnswer) -> None:
    path = write_part10(tmp_path / "in.dcm", make_image(1), ExplicitVRLittleEndian)
    info = read_part10(path)
    data = path.read_bytes()[info.dataset_offset:]
    root = tmp_path / "out"

    def hook(instance: StoredInstance) -> HookAnswer:
        return answer

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        (rsp,) = _answers(root, hook, [path])
    assert isinstance(rsp, CStoreRSP)
    assert (rsp.status, rsp.error_comment) == (PROCESSING_FAILURE,
                                               "the server's C-STORE handler failed")
    (logged,) = [r.getMessage() for r in caplog.records if "on_c_store handler" in r.getMessage()]
    assert "PS3.4 B.2.3" in logged
    # Stored all the same: the handler runs once the object is durable.
    (stored,) = root.rglob("*.dcm")
    assert stored.read_bytes()[read_part10(stored).dataset_offset:] == data


async def _cancels_itself(instance: StoredInstance) -> None:
    raise asyncio.CancelledError


async def _awaits_what_another_cancels(instance: StoredInstance) -> None:
    loop = asyncio.get_running_loop()
    waited: asyncio.Future[None] = loop.create_future()
    loop.call_soon(waited.cancel)  # a lookup another task gave up on, say
    await waited


def _raises_cancelled_in_its_thread(instance: StoredInstance) -> None:
    raise asyncio.CancelledError


@pytest.mark.parametrize("hook", [
    _cancels_itself, _awaits_what_another_cancels, _raises_cancelled_in_its_thread,
], ids=["async-raises-it", "async-awaits-a-cancelled-future", "sync-raises-it"])
def test_a_handler_raising_cancelled_error_is_a_failing_handler(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, hook: object) -> None:
    """A CancelledError the handler raises itself, its association going on, is
    the handler's failure (0110H), as any exception it raises. It was taken for
    the operation's own cancellation: the C-STORE was never answered, the
    sender waited into its DIMSE timeout (pynetdicom: 'DIMSE timeout reached',
    then aborted), and the association counted it unanswered."""
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
             for n in range(2)]
    root = tmp_path / "out"
    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        answers = _answers(root, hook, files)
    assert all(isinstance(a, CStoreRSP) for a in answers), answers
    assert [(a.status, a.error_comment) for a in answers if isinstance(a, CStoreRSP)
            ] == [(PROCESSING_FAILURE, "the server's C-STORE handler failed")] * 2
    failed = [r for r in caplog.records if "on_c_store handler failed" in r.getMessage()]
    assert len(failed) == 2
    assert all(r.exc_info is not None and isinstance(r.exc_info[1], asyncio.CancelledError)
               for r in failed)
    assert len(list(root.rglob("*.dcm"))) == 2  # stored all the same


def test_an_error_comment_is_one_lo_value_whatever_the_handler_says(tmp_path: Path) -> None:
    """The Error Comment (0000,0902) is LO, VM 1 (PS3.7 C.4, PS3.5 6.2): no
    backslash (the value delimiter) and no control character. A handler's
    'C:\\queue\\full' went as three values (pynetdicom: 'Non-conformant VM 3
    for ErrorComment, taking the first value', the peer read 'C:'), and a line
    break as is; each is now a '?', as a character outside the repertoire is."""
    path = write_part10(tmp_path / "in.dcm", make_image(1), ExplicitVRLittleEndian)
    info = read_part10(path)

    def hook(instance: StoredInstance) -> HookAnswer:
        return 0xC001, "C:\\queue\\full\r\nretry\tlater \x1b(B"

    async def scenario() -> object:
        scp = StorageSCP(tmp_path / "out", on_c_store=hook)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                assoc = await RawAssociation.open(server.port, CONTEXT)
                await assoc.send_store(assoc.context_id(SECONDARY_CAPTURE),
                                       store_command(info.sop_class_uid.encode(),
                                                     info.sop_instance_uid.encode()),
                                       path.read_bytes()[info.dataset_offset:])
                rsp = await assoc.outcome()
                await assoc.release()
                return rsp
        finally:
            scp.close()

    rsp = run(scenario())
    assert isinstance(rsp, CStoreRSP)
    assert (rsp.status, rsp.error_comment) == (0xC001, "C:?queue?full??retry?later ?(B")


@pytest.mark.parametrize("answer", [
    [0xA700, "no room"], {0xA700}, (0xA700, ["no room"]), 0x10000, -1, True, "0000",
], ids=["list", "set", "unhashable-comment", "too-large", "negative", "bool", "text"])
def test_a_handler_answering_what_is_no_status_costs_a_processing_failure(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, answer: object) -> None:
    """Whatever a handler returns that is no status (with its comment), hashable
    or not, costs its object a Processing Failure, the association going on. A
    list or a set raised TypeError in the look for Pending: the association was
    aborted as an internal error, the object left unanswered."""
    paths = [write_part10(tmp_path / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
             for n in (1, 2)]

    def hook(instance: StoredInstance) -> object:
        return answer if instance.sop_instance_uid.endswith(".1") else None

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        first, second = _answers(tmp_path / "out", hook, paths)
    assert isinstance(first, CStoreRSP) and isinstance(second, CStoreRSP)
    assert (first.status, first.error_comment) == (PROCESSING_FAILURE,
                                                   "the server's C-STORE handler failed")
    assert second.status == 0x0000
    (logged,) = [r.getMessage() for r in caplog.records if "on_c_store handler" in r.getMessage()]
    assert "not a status (0 to 0xFFFF)" in logged
