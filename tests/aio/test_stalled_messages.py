"""A message that stops between its PDUs (PS3.7 8.1, PS3.8 9.3.5: a message's
PDVs are consecutive): the PDU deadline (``Timeouts.pdu``) bounds the wait for
its next PDU too, on the requestor's side as on the acceptor's
(tests/cli/test_timeout_all.py). Before, a response whose command PDV was not
marked last, or whose data set stopped after its first PDU, held the client
until its DIMSE timeout (60 s), or its idle timeout for a request that has none.
"""

from __future__ import annotations

import time

import pytest

from dicomnet.aio.client import associate
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CEchoRSP, CFindRQ, CFindRSP, encode_message
from dicomnet.errors import AssociationAborted
from dicomnet.ul.pdu import encode_pdata

from .helpers import LOOPBACK, run
from .rawscp import VERIFICATION, RawPeer, Request, raw_scp, response_pdu

#: Well above the 0.5 s deadline on a loaded machine, well below the DIMSE timeout.
BOUND = 15.0
STALLED = ("association aborted by us (A-ABORT sent: service-user) - a message in "
           "progress stopped between its PDUs: nothing more of it for 0.5s")


async def _command_not_last(peer: RawPeer, request: Request) -> None:
    command = encode_message(CEchoRSP(message_id_being_responded_to=1, status=0,
                                      affected_sop_class_uid=VERIFICATION))
    await peer.send(encode_pdata(request.context_id, True, False, command[:20]))


async def _data_set_cut(peer: RawPeer, request: Request) -> None:
    await peer.send(response_pdu(request.context_id, CFindRSP(
        message_id_being_responded_to=1, status=0xFF00, affected_sop_class_uid=VERIFICATION,
        has_dataset=True)), encode_pdata(request.context_id, False, False, bytes(100)))


@pytest.mark.parametrize("where", ["command", "data set"])
def test_a_response_that_stops_between_its_pdus_is_aborted(where: str) -> None:
    async def main() -> tuple[str, str, float]:
        answer = _command_not_last if where == "command" else _data_set_cut
        async with raw_scp(answer) as (port, peers):
            began = time.monotonic()
            with pytest.raises(AssociationAborted) as caught:
                async with associate(LOOPBACK, port,
                                     timeouts=Timeouts(pdu=0.5, dimse=60, idle=60)) as assoc:
                    find = CFindRQ(message_id=1, affected_sop_class_uid=VERIFICATION)
                    async for _ in assoc.request(
                            find, assoc.context_for(VERIFICATION).context_id, dataset=b""):
                        pass
            waited = time.monotonic() - began
            await peers[0].ended.wait()
            return str(caught.value), peers[0].ending, waited

    message, ending, waited = run(main(), timeout=BOUND + 10)
    assert message == STALLED
    assert ending == "abort"
    assert waited < BOUND
