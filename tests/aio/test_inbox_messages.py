"""The inbox of received requests not yet taken by the association's task is
bounded by their number, not only by their bytes (``Association._deliver``).

A requestor that negotiated no asynchronous operations window has one operation
outstanding at a time (PS3.7 D.3.3.3's default), yet the server performs
pipelined requests one at a time rather than abort (some requestors send a
C-ECHO while a C-STORE is outstanding). One that sends thousands of tiny
requests at once (a C-ECHO-RQ is an 80-byte P-DATA-TF) used to be read on until
2 MiB of command sets waited (40,000 sent: 34,000 queued, each a Python object
with a Message ID held, 15 MB of the server's memory); now reading pauses at the
end of the read that queues the 64th (1,200 queued, under 1 MB), and every
request is still performed and answered in order.
A requestor that negotiated a window and goes past it is aborted instead
(``MessageIds.claim``)."""

from __future__ import annotations

import asyncio
import struct

import pytest

from dicomnet.aio.server_association import ServerAssociation
from dicomnet.aio.server_events import AssociationEnded
from dicomnet.aio.transport import READ_SIZE
from dicomnet.dimse.messages import CEchoRQ, CEchoRSP, decode_message, encode_message
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import AAbort, AssociateAC, PDataTF, ReleaseRP, decode_pdu, encode_pdata
from dicomnet.ul.user_information import AsynchronousOperationsWindowSubItem
from tests.aio.helpers import LOOPBACK, association_lines, run, running_server, wait_until

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
RELEASE_RQ = bytes.fromhex("05 00 00000004 0000 0000")


async def _read_pdu(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(6)
    (length,) = struct.unpack(">I", head[2:])
    return head + await reader.readexactly(length)


def _echoes(count: int) -> bytes:
    """``count`` C-ECHO-RQs, Message IDs 1 to ``count``, one P-DATA-TF each."""
    return b"".join(encode_pdata(1, True, True, encode_message(CEchoRQ(message_id=n + 1)))
                    for n in range(count))


class HeldEcho:
    """An ``on_c_echo`` whose first call waits for ``release``: the requests that
    follow it can only queue meanwhile. Keeps the association it was given."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls = 0
        self.assoc: ServerAssociation | None = None

    async def __call__(self, assoc: ServerAssociation) -> int:
        self.calls += 1
        self.assoc = assoc
        await self.gate.wait()
        return 0


def _reading(assoc: ServerAssociation) -> bool:
    """Whether the server's transport reads the connection (asyncio's
    ``ReadTransport.is_reading``: False once the association paused it)."""
    transport = assoc.stream.writer.transport
    assert isinstance(transport, asyncio.ReadTransport)
    return transport.is_reading()


async def _associate(port: int, window: AsynchronousOperationsWindowSubItem | None
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    rq = build_associate_rq(calling_ae_title="BURSTER", called_ae_title="DICOMNET-SCP",
                            contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))],
                            async_ops=window)
    writer.write(rq.encode())
    assert isinstance(decode_pdu(await _read_pdu(reader)), AssociateAC)
    return reader, writer


def test_a_burst_of_requests_without_a_window_pauses_reading_and_is_answered_whole(
        caplog: pytest.LogCaptureFixture) -> None:
    """8,000 C-ECHO-RQs (640 KB) in one write, no window negotiated, the first
    one's handler held: the server stops reading within two reads of the burst
    (its transport no longer reading, most of the burst unread), instead of
    reading all of it into its queue. Let go, the handler answers every request,
    in order, Success, and the peer's release is answered."""
    caplog.set_level("INFO", logger="dicomnet.aio")
    count = 8000
    burst = _echoes(count)
    echo = HeldEcho()

    async def main() -> tuple[bool, int, int, list[int], bytes]:
        async with running_server(providers=[VerificationSCP(on_c_echo=echo)]) as server:
            reader, writer = await _associate(server.port, None)
            try:
                writer.write(burst)
                await wait_until(lambda: echo.assoc is not None, "the first C-ECHO's handler")
                assoc = echo.assoc
                assert assoc is not None
                # Reading pauses, or (without a bound on the messages) the whole
                # burst is read: either way the server is done reading for now.
                await wait_until(lambda: not _reading(assoc)
                                 or assoc.bytes_received >= len(burst), "reading to stop")
                paused, read = not _reading(assoc), assoc.bytes_received
                calls = echo.calls
                echo.gate.set()
                answered: list[int] = []
                while len(answered) < count:
                    pdu = decode_pdu(await _read_pdu(reader))
                    assert isinstance(pdu, PDataTF), pdu
                    rsp = decode_message(b"".join(bytes(pdv.data) for pdv in pdu.pdvs))
                    assert isinstance(rsp, CEchoRSP) and rsp.status == 0
                    answered.append(rsp.message_id_being_responded_to)
                writer.write(RELEASE_RQ)
                end = await _read_pdu(reader)
                writer.close()  # the requestor closes after A-RELEASE-RP (PS3.8 7.2.2)
                await wait_until(lambda: server.active_associations == 0, "the association's end")
                return paused, read, calls, answered, end
            finally:
                writer.close()

    paused, read, calls, answered, end = run(main(), timeout=60)
    assert paused, "the server read the whole burst instead of pausing"
    # The association's task takes the queue once (the first request) and reading
    # resumes: the messages of two reads at most, not the 640 KB burst.
    assert read <= 2 * READ_SIZE + 1024 < len(burst)
    assert calls == 1
    assert answered == list(range(1, count + 1))
    assert isinstance(decode_pdu(end), ReleaseRP)
    lines = association_lines(caplog)
    assert len(lines) == 1 and "BURSTER" in lines[0] and f"{count} message(s)" in lines[0]


@pytest.mark.parametrize("invoked", [1, 2])
def test_a_burst_beyond_a_negotiated_window_stops_reading_and_is_aborted(
        invoked: int, caplog: pytest.LogCaptureFixture) -> None:
    """8,000 C-ECHO-RQs (640 KB) in one write after negotiating a window of 1 (or
    2), the first one's handler held: the request past the window (PS3.7
    D.3.3.3) ends the association at once, the handler still held, so reading
    stops there, most of the burst never read
    (``AssociationEnded.bytes_received``), rather than going on while the
    handler is held. No more than the requests within the window may be
    answered before the A-ABORT, and the server's line names the window."""
    caplog.set_level("INFO", logger="dicomnet.aio")
    burst = _echoes(8000)
    echo = HeldEcho()
    ended: list[AssociationEnded] = []

    def on_event(event: object) -> None:
        if isinstance(event, AssociationEnded):
            ended.append(event)

    async def main() -> list[bytes]:
        async with running_server(providers=[VerificationSCP(on_c_echo=echo)],
                                  on_connection_event=on_event) as server:
            reader, writer = await _associate(
                server.port, AsynchronousOperationsWindowSubItem(invoked, 1))
            try:
                writer.write(burst)
                # Aborted at once, whatever the window: the request past it is met
                # as it is routed, while the first one's handler is still held, and
                # reading stops there (the handler is not waited for).
                await wait_until(
                    lambda: server.active_associations == 0 or (
                        echo.assoc is not None and not _reading(echo.assoc))
                    or (echo.assoc is not None and echo.assoc.bytes_received >= len(burst)),
                    "reading to stop")
                echo.gate.set()
                pdus: list[bytes] = []
                try:
                    while not pdus or pdus[-1][0] != AAbort.pdu_type:
                        pdus.append(await _read_pdu(reader))
                except ConnectionResetError:
                    # Closed with most of the burst unread, the server's socket
                    # resets (RFC 1122 4.2.2.13): its A-ABORT may be lost with it.
                    pdus.append(b"reset")
                await wait_until(lambda: bool(ended), "the association's end")
                return pdus
            finally:
                echo.gate.set()
                writer.close()

    pdus = run(main(), timeout=60)
    assert len(ended) == 1 and ended[0].how == "aborted"
    assert ended[0].bytes_received <= 2 * READ_SIZE < len(burst), \
        "the server read on past the request beyond the window"
    assert echo.calls <= invoked
    assert pdus[-1] == b"reset" or isinstance(decode_pdu(pdus[-1]), AAbort)
    answered = []
    for pdu in pdus[:-1]:
        data = decode_pdu(pdu)
        assert isinstance(data, PDataTF)
        rsp = decode_message(b"".join(bytes(pdv.data) for pdv in data.pdvs))
        assert isinstance(rsp, CEchoRSP) and rsp.status == 0
        answered.append(rsp.message_id_being_responded_to)
    assert answered == list(range(1, len(answered) + 1)) and len(answered) <= invoked
    lines = association_lines(caplog)
    assert len(lines) == 1 and "aborted" in lines[0]
    assert (f"{invoked + 1} requests outstanding, more than the asynchronous operations "
            f"window of {invoked}") in lines[0]
