"""Which A-ABORT answers a fault, and who sends it (PS3.8 9.3.8, Table 9-26).

A fault in a PDU (its structure, its lengths) is the Upper Layer provider's to
find: A-ABORT source 2, with one of reasons 0-6. A fault in a DIMSE message that
arrived in well-formed PDUs (a data PDV with no command before it, a command set
that cannot be decoded) is found above the Upper Layer, by its service-user:
A-ABORT source 0, whose reason "shall not be significant" and is sent as 00H.
The DIMSE layer's errors carry that hint (``abort_source``/``abort_reason``),
and the association drivers, server and client, put those bytes on the wire.
"""

from __future__ import annotations

import asyncio
import struct

import pytest

from dicomnet.aio.client import associate
from dicomnet.dimse.commands import encode_command
from dicomnet.dimse.connection import (
    FREE_FRAGMENTS,
    MAX_COMMAND_SET_LENGTH,
    DimseConnection,
)
from dicomnet.dimse.messages import CEchoRQ, CStoreRQ, encode_message
from dicomnet.errors import AssociationAborted, DicomNetError, RemoteProtocolError
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import (
    AcceptorPolicy,
    ContextRequest,
    build_associate_rq,
    negotiate,
)
from dicomnet.ul.pdu import AssociateRQ, decode_pdu, encode_pdata
from tests.aio.helpers import LOOPBACK, read_until_eof, run, running_server
from tests.dimse.pdv import PDV

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
ECHO = CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION)
STORE = CStoreRQ(message_id=3, affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                 affected_sop_instance_uid="1.2.3")

#: A-ABORT, PS3.8 Table 9-26: 07H, reserved, length 00000004H, reserved x2,
#: source 0 (DICOM UL service-user), reason 00H (not significant for source 0).
ABORT_BY_USER = bytes.fromhex("07 00 00000004 00 00 00 00")
#: source 2 (DICOM UL service-provider), reason 6 (invalid PDU parameter value).
ABORT_BY_PROVIDER_INVALID = bytes.fromhex("07 00 00000004 00 00 02 06")
#: A command set with a Command Field no DIMSE message has (PS3.7 E.1).
UNKNOWN_COMMAND = encode_command({0x0000_0100: 0x0FFF, 0x0000_0800: 0x0101})


def _hint(items: list[PDV]) -> tuple[int, int]:
    conn = DimseConnection()
    with pytest.raises(RemoteProtocolError) as caught:
        for pdv in items:
            conn.receive_pdv(pdv)
    return caught.value.abort_source, caught.value.abort_reason


STORE_COMMAND = encode_message(STORE)
DIMSE_FAULTS: dict[str, list[PDV]] = {
    "data PDV before any command": [PDV(1, False, True, b"x")],
    "data PDV inside a command set": [PDV(1, True, False, STORE_COMMAND[:10]),
                                      PDV(1, False, True, b"x")],
    "command PDV while a data set is due": [PDV(1, True, True, STORE_COMMAND),
                                            PDV(1, True, True, STORE_COMMAND)],
    "data PDV on another context": [PDV(1, True, True, STORE_COMMAND),
                                    PDV(3, False, True, b"x")],
    "command PDV on another context": [PDV(1, True, False, STORE_COMMAND[:10]),
                                       PDV(3, True, True, STORE_COMMAND[10:])],
    "command set too large": [PDV(1, True, False, bytes(MAX_COMMAND_SET_LENGTH + 1))],
    "a flood of empty PDVs": [PDV(1, True, True, STORE_COMMAND)]
    + [PDV(1, False, False, b"")] * (FREE_FRAGMENTS + 1),
    "command set that cannot be decoded": [PDV(1, True, True, UNKNOWN_COMMAND)],
}


@pytest.mark.parametrize("fault", DIMSE_FAULTS)
def test_a_dimse_fault_is_answered_by_an_abort_of_the_service_user(fault: str) -> None:
    """Each fault the DIMSE layer finds asks for source 0, reason 0 (was source 2,
    reason 5 or 6: what the UL provider says of a PDU it finds wrong)."""
    assert _hint(DIMSE_FAULTS[fault]) == (0, 0)


# -- on the wire -------------------------------------------------------------------------


async def _associated(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(build_associate_rq(
        calling_ae_title="FAULTY", called_ae_title="DICOMNET-SCP",
        contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))]).encode())
    head = await reader.readexactly(6)
    assert head[0] == 0x02, head  # A-ASSOCIATE-AC
    await reader.readexactly(struct.unpack(">I", head[2:])[0])
    return reader, writer


def _pdata_item(context_id: int, control: int, data: bytes) -> bytes:
    return struct.pack(">LBB", 2 + len(data), context_id, control) + data


SERVER_CASES = {
    # DIMSE faults in well-formed P-DATA-TF PDUs: the service-user aborts.
    "data PDV before any command": (encode_pdata(1, False, True, b"x"), ABORT_BY_USER),
    "command set that cannot be decoded": (encode_pdata(1, True, True, UNKNOWN_COMMAND),
                                           ABORT_BY_USER),
    "C-ECHO-RQ claiming a data set": (
        encode_pdata(1, True, True, encode_command(
            {0x0000_0002: VERIFICATION, 0x0000_0100: 0x0030, 0x0000_0110: 1,
             0x0000_0800: 0x0000})), ABORT_BY_USER),
    # A PDU fault (a PDV item longer than its PDU): the provider aborts, reason 6.
    "PDV item longer than its PDU": (
        b"\x04\x00" + struct.pack(">L", 8) + struct.pack(">LBB", 100, 1, 3) + b"xy",
        ABORT_BY_PROVIDER_INVALID),
}


@pytest.mark.parametrize("case", SERVER_CASES)
def test_server_sends_the_abort_the_table_asks(case: str) -> None:
    sent, expected = SERVER_CASES[case]

    async def main() -> bytes:
        async with running_server(providers=[VerificationSCP()]) as server:
            reader, writer = await _associated(server.port)
            try:
                writer.write(sent)
                # The A-ABORT; then a provider's waits in Sta13 for us to close (AA-8).
                return await asyncio.wait_for(reader.readexactly(10), 10.0)
            finally:
                writer.close()

    assert run(main()) == expected


def test_client_aborts_a_faulty_response_as_its_service_user() -> None:
    """A server that answers a C-ECHO-RQ with a data PDV and no command: the client
    fails the request and sends A-ABORT source 0, reason 0."""
    received = bytearray()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readexactly(6)
        rq = decode_pdu(head + await reader.readexactly(struct.unpack(">I", head[2:])[0]))
        assert isinstance(rq, AssociateRQ)
        writer.write(negotiate(rq, AcceptorPolicy(contexts={VERIFICATION: None})).encode())
        head = await reader.readexactly(6)
        await reader.readexactly(struct.unpack(">I", head[2:])[0])  # the C-ECHO-RQ
        writer.write(encode_pdata(1, False, True, b"no command before me"))
        received.extend(await read_until_eof(reader, 10.0))
        writer.close()

    async def main() -> DicomNetError:
        server = await asyncio.start_server(peer, LOOPBACK, 0)
        try:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(DicomNetError) as caught:
                async with associate(LOOPBACK, port) as assoc:
                    await assoc.echo()
            await asyncio.sleep(0)
            return caught.value
        finally:
            server.close()
            await server.wait_closed()

    error = run(main())
    assert isinstance(error, AssociationAborted), error
    assert "invalid DIMSE data from peer" in str(error)
    assert bytes(received) == ABORT_BY_USER
