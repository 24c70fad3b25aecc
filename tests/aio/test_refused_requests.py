"""Connections the server refuses before an association exists: an invalid first
PDU (A-ABORT, PS3.8 AA-1) or a protocol version it does not support
(A-ASSOCIATE-RJ, AE-6). PS3.8 indicates neither to the server's user; each
is logged all the same, with the reason, in one line."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import AAbort, AssociateRJ, encode_pdata
from tests.aio.helpers import LOOPBACK, log_lines, read_until_eof, run, running_server, wait_until

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
RQ = build_associate_rq(calling_ae_title="ODD", called_ae_title="DICOMNET-SCP",
                        contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))]).encode()
#: The A-ASSOCIATE-RQ whose implementation version name (its last sub-item) ends
#: in bytes that are not ASCII, a control character among them.
NOT_ASCII = RQ[:-4] + b"\xff\x1b[m"

CASES: dict[str, tuple[bytes, AAbort | AssociateRJ, str]] = {
    "version 2": (RQ[:6] + b"\x00\x02" + RQ[8:], AssociateRJ(result=1, source=2, reason=2),
                  "protocol version 0x0002 not supported (PS3.8 9.3.2); A-ASSOCIATE-RJ sent"),
    "not ASCII": (NOT_ASCII, AAbort(source=0, reason=0),
                  "implementation version name is not ASCII: b'DICOMNET\\xff\\x1b[m'; "
                  "A-ABORT sent"),
    "P-DATA first": (encode_pdata(1, True, True, b"\x00\x00"), AAbort(source=0, reason=0),
                     "P-DATA-TF PDU before any A-ASSOCIATE-RQ; A-ABORT sent"),
    "HTTP": (b"GET / HTTP/1.1\r\n\r\n", AAbort(source=0, reason=0),
             "unrecognized PDU type 0x47; looks like an HTTP request"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_refused_connection_is_logged_with_its_reason(
        aio_log: pytest.LogCaptureFixture, case: str) -> None:
    data, answer, reason = CASES[case]

    async def main() -> bytes:
        async with running_server(providers=[VerificationSCP()]) as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            writer.write(data)
            try:
                received = await reader.readexactly(len(answer.encode()))
            finally:
                writer.close()
            await read_until_eof(reader, 10.0)
            await wait_until(lambda: not server._tasks, "the server to end the connection")
            return received

    assert run(main()) == answer.encode()
    [line] = log_lines(aio_log, level=logging.WARNING, contains="connection refused")
    assert line.startswith("connection refused: 127.0.0.1:")
    assert reason in line
