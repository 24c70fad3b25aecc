"""A C-STORE-RSP whose Affected SOP Instance UID or Affected SOP Class UID is not
its request's (PS3.7 9.3.1.2: U(=), equal to the request's when present): its
status is not taken as this object's. ``store_paths`` had counted such an
object stored on the Success of an answer naming another object."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
from tests.aio.helpers import run
from tests.aio.rawscp import RawPeer, Request, response_pdu, store_into
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, uid, write_part10

OTHER = "1.2.826.0.1.3680043.10.543.99"


@pytest.mark.parametrize("field", ["affected_sop_instance_uid", "affected_sop_class_uid"])
@pytest.mark.parametrize("window", [1, 3], ids=["synchronous", "window-3"])
def test_an_answer_naming_another_object_is_not_its_answer(tmp_path: Path, field: str,
                                                           window: int) -> None:
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n, rows=8, columns=8),
                          ExplicitVRLittleEndian) for n in range(3)]

    async def answer(peer: RawPeer, request: Request) -> None:
        message = request.message
        assert isinstance(message, CStoreRQ)
        rsp = CStoreRSP(message_id_being_responded_to=message.message_id, status=0,
                        affected_sop_class_uid=message.affected_sop_class_uid,
                        affected_sop_instance_uid=message.affected_sop_instance_uid)
        if len(peer.requests) == 2:
            rsp = (replace(rsp, affected_sop_instance_uid=OTHER)
                   if field == "affected_sop_instance_uid"
                   else replace(rsp, affected_sop_class_uid=OTHER))
        await peer.send(response_pdu(request.context_id, rsp))

    results, ending = run(store_into(answer, files, window=window,
                                     timeouts=Timeouts(dimse=120)))
    assert ending == "release"  # the others are answered as they should be
    assert [(r.ok, r.status, r.sent) for r in results] == [
        (True, 0, True), (False, 0, True), (True, 0, True)]
    odd = results[1]
    what = ("SOP Instance UID" if field == "affected_sop_instance_uid" else "SOP Class UID")
    mine = (uid(9, 1) if field == "affected_sop_instance_uid"
            else f"Secondary Capture Image Storage ({SECONDARY_CAPTURE})")
    assert odd.error == (
        f"0x0000 (success: Success), but the answer names Affected {what} {OTHER}, not "
        f"this object's {mine} (PS3.7 9.3.1.2): not taken as its answer")
    assert (odd.retryable, odd.association_failed, odd.warning) == (False, False, False)
