"""The association's own deadlines once it is established (beyond ARTIM, which
PS3.8 defines, they are dicomnet's: ``Timeouts``): the idle timeout, and the
whole-PDU deadline inside P-DATA.

The driver re-arms its one timer only when a deadline can have moved earlier
(``Association._rearm_if_earlier``); these tests fail if a deadline
that appears or moves earlier is missed, whatever the order of the timeouts."""

from __future__ import annotations

import asyncio
import struct

import pytest

from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CEchoRQ, encode_message
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import PDataTF, PresentationDataValue
from tests.aio.helpers import LOOPBACK, log_lines, read_until_eof, run, running_server

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
A_ASSOCIATE_AC = 0x02
A_ABORT = 0x07


async def _associated(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw peer that opened an association on ``port`` (its A-ASSOCIATE-AC read)."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(build_associate_rq(
        calling_ae_title="SILENT", called_ae_title="DICOMNET-SCP",
        contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))], max_pdu_length=16384,
    ).encode())
    await writer.drain()
    header = await asyncio.wait_for(reader.readexactly(6), 10)
    assert header[0] == A_ASSOCIATE_AC
    await asyncio.wait_for(reader.readexactly(struct.unpack(">L", header[2:])[0]), 10)
    return reader, writer


@pytest.mark.parametrize("pdu", [30.0, None])
def test_idle_timeout_shorter_than_the_pdu_deadline(
    aio_log: pytest.LogCaptureFixture, pdu: float | None,
) -> None:
    """Established, then silent: the idle deadline (0.5 s) ends it, not the PDU
    deadline or ARTIM (30 s), although the timer was armed for those first."""

    async def main() -> tuple[bytes, float]:
        async with running_server(timeouts=Timeouts(idle=0.5, pdu=pdu, artim=30.0)) as server:
            reader, writer = await _associated(server.port)
            started = asyncio.get_running_loop().time()
            try:
                received = await read_until_eof(reader, 15.0)
            finally:
                writer.close()
            return received, asyncio.get_running_loop().time() - started

    received, waited = run(main())
    assert received[:1] == bytes([A_ABORT])
    assert waited < 15.0  # read_until_eof's own limit: the 30 s deadlines did not do it
    assert log_lines(aio_log, contains="nothing received for 0.5s (idle timeout)")


def test_pdu_deadline_inside_p_data(aio_log: pytest.LogCaptureFixture) -> None:
    """Established, then a P-DATA-TF cut short: the PDU deadline (0.5 s) ends it
    before the idle one (30 s)."""

    async def main() -> bytes:
        async with running_server(timeouts=Timeouts(idle=30.0, pdu=0.5)) as server:
            reader, writer = await _associated(server.port)
            # A P-DATA-TF of 100 bytes: its command PDV's header, then 10 of its 94
            # data bytes.
            writer.write(struct.pack(">BxLLBB", 0x04, 100, 96, 1, 0x03) + bytes(10))
            await writer.drain()
            try:
                return await read_until_eof(reader, 15.0)
            finally:
                writer.close()

    received = run(main())
    assert received[:1] == bytes([A_ABORT])
    assert log_lines(aio_log, contains="a PDU took longer than 0.5s to arrive")
    assert not log_lines(aio_log, contains="idle timeout")


def test_reads_push_the_idle_deadline_later(aio_log: pytest.LogCaptureFixture) -> None:
    """Data arriving within the idle timeout keeps the association: echoes every
    0.2 s for 1.2 s under a 0.6 s idle timeout, then silence ends it."""
    async def main() -> tuple[int, bytes]:
        command = encode_message(CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION))
        pdu = PDataTF((PresentationDataValue(1, True, True, command),)).encode()
        async with running_server(timeouts=Timeouts(idle=0.6, pdu=30.0)) as server:
            reader, writer = await _associated(server.port)
            answered = 0
            try:
                for _ in range(6):
                    writer.write(pdu)
                    await writer.drain()
                    header = await asyncio.wait_for(reader.readexactly(6), 10)
                    assert header[0] == 0x04  # the C-ECHO-RSP's P-DATA-TF
                    await reader.readexactly(struct.unpack(">L", header[2:])[0])
                    answered += 1
                    await asyncio.sleep(0.2)  # pacing the peer, under the idle timeout
                return answered, await read_until_eof(reader, 15.0)
            finally:
                writer.close()

    answered, received = run(main())
    assert answered == 6
    assert received[:1] == bytes([A_ABORT])
    assert log_lines(aio_log, contains="nothing received for 0.6s (idle timeout)")
