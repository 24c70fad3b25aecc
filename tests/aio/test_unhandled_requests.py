"""A request no service of the server performs is answered 0211H (Unrecognized
Operation, PS3.7 Annex C), not left for the peer's DIMSE timeout; the
association goes on."""

from __future__ import annotations

import logging

import pytest

from dicomnet.aio.client import associate
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CFindRQ, CFindRSP, NGetRQ, NGetRSP
from dicomnet.dimse.status import Status
from tests.aio.helpers import LOOPBACK, run, running_server

VERIFICATION = "1.2.840.10008.1.1"


def test_an_operation_nobody_performs_is_refused_and_the_association_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[object, object, Status]:
        async with running_server() as server, associate(
                LOOPBACK, server.port, timeouts=Timeouts(dimse=5)) as assoc:
            cid = assoc.context_for(VERIFICATION).context_id
            find, _ = await assoc.request_one(CFindRQ(
                message_id=assoc.dimse.next_message_id(),
                affected_sop_class_uid=VERIFICATION), cid, dataset=b"")
            get, _ = await assoc.request_one(NGetRQ(
                message_id=assoc.dimse.next_message_id(),
                requested_sop_class_uid=VERIFICATION,
                requested_sop_instance_uid="1.2.3"), cid)
            return find, get, await assoc.echo()

    with caplog.at_level(logging.WARNING, logger="dicomnet.aio"):
        find, get, echoed = run(main())
    assert isinstance(find, CFindRSP)
    assert (find.message_id_being_responded_to, find.status) == (1, 0x0211)
    assert find.affected_sop_class_uid == VERIFICATION
    assert find.error_comment == "C-FIND is not performed here"
    assert isinstance(get, NGetRSP)
    assert (get.message_id_being_responded_to, get.status) == (2, 0x0211)
    assert get.affected_sop_instance_uid == "1.2.3"
    assert get.error_comment == "N-GET is not performed here"
    assert int(echoed) == 0
    assert sum("which no service here handles: refused (0211H)" in r.getMessage()
               for r in caplog.records) == 2
