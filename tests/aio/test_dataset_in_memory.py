"""Data sets no service streams to disk are kept in memory (a C-FIND identifier,
an N-ACTION's attribute list, a request no service here performs, a C-FIND-RSP's
match on the client side): at most ``Limits.max_dataset_in_memory`` bytes of
each. A peer that announces one and sends on (PS3.7 puts no bound on a data
set) gets an A-ABORT; before, the server kept every byte (600 MiB of a C-FIND
identifier took 600 MiB)."""

from __future__ import annotations

import asyncio
import struct

import pytest

from dicomnet.aio.association import BufferSink
from dicomnet.aio.client import associate
from dicomnet.config import Limits
from dicomnet.dimse.messages import CEchoRQ, CFindRQ, CFindRSP, decode_message, encode_message
from dicomnet.errors import AssociationAborted, ConfigurationError, RemoteProtocolError
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import ReleaseRQ, encode_pdata
from tests.aio.helpers import LOOPBACK, association_lines, run, running_server
from tests.aio.rawscp import RawPeer, Request, raw_scp, response_pdu

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
A_ASSOCIATE_AC, P_DATA_TF, A_RELEASE_RP, A_ABORT = 0x02, 0x04, 0x06, 0x07
LIMIT = 1 << 20


async def read_pdu(reader: asyncio.StreamReader) -> bytes:
    header = await asyncio.wait_for(reader.readexactly(6), 10)
    return header + await asyncio.wait_for(
        reader.readexactly(struct.unpack(">L", header[2:])[0]), 10)


async def find_with_identifier(port: int, size: int) -> list[bytes]:
    """Associate (Verification only), send a C-FIND-RQ whose identifier is
    ``size`` bytes (in PDVs of 64 KiB), a C-ECHO-RQ and an A-RELEASE-RQ; the PDUs
    answered until the server released or closed (read meanwhile)."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(build_associate_rq(
        calling_ae_title="GREEDY", called_ae_title="DICOMNET-SCP",
        contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))]).encode())
    answers = [await read_pdu(reader)]
    assert answers[0][0] == A_ASSOCIATE_AC

    async def read_answers() -> None:
        try:
            while answers[-1][0] not in (A_RELEASE_RP, A_ABORT):
                answers.append(await read_pdu(reader))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # closed (a reset may take the A-ABORT with it)

    reading = asyncio.ensure_future(read_answers())
    writer.write(encode_pdata(1, True, True, encode_message(
        CFindRQ(message_id=1, affected_sop_class_uid=VERIFICATION))))
    chunk = 64 << 10
    try:
        for start in range(0, size, chunk):
            writer.write(encode_pdata(1, False, start + chunk >= size,
                                      bytes(min(chunk, size - start))))
            await writer.drain()
        writer.write(encode_pdata(1, True, True, encode_message(CEchoRQ(message_id=2))))
        writer.write(ReleaseRQ().encode())
        await writer.drain()
    except ConnectionError:  # aborted and closed under our writes
        pass
    await reading
    writer.close()
    return answers


@pytest.mark.parametrize("size", [LIMIT, 3 * LIMIT])
def test_a_data_set_beyond_the_limit_aborts_the_association(
        aio_log: pytest.LogCaptureFixture, size: int) -> None:
    """Up to the limit, the C-FIND is refused as usual (no service here performs
    it) and the association goes on; one byte more, it is aborted, logged with
    the reason, and the server serves the next association."""

    async def main() -> tuple[list[bytes], list[bytes]]:
        async with running_server(providers=[VerificationSCP()],
                                  limits=Limits(max_dataset_in_memory=LIMIT)) as server:
            first = await find_with_identifier(server.port, size)
            return first, await find_with_identifier(server.port, 10)

    first, second = run(main())
    statuses = [getattr(decode_message(pdu[12:]), "status", None) for pdu in second
                if pdu[0] == P_DATA_TF]
    assert statuses == [0x0211, 0x0000]  # the next association: C-FIND refused, C-ECHO done
    if size == LIMIT:
        assert first == second
        return
    # No answer to either request, no release: an A-ABORT (if the reset after it
    # did not take it away first).
    assert [pdu[0] for pdu in first] in ([A_ASSOCIATE_AC, A_ABORT], [A_ASSOCIATE_AC])
    line = association_lines(aio_log)[0]
    assert line.startswith("association GREEDY@127.0.0.1:")
    assert (f"aborted (by us: invalid DIMSE data: the data set of a C-FIND-RQ is larger than "
            f"{LIMIT} bytes, the most kept in memory (Limits.max_dataset_in_memory)") in line


def test_buffer_sink_keeps_up_to_its_limit() -> None:
    sink = BufferSink(4, "the data set of a C-FIND-RSP")
    sink.write(b"ab")
    sink.write(memoryview(b"cd"))
    assert sink.data == b"abcd"
    with pytest.raises(RemoteProtocolError, match="the data set of a C-FIND-RSP is larger "
                                                  "than 4 bytes"):
        sink.write(b"e")
    assert sink.data == b""  # what it held is let go at once


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="max_dataset_in_memory"):
        Limits(max_dataset_in_memory=0)


def test_a_response_data_set_beyond_the_limit_aborts_the_client() -> None:
    """The client's side: a pending C-FIND-RSP announcing an Identifier, then 3 MiB
    of it. (A C-ECHO-RSP, which has no data set, is refused as its command set
    is read: tests/aio/test_response_dataset_claims.py.)"""

    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(response_pdu(request.context_id, CFindRSP(
            message_id_being_responded_to=1, status=0xFF00, affected_sop_class_uid=VERIFICATION,
            has_dataset=True)), *[encode_pdata(request.context_id, False, n == 47, bytes(65536))
                                  for n in range(48)])

    async def main() -> tuple[str, str]:
        async with raw_scp(answer) as (port, peers):
            with pytest.raises(AssociationAborted) as caught:
                async with associate(LOOPBACK, port,
                                     limits=Limits(max_dataset_in_memory=LIMIT)) as assoc:
                    find = CFindRQ(message_id=assoc.dimse.next_message_id(),
                                   affected_sop_class_uid=VERIFICATION)
                    async for _ in assoc.request(
                            find, assoc.context_for(VERIFICATION).context_id, dataset=b""):
                        pass
            await peers[0].ended.wait()
            return str(caught.value), peers[0].ending

    message, ending = run(main())
    assert (f"the data set of a C-FIND-RSP is larger than {LIMIT} bytes, the most kept in "
            f"memory (Limits.max_dataset_in_memory)") in message
    assert ending == "abort"
