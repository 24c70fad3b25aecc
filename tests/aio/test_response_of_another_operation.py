"""A response naming an outstanding request but of another operation (a
C-ECHO-RSP to a C-STORE-RQ's Message ID, say): a response is its request's
operation, its Command Field the request's with bit 15 set (PS3.7 9.1, 9.3).
It answered nothing of ours: the association is aborted (PS3.8 7.3) and the
request fails saying what came. ``store_paths`` had taken the echo's Success
for the object's: "stored", which the peer was never asked to confirm."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import associate
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CEchoRSP, CStoreRQ, CStoreRSP
from dicomnet.errors import AssociationAborted
from tests.aio.helpers import LOOPBACK, run, wait_until
from tests.aio.rawscp import VERIFICATION, RawPeer, Request, raw_scp, response_pdu, store_into
from tests.storage.dicomfiles import make_image, write_part10

#: Long enough that a test waiting it out fails by its own bound first.
TIMEOUTS = Timeouts(dimse=120)


async def _echo_rsp_to_the_second(peer: RawPeer, request: Request) -> None:
    """The first C-STORE answered Success; the second with a C-ECHO-RSP naming it."""
    message = request.message
    assert isinstance(message, CStoreRQ)
    rsp: CStoreRSP | CEchoRSP = CStoreRSP(
        message_id_being_responded_to=message.message_id, status=0,
        affected_sop_class_uid=message.affected_sop_class_uid,
        affected_sop_instance_uid=message.affected_sop_instance_uid)
    if len(peer.requests) == 2:
        rsp = CEchoRSP(message_id_being_responded_to=message.message_id, status=0,
                       affected_sop_class_uid=VERIFICATION)
    await peer.send(response_pdu(request.context_id, rsp))


@pytest.mark.parametrize("window", [1, 3], ids=["synchronous", "window-3"])
def test_an_echo_response_to_a_c_store_is_not_its_answer(tmp_path: Path, window: int) -> None:
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n, rows=8, columns=8),
                          ExplicitVRLittleEndian) for n in range(3)]

    stored, ending = run(store_into(_echo_rsp_to_the_second, files, window=window,
                                    timeouts=TIMEOUTS))
    results = [(r.ok, r.status, r.sent, r.error) for r in stored]
    assert ending == "abort"
    assert results[0] == (True, 0, True, None)
    ok, status, sent, error = results[1]
    assert (ok, status, sent) == (False, None, True)
    assert error is not None and (
        "CEchoRSP to message 2, a CStoreRQ: a response is its request's operation "
        "(PS3.7 9.1, 9.3)") in error
    assert results[2][:2] == (False, None)


def test_a_store_response_to_an_echo_aborts() -> None:
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(response_pdu(request.context_id, CStoreRSP(
            message_id_being_responded_to=request.message.message_id,  # type: ignore[union-attr]
            status=0, affected_sop_class_uid=VERIFICATION)))

    async def main() -> tuple[str, str]:
        async with raw_scp(answer) as (port, peers):
            with pytest.raises(AssociationAborted) as caught:
                async with associate(LOOPBACK, port, timeouts=TIMEOUTS) as assoc:
                    await assoc.echo()
            await wait_until(peers[0].ended.is_set, "the peer's end")
        return str(caught.value), peers[0].ending

    message, ending = run(main())
    assert "CStoreRSP to message 1, a CEchoRQ" in message
    assert ending == "abort"
