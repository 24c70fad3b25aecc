"""A C-ECHO-RQ is a request of the Verification SOP Class (PS3.4 A.4: UID
1.2.840.10008.1.1), sent on a presentation context negotiated for it (PS3.4 A.5).
One sent on another context (a storage SOP Class's), or naming another SOP
Class, is not a verification: it is answered 0122H, Refused: SOP Class not
supported (PS3.7 9.1.5.1.4), and logged, as a C-STORE-RQ whose SOP Class differs
from its context's already is (tests/storage/test_scp_consistency.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.dimse.messages import CEchoRQ, CEchoRSP, encode_message
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import encode_pdata
from tests.aio.helpers import log_lines, run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE
from tests.storage.rawscu import RawAssociation

VERIFICATION = "1.2.840.10008.1.1"
SOP_CLASS_NOT_SUPPORTED = 0x0122

CASES = {
    # (context the C-ECHO-RQ goes on, its Affected SOP Class UID): status
    "on the Verification context": (VERIFICATION, VERIFICATION, 0x0000),
    "on a storage context": (SECONDARY_CAPTURE, VERIFICATION, SOP_CLASS_NOT_SUPPORTED),
    "naming a storage SOP Class": (VERIFICATION, SECONDARY_CAPTURE, SOP_CLASS_NOT_SUPPORTED),
}


@pytest.mark.parametrize("case", CASES)
def test_an_echo_is_a_verification_only_on_its_context(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str) -> None:
    context, sop_class, expected = CASES[case]

    async def main() -> object:
        async with running_server(providers=[VerificationSCP(),
                                             StorageSCP(tmp_path / "out")]) as server:
            peer = await RawAssociation.open(
                server.port, [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,)),
                              ContextRequest(VERIFICATION, (ImplicitVRLittleEndian,))])
            await peer.send(encode_pdata(peer.context_id(context), True, True, encode_message(
                CEchoRQ(message_id=5, affected_sop_class_uid=sop_class))))
            answer = await peer.outcome()
            await peer.release()
            return answer

    with caplog.at_level(logging.INFO, "dicomnet"):
        answer = run(main())
    assert isinstance(answer, CEchoRSP), answer
    assert (answer.status, answer.message_id_being_responded_to) == (expected, 5)
    refused = log_lines(caplog, logger="dicomnet.services", level=logging.WARNING,
                        contains="C-ECHO")
    if expected:
        [line] = refused
        assert "refused (0122H)" in line and SECONDARY_CAPTURE in line, line
    else:
        assert refused == []
