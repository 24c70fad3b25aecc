"""What an ``on_c_store`` handler may answer: a status a C-STORE-RSP can carry
(PS3.4 B.2.3). Pending (FF00H, FF01H) and Cancel (FE00H) belong to the
operations that have several responses or a C-CANCEL (PS3.7 9.1.2-9.1.4,
Annex C); a C-STORE has one response and no cancel, so a handler answering one
is a handler bug: the object is answered Processing Failure (0110H), as for
any answer that is not a status, and the server logs why."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.dimse.messages import CStoreRSP
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

    async def scenario() -> object:
        scp = StorageSCP(root, on_c_store=hook)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                assoc = await RawAssociation.open(server.port, CONTEXT)
                await assoc.send_store(assoc.context_id(SECONDARY_CAPTURE),
                                       store_command(info.sop_class_uid.encode(),
                                                     info.sop_instance_uid.encode()), data)
                rsp = await assoc.outcome()
                await assoc.release()
                return rsp
        finally:
            scp.close()

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        rsp = run(scenario())
    assert isinstance(rsp, CStoreRSP)
    assert (rsp.status, rsp.error_comment) == (PROCESSING_FAILURE,
                                               "the server's C-STORE handler failed")
    (logged,) = [r.getMessage() for r in caplog.records if "on_c_store handler" in r.getMessage()]
    assert "PS3.4 B.2.3" in logged
    # Stored all the same: the handler runs once the object is durable.
    (stored,) = root.rglob("*.dcm")
    assert stored.read_bytes()[read_part10(stored).dataset_offset:] == data
