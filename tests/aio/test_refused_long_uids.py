"""A request the server refuses whatever it names (an operation it does not
perform: 0211H, PS3.7 C.5.9) is answered even when its SOP Class UID is one we
could not send back: longer than 64 characters (PS3.5 9.1). The
UID is left out of the response (a user option there, PS3.7 9.3). Before, the
refusal echoed it, its encoding raised, and the association failed with an
ERROR and an A-ABORT. Found by the dimse_command fuzz target (a decoded
request whose refusal did not encode). The warning of a refused C-ECHO quotes
such a UID, as the C-STORE refusals do, so that a line break in it cannot forge
a log line."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest

from dicomnet.dimse.messages import CEchoRSP, CFindRSP, decode_message, encode_message, refusal
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import encode_pdata
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE
from tests.storage.rawscu import RawAssociation, implicit_element

VERIFICATION = "1.2.840.10008.1.1"
LONG = b"1.2." * 30  # 120 characters (a UID that is not ASCII fails its decoding)


def find_rq(sop_class_uid: bytes) -> bytes:
    """A C-FIND-RQ command set (PS3.7 9.3.2.1) naming any SOP Class UID bytes."""
    body = b"".join([
        implicit_element(0x00000002, sop_class_uid),
        implicit_element(0x00000100, struct.pack("<H", 0x0020)),
        implicit_element(0x00000110, struct.pack("<H", 5)),
        implicit_element(0x00000700, struct.pack("<H", 0)),
        implicit_element(0x00000800, struct.pack("<H", 0x0101)),
    ])
    return implicit_element(0x00000000, struct.pack("<I", len(body))) + body


def test_the_refusal_of_such_a_request_encodes_without_it() -> None:
    request = decode_message(find_rq(LONG))
    answer = refusal(request, 0x0211, "not performed")
    assert answer is not None
    decoded = decode_message(encode_message(answer))
    assert isinstance(decoded, CFindRSP)
    assert (decoded.status, decoded.message_id_being_responded_to) == (0x0211, 5)
    assert decoded.affected_sop_class_uid is None


def test_the_server_answers_such_a_request_and_serves_on(tmp_path: Path) -> None:
    async def scenario() -> tuple[object, object]:
        scp = StorageSCP(tmp_path / "store")
        try:
            async with running_server(providers=[scp], ae_title="DICOMNET") as srv:
                assoc = await RawAssociation.open(
                    srv.port, [ContextRequest(SECONDARY_CAPTURE, ("1.2.840.10008.1.2.1",))])
                ctx = assoc.context_id(SECONDARY_CAPTURE)
                await assoc.send(encode_pdata(ctx, True, True, find_rq(LONG)))
                first = await assoc.outcome()
                await assoc.send(encode_pdata(ctx, True, True, find_rq(b"1.2.3")))
                second = await assoc.outcome()
                await assoc.release()
                await assoc.close()
                return first, second
        finally:
            scp.close()

    first, second = run(scenario())
    assert isinstance(first, CFindRSP) and first.status == 0x0211, first
    assert first.affected_sop_class_uid is None
    assert isinstance(second, CFindRSP) and second.status == 0x0211
    assert second.affected_sop_class_uid == "1.2.3"


def test_an_echo_naming_such_a_uid_is_refused_and_logged_quoted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A C-ECHO-RQ naming a SOP Class UID of 74 characters with a line break in
    it: answered 0122H without the UID, and the warning quotes the UID, so that
    its line break cannot forge a log line of its own."""
    uid = b"1.2\n2026-12-02 WARNING forged line " + b"x" * 40
    body = b"".join([
        implicit_element(0x00000002, uid),
        implicit_element(0x00000100, struct.pack("<H", 0x0030)),  # C-ECHO-RQ
        implicit_element(0x00000110, struct.pack("<H", 9)),
        implicit_element(0x00000800, struct.pack("<H", 0x0101)),
    ])
    command = implicit_element(0x00000000, struct.pack("<I", len(body))) + body

    async def scenario() -> object:
        async with running_server(providers=[VerificationSCP()], ae_title="DICOMNET") as srv:
            assoc = await RawAssociation.open(
                srv.port, [ContextRequest(VERIFICATION, ("1.2.840.10008.1.2",))])
            await assoc.send(encode_pdata(assoc.context_id(VERIFICATION), True, True, command))
            answer = await assoc.outcome()
            await assoc.release()
            await assoc.close()
            return answer

    with caplog.at_level(logging.WARNING, "dicomnet"):
        answer = run(scenario())
    assert isinstance(answer, CEchoRSP) and answer.status == 0x0122, answer
    assert answer.affected_sop_class_uid is None
    [line] = [r.getMessage() for r in caplog.records if "C-ECHO" in r.getMessage()]
    assert "\n" not in line and repr(uid.decode()) in line, line
