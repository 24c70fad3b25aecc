"""Review 26: the asynchronous operations window (PS3.7 D.3.3.3) as a server sees
it from a requestor that does not keep to it. A peer that negotiated a window
and then has more requests outstanding than it grants is aborted (A-ABORT),
with a line saying why, instead of being read on into a queue."""

from __future__ import annotations

import asyncio
import struct

import pytest

from dicomnet.dimse.messages import CEchoRQ, CEchoRSP, decode_message, encode_message
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import AAbort, AssociateAC, PDataTF, decode_pdu, encode_pdata
from dicomnet.ul.user_information import AsynchronousOperationsWindowSubItem
from tests.aio.helpers import LOOPBACK, association_lines, run, running_server, wait_until

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


async def _read_pdu(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(6)
    (length,) = struct.unpack(">I", head[2:])
    return head + await reader.readexactly(length)


async def _pipeline_echoes(port: int, window: AsynchronousOperationsWindowSubItem | None,
                           count: int) -> tuple[int, list[int], bool]:
    """Associate proposing ``window``, then send ``count`` C-ECHO-RQs in one write,
    without waiting for any answer: the window the server granted (1 without
    one), the Message IDs answered (Success), and whether it aborted."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        rq = build_associate_rq(calling_ae_title="PIPELINER", called_ae_title="DICOMNET-SCP",
                                contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))],
                                async_ops=window)
        writer.write(rq.encode())
        ac = decode_pdu(await _read_pdu(reader))
        assert isinstance(ac, AssociateAC)
        granted = ac.user_information.async_ops_window
        writer.write(b"".join(
            encode_pdata(1, True, True, encode_message(CEchoRQ(message_id=n + 1)))
            for n in range(count)))
        await writer.drain()
        answered: list[int] = []
        while len(answered) < count:
            try:
                pdu = decode_pdu(await _read_pdu(reader))
            except (asyncio.IncompleteReadError, ConnectionError):
                return (granted.max_operations_invoked if granted else 1), answered, False
            if isinstance(pdu, AAbort):
                return (granted.max_operations_invoked if granted else 1), answered, True
            assert isinstance(pdu, PDataTF)
            rsp = decode_message(b"".join(bytes(pdv.data) for pdv in pdu.pdvs))
            assert isinstance(rsp, CEchoRSP) and rsp.status == 0
            answered.append(rsp.message_id_being_responded_to)
        return (granted.max_operations_invoked if granted else 1), answered, False
    finally:
        writer.close()


def _slow_echo() -> VerificationSCP:
    async def on_c_echo(assoc: object) -> int:
        await asyncio.sleep(0.3)  # the requests all arrive while the first is performed
        return 0

    return VerificationSCP(on_c_echo=on_c_echo)


@pytest.mark.parametrize("invoked", [2, 0])
def test_a_peer_beyond_the_window_it_negotiated_is_aborted(
        invoked: int, caplog: pytest.LogCaptureFixture) -> None:
    """PS3.7 D.3.3.3: the requestor may have at most the negotiated number of
    operations outstanding. One with a window of 2 (or of 32, the most the server
    grants to one asking for unlimited: 0) that sends more at once is aborted,
    and the association's line says it exceeded the window; before, the server
    read on and queued the requests."""
    caplog.set_level("INFO", logger="dicomnet.aio")
    count = 5 if invoked else 40

    async def main() -> tuple[int, list[int], bool]:
        async with running_server(providers=[_slow_echo()]) as server:
            result = await _pipeline_echoes(
                server.port, AsynchronousOperationsWindowSubItem(invoked, 1), count)
            await wait_until(lambda: server.active_associations == 0, "the association's end")
            return result

    granted, answered, aborted = run(main())
    assert granted == (2 if invoked else 32)
    assert aborted
    assert len(answered) < count
    lines = association_lines(caplog)
    assert len(lines) == 1 and "PIPELINER" in lines[0] and "aborted" in lines[0]
    assert (f"{granted + 1} requests outstanding, more than the asynchronous operations "
            f"window of {granted}") in lines[0]


def test_a_peer_without_a_window_is_performed_one_at_a_time() -> None:
    """Without the sub-item, the window is 1 (PS3.7 D.3.3.3's default), yet some
    requestors send a C-ECHO while a C-STORE is outstanding: their requests are
    performed in order, one at a time, as before (not aborted)."""
    async def main() -> tuple[int, list[int], bool]:
        async with running_server(providers=[_slow_echo()]) as server:
            return await _pipeline_echoes(server.port, None, 3)

    assert run(main()) == (1, [1, 2, 3], False)


def test_a_peer_keeping_to_its_window_is_answered_whole(
        caplog: pytest.LogCaptureFixture) -> None:
    """Exactly as many requests at once as the window: all performed and answered."""
    caplog.set_level("INFO", logger="dicomnet.aio")

    async def main() -> tuple[int, list[int], bool]:
        async with running_server(providers=[_slow_echo()]) as server:
            return await _pipeline_echoes(server.port,
                                          AsynchronousOperationsWindowSubItem(4, 1), 4)

    granted, answered, aborted = run(main())
    assert (granted, sorted(answered), aborted) == (4, [1, 2, 3, 4], False)
    assert association_lines(caplog)[0].startswith(
        "association PIPELINER@127.0.0.1:")  # its line, once it ended
