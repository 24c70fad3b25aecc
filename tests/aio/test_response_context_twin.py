"""A response on a twin of its request's presentation context: taken, said once.

dicomnet's store proposes several contexts per SOP Class (the file as it is,
both Little Endian syntaxes, a last resort: store_batch.contexts_for). Odil
0.12 (review 29) answers every C-STORE on the last accepted context of the
request's SOP Class, not on the request's (PS3.7 9.1): the client aborted the
association on the first answer, so nothing could be stored into Odil (DCMTK's
storescu, one context per SOP Class, is not hit). A twin, same SOP Class and,
for a response with a data set, same transfer syntax (a command set is
Implicit VR Little Endian on any context, PS3.7 6.3.1), reads the same: the
answer is taken, with one warning per association. On another SOP Class's
context, or an unknown one, it still aborts (test_client_responses.py).
"""

from __future__ import annotations

import logging
import struct

import pytest

from dicomnet.aio.client import associate
from dicomnet.dimse.messages import CEchoRSP, CFindRQ, CFindRSP
from dicomnet.errors import AssociationAborted
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import encode_pdata
from tests.aio.helpers import LOOPBACK, run, wait_until
from tests.aio.rawscp import EXPLICIT_LE, IMPLICIT_LE, VERIFICATION, RawPeer, Request, raw_scp
from tests.aio.rawscp import response_pdu as rsp_pdu


def test_a_response_on_a_twin_context_is_taken_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(rsp_pdu(3, CEchoRSP(  # always the twin, as Odil does
            message_id_being_responded_to=request.message.message_id,  # type: ignore[union-attr]
            status=0x0000, affected_sop_class_uid=VERIFICATION)))

    async def main() -> tuple[list[int], dict[int, str], str]:
        async with raw_scp(answer) as (port, peers):
            async with associate(LOOPBACK, port, contexts=[
                    ContextRequest(VERIFICATION, (EXPLICIT_LE,)),
                    ContextRequest(VERIFICATION, (IMPLICIT_LE,))]) as assoc:
                contexts = {c.context_id: c.transfer_syntax for c in assoc.contexts.values()}
                statuses = [int(await assoc.echo()) for _ in range(3)]
            await wait_until(lambda: bool(peers) and peers[0].ended.is_set(), "the end")
            return statuses, contexts, peers[0].ending

    with caplog.at_level(logging.WARNING, logger="dicomnet"):
        statuses, contexts, ending = run(main())
    assert contexts == {1: EXPLICIT_LE, 3: IMPLICIT_LE}
    assert statuses == [0x0000] * 3
    assert ending == "release"
    warnings = [r.getMessage() for r in caplog.records if "twin" in r.getMessage()]
    assert warnings == [
        f"{LOOPBACK}:{warnings[0].split(':')[1]}: CEchoRSP to message 1 came on presentation "
        "context 3, its request went on 1, a twin (same SOP Class, no data set): "
        "taken, though PS3.7 9.1 has a response on its request's context"], warnings


#: Patient Root Query/Retrieve Information Model - FIND (PS3.4 C.6.1.1).
PATIENT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
#: The Identifier each pending C-FIND-RSP carries: (0010,0020) Patient ID "P1",
#: in Explicit VR Little Endian (tag, VR, 2-byte length, value: PS3.5 7.1.2).
IDENTIFIER = struct.pack("<HH2sH", 0x0010, 0x0020, b"LO", 2) + b"P1"


def _find_with_identifier(twin: str) -> tuple[str, list[tuple[int, bytes | None]],
                                              dict[int, str], str]:
    """A C-FIND on context 1 (Explicit VR Little Endian) whose pending response,
    with its Identifier, comes on context 3, proposed in ``twin``; then its
    final one on context 1. The outcome, the responses taken (status, data
    set), the contexts accepted and how the association ended."""
    async def answer(peer: RawPeer, request: Request) -> None:
        responded = request.message.message_id  # type: ignore[union-attr]
        await peer.send(
            rsp_pdu(3, CFindRSP(message_id_being_responded_to=responded, status=0xFF00,
                                affected_sop_class_uid=PATIENT_FIND, has_dataset=True)),
            encode_pdata(3, False, True, IDENTIFIER),  # the data set's PDV, on 3 too
            rsp_pdu(1, CFindRSP(message_id_being_responded_to=responded, status=0x0000,
                                affected_sop_class_uid=PATIENT_FIND)))

    async def main() -> tuple[str, list[tuple[int, bytes | None]], dict[int, str], str]:
        taken: list[tuple[int, bytes | None]] = []
        contexts: dict[int, str] = {}
        async with raw_scp(answer, contexts={PATIENT_FIND: [EXPLICIT_LE, IMPLICIT_LE]}) as (
                port, peers):
            try:
                async with associate(LOOPBACK, port, contexts=[
                        ContextRequest(PATIENT_FIND, (EXPLICIT_LE,)),
                        ContextRequest(PATIENT_FIND, (twin,))]) as assoc:
                    contexts = {c.context_id: c.transfer_syntax
                                for c in assoc.contexts.values()}
                    find = CFindRQ(message_id=assoc.dimse.next_message_id(),
                                   affected_sop_class_uid=PATIENT_FIND)
                    async for rsp, data in assoc.request(find, 1, dataset=IDENTIFIER):
                        taken.append((rsp.status, data))  # type: ignore[union-attr]
                outcome = "released"
            except AssociationAborted as exc:
                outcome = str(exc)
            await wait_until(lambda: bool(peers) and peers[0].ended.is_set(), "the end")
            return outcome, taken, contexts, peers[0].ending

    return run(main())


def test_a_response_with_a_data_set_on_a_twin_context_is_taken(
        caplog: pytest.LogCaptureFixture) -> None:
    """Same SOP Class, same transfer syntax: the Identifier reads the same on
    either context, so it is taken as it came, with the one warning."""
    with caplog.at_level(logging.WARNING, logger="dicomnet"):
        outcome, taken, contexts, ending = _find_with_identifier(EXPLICIT_LE)
    assert contexts == {1: EXPLICIT_LE, 3: EXPLICIT_LE}
    assert (outcome, ending) == ("released", "release")
    assert taken == [(0xFF00, IDENTIFIER), (0x0000, None)]
    warnings = [r.getMessage() for r in caplog.records if "twin" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].endswith(
        ": CFindRSP to message 1 came on presentation context 3, its request went on 1, "
        "a twin (same SOP Class, same transfer syntax): taken, though PS3.7 9.1 has a "
        "response on its request's context"), warnings


def test_a_response_with_a_data_set_on_a_context_of_another_syntax_aborts(
        caplog: pytest.LogCaptureFixture) -> None:
    """Same SOP Class, another transfer syntax: the data set would be read in a
    syntax it is not in (PS3.7 9.1 has it in its request's context's), so the
    response answers nothing of ours: A-ABORT, nothing taken, no twin warning."""
    with caplog.at_level(logging.WARNING, logger="dicomnet"):
        outcome, taken, contexts, ending = _find_with_identifier(IMPLICIT_LE)
    assert contexts == {1: EXPLICIT_LE, 3: IMPLICIT_LE}
    assert ending == "abort"
    assert taken == []
    assert "invalid DIMSE data from peer" in outcome
    assert ("CFindRSP to message 1 came on presentation context 3, its request went on 1 "
            "(PS3.7 9.1, PS3.8 E.1)") in outcome, outcome
    assert not [r for r in caplog.records if "twin" in r.getMessage()]
