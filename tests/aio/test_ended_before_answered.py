"""Requests the server must answer (an A-ASSOCIATE-RQ, an A-RELEASE-RQ) whose
association ends before the answer, and an A-RELEASE-RQ whose sender shuts its
side of the connection before reading the answer (answered all the same).

The server reads the peer's bytes as they come, so what follows a request may
end the association while its answer is still being decided (PS3.8 Table 9-10):
after an A-ASSOCIATE-RQ (Sta3), a P-DATA-TF sent without waiting for the
A-ASSOCIATE-AC (Evt10, AA-8: the server sends A-ABORT) or an A-ABORT (Evt16,
AA-3), say from a peer that gave up waiting for a slow
``on_association_request``; after an A-RELEASE-RQ (Sta8), an A-ABORT or a PDU
Sta8 does not allow. None is answered, none is logged as an internal error
(each was, found by fuzzing the server), and the server goes on serving.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from dicomnet.aio.client import associate
from dicomnet.aio.server import AssociationInfo, ServerAssociation
from dicomnet.dimse.messages import CEchoRQ, CEchoRSP, decode_message, encode_message
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import AAbort, PDataTF, ReleaseRP, ReleaseRQ, decode_pdu, encode_pdata
from tests.aio.helpers import (
    LOOPBACK,
    association_lines,
    read_until_eof,
    run,
    running_server,
    wait_until,
)
from tests.aio.rawscp import IMPLICIT_LE, VERIFICATION


def request_bytes() -> bytes:
    return build_associate_rq(
        calling_ae_title="HASTY", called_ae_title="DICOMNET-SCP",
        contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))], max_pdu_length=16384,
    ).encode()


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def ended_then_served(port: int, aio_log: pytest.LogCaptureFixture) -> bool:
    """Once the server has logged how HASTY's association ended: whether it still
    answers a C-ECHO on a new one."""
    await wait_until(lambda: any(line.startswith("association HASTY@")
                                 for line in association_lines(aio_log)),
                     "the association's last log line")
    async with associate(LOOPBACK, port) as assoc:
        return int(await assoc.echo()) == 0


@pytest.mark.parametrize("follow_up", ["p-data", "a-abort"])
def test_a_request_ended_before_its_answer_is_not_answered(
        aio_log: pytest.LogCaptureFixture, follow_up: str) -> None:
    decided: list[str] = []

    async def hook(info: AssociationInfo) -> None:
        await asyncio.sleep(0)  # an async hook: the server's task waits for it
        decided.append(info.calling_ae_title)

    async def main() -> tuple[bytes, bool]:
        async with running_server(on_association_request=hook) as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            # The request and what follows in one write: the server reads both
            # before its task decides on the request.
            after = (encode_pdata(1, True, True, b"\x00" * 8) if follow_up == "p-data"
                     else AAbort(source=0, reason=0).encode())
            writer.write(request_bytes() + after)
            await writer.drain()
            if follow_up == "p-data":
                # AA-8: an A-ABORT, then the server waits (Sta13) for us to close.
                answer = await asyncio.wait_for(reader.readexactly(10), 10)
                writer.close()
            else:
                # AA-3: the server closes without a word.
                answer = await read_until_eof(reader, 10)
                writer.close()
            return answer, await ended_then_served(server.port, aio_log)

    answer, served = run(main())
    if follow_up == "p-data":
        # PS3.8 9.3.8: service provider (2), unexpected PDU (2).
        assert answer == AAbort(source=2, reason=2).encode()
    else:
        assert answer == b""  # neither an A-ASSOCIATE-AC nor an -RJ
    assert decided == ["HASTY", "DICOMNET"]  # the hook ran; then the echo's association
    assert served
    assert problems(aio_log) == []
    lines = association_lines(aio_log)
    assert any(line.startswith("association request from HASTY@127.0.0.1:")
               and line.endswith("ended before it was answered") for line in lines), lines
    assert any(line.startswith("association HASTY@") and ": aborted" in line
               for line in lines), lines


@pytest.mark.parametrize("follow_up", ["a-abort", "p-data"])
def test_a_release_request_ended_before_its_answer_is_not_answered(
        aio_log: pytest.LogCaptureFixture, follow_up: str) -> None:
    async def main() -> tuple[bytes, bool]:
        async with running_server() as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            writer.write(request_bytes())
            await writer.drain()
            head = await asyncio.wait_for(reader.readexactly(6), 10)
            assert head[0] == 0x02  # A-ASSOCIATE-AC
            await reader.readexactly(int.from_bytes(head[2:], "big"))
            # The release request and what ends the association, read together.
            after = (AAbort(source=0, reason=0).encode() if follow_up == "a-abort"
                     else encode_pdata(1, True, True, b"\x00" * 8))
            writer.write(ReleaseRQ().encode() + after)
            await writer.drain()
            if follow_up == "a-abort":
                answer = await read_until_eof(reader, 10)  # AA-3: closed, no answer
            else:
                # A P-DATA-TF in Sta8 is invalid (AA-8): an A-ABORT, no A-RELEASE-RP.
                answer = await asyncio.wait_for(reader.readexactly(10), 10)
            writer.close()
            return answer, await ended_then_served(server.port, aio_log)

    answer, served = run(main())
    assert answer == (b"" if follow_up == "a-abort" else AAbort(source=2, reason=2).encode())
    assert served
    assert problems(aio_log) == []
    lines = association_lines(aio_log)
    assert any(line.startswith("association HASTY@") and ": aborted" in line
               for line in lines), lines


def test_a_release_request_then_a_half_close_is_answered_and_released(
        aio_log: pytest.LogCaptureFixture) -> None:
    """A peer sends a C-ECHO-RQ and an A-RELEASE-RQ, then shuts its write side (a
    TCP FIN) before our answers: it has nothing more to say (PS3.8 7.2.2), and
    reads on. The C-ECHO-RSP and the A-RELEASE-RP still reach it, then the
    server closes, and the association is logged as released. The echo waits
    until the server has read the FIN, so that the FIN comes in Sta8; it was
    taken as a closed transport there (Evt17, AA-4): no answer, 'aborted'."""
    seen_fin: list[str] = []

    async def slow_echo(assoc: ServerAssociation) -> None:
        await wait_until(lambda: assoc.stream.receiver._ended, "the server to read the FIN")
        seen_fin.append(assoc.ul.state.name)

    async def main() -> bytes:
        async with running_server(providers=[VerificationSCP(on_c_echo=slow_echo)]) as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            writer.write(request_bytes())
            await writer.drain()
            head = await asyncio.wait_for(reader.readexactly(6), 10)
            assert head[0] == 0x02  # A-ASSOCIATE-AC
            await reader.readexactly(int.from_bytes(head[2:], "big"))
            echo = encode_pdata(1, True, True, encode_message(CEchoRQ(message_id=7)))
            writer.write(echo + ReleaseRQ().encode())
            writer.write_eof()
            answer = await read_until_eof(reader, 10)
            writer.close()
            await wait_until(lambda: any(line.startswith("association HASTY@")
                                         for line in association_lines(aio_log)),
                             "the association's last log line")
            return answer

    answer = run(main())
    assert seen_fin == ["Sta8"]  # still owing the A-RELEASE-RP (it was Sta1: AA-4)
    rsp_length = 6 + int.from_bytes(answer[2:6], "big")
    rsp = decode_pdu(answer[:rsp_length])
    assert isinstance(rsp, PDataTF)
    message = decode_message(bytes(rsp.pdvs[0].data))
    assert isinstance(message, CEchoRSP)
    assert (message.message_id_being_responded_to, message.status) == (7, 0)
    assert answer[rsp_length:] == ReleaseRP().encode()
    assert problems(aio_log) == []
    lines = [line for line in association_lines(aio_log) if line.startswith("association HASTY@")]
    assert len(lines) == 1 and ": released, 1 message(s)" in lines[0], lines
