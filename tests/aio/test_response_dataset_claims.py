"""A message whose Command Data Set Type (0000,0800) claims a data set it must not
have (PS3.7 E.1; 9.3.1.2 C-STORE-RSP, 9.3.5 C-ECHO-RQ/RSP: "shall be set to a
value of 0101H"). Taken at its word, the receiver waited for a data set the
peer would not send: our SCU until its DIMSE timeout, our SCP for ever (the
peer waiting for its echo's answer). It is a protocol error now, refused as its
command set is decoded: A-ABORT at once, the error naming the field and its
value (a ``RemoteProtocolError`` of reason 6 inside, as for any undecodable
command set). A C-STORE-RQ claiming *no* data set (0101H) is
answered, at once, 0xC000 Cannot understand (nothing to store), and the
association goes on.

Every scenario sets a DIMSE timeout of 30 s and runs under a 10 s bound: a wait
for the timeout fails the test rather than passing late."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import associate
from dicomnet.config import Timeouts
from dicomnet.dimse.connection import DimseConnection
from dicomnet.dimse.messages import (
    CEchoRQ,
    CEchoRSP,
    CStoreRQ,
    CStoreRSP,
    decode_message,
    encode_message,
)
from dicomnet.errors import AssociationAborted, RemoteProtocolError
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import PresentationDataValue, encode_pdata
from tests.aio.helpers import LOOPBACK, run, running_server, wait_until
from tests.aio.rawscp import VERIFICATION, RawPeer, Request, raw_scp, response_pdu, store_into
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10
from tests.storage.rawscu import RawAssociation, read_pdu

#: Long: a test that waits for it fails by its own bound (``GUARD``) first.
TIMEOUTS = Timeouts(dimse=30)
GUARD = 10.0
#: A-ABORT PDU (PS3.8 9.3.8): type 07H, reserved, length 4, reserved 2 bytes, then
#: source 0 (service user: the DIMSE user found the fault, as for every DIMSE
#: fault our SCU and SCP find) and reason 0 (not significant for that source).
A_ABORT_USER = bytes.fromhex("07 00 00000004 00 00 00 00")


def _with_data_set_type(message: CStoreRSP | CEchoRSP | CEchoRQ | CStoreRQ,
                        value: int) -> bytes:
    """``message``'s command set with its Command Data Set Type set to ``value``."""
    raw = bytearray(encode_message(message))
    at = raw.find(b"\x00\x00\x00\x08\x02\x00\x00\x00")  # (0000,0800), length 2
    assert at > 0
    struct.pack_into("<H", raw, at + 8, value)
    return bytes(raw)


# -- sans-I/O: the decoder and the DIMSE connection ----------------------------------


@pytest.mark.parametrize(("message", "name"), [
    (CStoreRSP(message_id_being_responded_to=1, status=0), "C-STORE-RSP"),
    (CEchoRSP(message_id_being_responded_to=1, status=0), "C-ECHO-RSP"),
    (CEchoRQ(message_id=1), "C-ECHO-RQ"),
])
@pytest.mark.parametrize("value", [0x0001, 0x0000, 0x0102, 0xFEFE])
def test_a_message_without_data_set_claiming_one_is_refused(
        message: CStoreRSP | CEchoRSP | CEchoRQ, name: str, value: int) -> None:
    wire = _with_data_set_type(message, value)
    with pytest.raises(RemoteProtocolError) as caught:
        decode_message(wire)
    # A DIMSE fault: the service-user's A-ABORT (PS3.8 Table 9-26, dimse.connection).
    assert (caught.value.abort_source, caught.value.abort_reason) == (0, 0)
    assert str(caught.value) == (
        f"{name} with Command Data Set Type (0000,0800) {value:04X}H: it has no data "
        "set, the value shall be 0101H (PS3.7 9.3, 10.3)")
    dimse = DimseConnection()
    with pytest.raises(RemoteProtocolError):
        dimse.receive_pdv(PresentationDataValue(1, True, True, wire))
    assert not dimse.expecting_dataset
    # 0101H, as the standard has it: decoded, no data set due.
    assert decode_message(_with_data_set_type(message, 0x0101)).has_dataset is False


def test_a_store_request_claiming_no_data_set_is_decoded_as_it_says() -> None:
    rq = CStoreRQ(message_id=1, affected_sop_class_uid=SECONDARY_CAPTURE,
                  affected_sop_instance_uid="1.2.3")
    assert decode_message(_with_data_set_type(rq, 0x0101)).has_dataset is False


# -- our SCU reading such a response -------------------------------------------------


def test_a_store_response_claiming_a_data_set_aborts_at_once(tmp_path: Path) -> None:
    """The first object answered as it should be, the second with the claim: the
    second fails naming the field, the third is not sent."""
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n, rows=8, columns=8),
                          ExplicitVRLittleEndian) for n in range(3)]
    aborts: list[bytes] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        message = request.message
        assert isinstance(message, CStoreRQ)
        rsp = CStoreRSP(message_id_being_responded_to=message.message_id, status=0,
                        affected_sop_class_uid=message.affected_sop_class_uid,
                        affected_sop_instance_uid=message.affected_sop_instance_uid)
        if len(peer.requests) == 1:
            await peer.send(response_pdu(request.context_id, rsp))
            return
        await peer.send(encode_pdata(request.context_id, True, True,
                                     _with_data_set_type(rsp, 0x0001)))
        aborts.append(await peer.read_pdu())  # no data set follows: what comes?
        peer.ending = "abort"

    results, _ending = run(store_into(answer, files, timeouts=TIMEOUTS), timeout=GUARD)
    assert aborts == [A_ABORT_USER]
    first, second, third = results
    assert (first.ok, first.status) == (True, 0)
    assert (second.ok, second.status, second.sent) == (False, None, True)
    assert second.error is not None and (
        "C-STORE-RSP with Command Data Set Type (0000,0800) 0001H: it has no data set, "
        "the value shall be 0101H") in second.error
    assert (third.ok, third.status) == (False, None)


def test_an_echo_response_claiming_a_data_set_aborts_at_once() -> None:
    aborts: list[bytes] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        rsp = CEchoRSP(message_id_being_responded_to=request.message.message_id,  # type: ignore[union-attr]
                       status=0, affected_sop_class_uid=VERIFICATION)
        await peer.send(encode_pdata(request.context_id, True, True,
                                     _with_data_set_type(rsp, 0x0102)))
        aborts.append(await peer.read_pdu())
        peer.ending = "abort"

    async def main() -> str:
        async with raw_scp(answer) as (port, peers):
            with pytest.raises(AssociationAborted) as caught:
                async with associate(LOOPBACK, port, timeouts=TIMEOUTS) as assoc:
                    await assoc.echo()
            await wait_until(peers[0].ended.is_set, "the peer's end")
        return str(caught.value)

    said = run(main(), timeout=GUARD)
    assert aborts == [A_ABORT_USER]
    assert "C-ECHO-RSP with Command Data Set Type (0000,0800) 0102H" in said


def test_a_plain_echo_response_still_answers() -> None:
    """The rule's other side: 0101H, as DCMTK and pynetdicom write it."""

    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(response_pdu(request.context_id, CEchoRSP(
            message_id_being_responded_to=request.message.message_id,  # type: ignore[union-attr]
            status=0, affected_sop_class_uid=VERIFICATION)))

    async def main() -> int:
        async with raw_scp(answer) as (port, _peers), associate(
                LOOPBACK, port, timeouts=TIMEOUTS) as assoc:
            return int(await assoc.echo())

    assert run(main(), timeout=GUARD) == 0


# -- our SCP reading such a request --------------------------------------------------


def test_the_server_aborts_an_echo_request_claiming_a_data_set(
        tmp_path: Path) -> None:
    async def main() -> bytes:
        async with running_server(providers=[VerificationSCP()],
                                  timeouts=TIMEOUTS) as server:
            assoc = await RawAssociation.open(
                server.port, [ContextRequest(VERIFICATION, (ExplicitVRLittleEndian,))])
            try:
                ctx = assoc.context_id(VERIFICATION)
                await assoc.send(encode_pdata(ctx, True, True, _with_data_set_type(
                    CEchoRQ(message_id=1), 0x0001)))
                return await read_pdu(assoc.reader)
            finally:
                await assoc.close()

    assert run(main(), timeout=GUARD) == A_ABORT_USER


def test_the_server_answers_a_store_request_claiming_no_data_set(tmp_path: Path) -> None:
    rq = CStoreRQ(message_id=1, affected_sop_class_uid=SECONDARY_CAPTURE,
                  affected_sop_instance_uid="1.2.826.0.1.3680043.10.543.1")

    async def main() -> tuple[object, object]:
        scp = StorageSCP(tmp_path / "store")
        try:
            async with running_server(providers=[scp, VerificationSCP()],
                                      timeouts=TIMEOUTS) as server:
                assoc = await RawAssociation.open(server.port, [
                    ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,)),
                    ContextRequest(VERIFICATION, (ExplicitVRLittleEndian,))])
                try:
                    await assoc.send(encode_pdata(
                        assoc.context_id(SECONDARY_CAPTURE), True, True,
                        _with_data_set_type(rq, 0x0101)))
                    stored = await assoc.read_message(timeout=GUARD)
                    # The association goes on: a C-ECHO after it is answered.
                    await assoc.send(encode_pdata(
                        assoc.context_id(VERIFICATION), True, True,
                        encode_message(CEchoRQ(message_id=2))))
                    echoed = await assoc.read_message(timeout=GUARD)
                    await assoc.release()
                finally:
                    await assoc.close()
        finally:
            scp.close()
        return stored, echoed

    stored, echoed = run(main(), timeout=GUARD)
    assert isinstance(stored, CStoreRSP) and isinstance(echoed, CEchoRSP)
    assert (stored.message_id_being_responded_to, stored.status) == (1, 0xC000)
    assert stored.error_comment == "no data set: Command Data Set Type (0000,0800) is 0101H"
    assert (echoed.message_id_being_responded_to, echoed.status) == (2, 0)
    assert not list((tmp_path / "store").rglob("*.dcm"))
