"""dicomnet's client against pynetdicom as a C-FIND SCP (Patient Root, plain
DICOM): a find whose caller leaves after its first match is cancelled.

The client sends a C-CANCEL-RQ naming the find (PS3.7 9.1.2.1), which
pynetdicom's handler sees as ``event.is_cancelled``: it stops there and answers
Cancel (FE00H) instead of sending its 200 matches, and the echo behind the
find, kept out of the single slot of the window until that final response
(PS3.7 D.3.3.3), is answered then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from dicomnet.aio.client import associate
from dicomnet.dimse.messages import CFindRQ
from tests.aio.helpers import LOOPBACK, run

pytestmark = pytest.mark.interop

VERIFICATION = "1.2.840.10008.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
MATCHES = 200
#: How long the handler waits for the C-CANCEL after its first match, at most.
CANCEL_WAIT = 20.0


def test_a_find_left_after_its_first_match_is_cancelled(pynetdicom: ModuleType) -> None:
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    from dicomnet.ul.negotiation import ContextRequest

    seen: dict[str, Any] = {"sent": 0, "cancelled": False}

    def on_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        for number in range(MATCHES):
            cancelled = False
            if number == 1:
                # Our C-CANCEL follows the first match; pynetdicom may otherwise
                # send all 200 before it reads it (seen once in a loaded CI run): the
                # handler gives it a generous while to come (a bound, not a
                # condition). is_cancelled says so once: pynetdicom forgets it then.
                deadline = time.monotonic() + CANCEL_WAIT
                while not cancelled and time.monotonic() < deadline:
                    cancelled = event.is_cancelled
                    if not cancelled:
                        time.sleep(0.01)
            if cancelled or event.is_cancelled:
                seen["cancelled"] = True
                yield 0xFE00, None
                return
            match = Dataset()
            match.QueryRetrieveLevel = "PATIENT"
            match.PatientID = f"P{number}"
            seen["sent"] += 1
            yield 0xFF00, match
        yield 0x0000, None

    ae = pynetdicom.AE(ae_title="FINDSCP")
    ae.add_supported_context(PATIENT_ROOT_FIND, IMPLICIT_LE)
    ae.add_supported_context(VERIFICATION, IMPLICIT_LE)
    server = ae.start_server((LOOPBACK, 0), block=False,
                             evt_handlers=[(pynetdicom.evt.EVT_C_FIND, on_find)])
    port = server.server_address[1]

    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.PatientID = ""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, query)
    identifier = buffer.getvalue()

    async def main() -> tuple[list[int], int]:
        contexts = [ContextRequest(PATIENT_ROOT_FIND, (IMPLICIT_LE,)),
                    ContextRequest(VERIFICATION, (IMPLICIT_LE,))]
        async with associate(LOOPBACK, port, contexts=contexts) as assoc:
            context_id = assoc.context_for(PATIENT_ROOT_FIND).context_id
            find = CFindRQ(message_id=assoc.dimse.next_message_id(),
                           affected_sop_class_uid=PATIENT_ROOT_FIND)
            statuses: list[int] = []
            replies = assoc.request(find, context_id, dataset=identifier)
            async for rsp, _ in replies:
                statuses.append(rsp.status)  # type: ignore[union-attr]
                break
            await replies.aclose()  # type: ignore[attr-defined]
            echo = int(await asyncio.wait_for(assoc.echo(), 20))
        return statuses, echo

    try:
        statuses, echo = run(main())
    finally:
        server.shutdown()
        ae.shutdown()
    assert statuses == [0xFF00] and echo == 0x0000
    assert seen["cancelled"] is True, seen
    assert seen["sent"] < MATCHES
