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

import pytest

from dicomnet.aio.client import associate
from dicomnet.dimse.messages import CEchoRSP
from dicomnet.ul.negotiation import ContextRequest
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
