"""The association's own deadlines once it is established (beyond ARTIM, which
PS3.8 defines, they are dicomnet's: ``Timeouts``): the idle timeout, and the
whole-PDU deadline inside P-DATA.

The driver re-arms its one timer only when a deadline can have moved earlier
(``Association._rearm_if_earlier``); these tests fail if a deadline
that appears or moves earlier is missed, whatever the order of the timeouts."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID

from dicomnet.aio.client import associate
from dicomnet.aio.server_association import ServerAssociation
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CEchoRQ, encode_message
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import PDataTF, PresentationDataValue
from tests.aio.helpers import (
    LOOPBACK,
    Pki,
    log_lines,
    read_until_eof,
    run,
    running_server,
    wait_until,
)
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
A_ASSOCIATE_AC = 0x02
P_DATA_TF = 0x04
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


async def _sent_then_read_to_the_end(data: bytes, **server: Any) -> bytes:
    """What a raw peer associated with a server (``running_server(**server)``)
    receives after sending ``data``, to the connection's end."""
    async with running_server(**server) as running:
        reader, writer = await _associated(running.port)
        writer.write(data)
        await writer.drain()
        try:
            return await read_until_eof(reader, 15.0)
        finally:
            writer.close()


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
    assert log_lines(aio_log, contains="nothing received or sent for 0.5s (idle timeout)")


def test_pdu_deadline_inside_p_data(aio_log: pytest.LogCaptureFixture) -> None:
    """Established, then a P-DATA-TF cut short: the PDU deadline (0.5 s) ends it
    before the idle one (30 s)."""

    # A P-DATA-TF of 100 bytes: its command PDV's header, then 10 of its 94 data bytes.
    received = run(_sent_then_read_to_the_end(
        struct.pack(">BxLLBB", 0x04, 100, 96, 1, 0x03) + bytes(10),
        timeouts=Timeouts(idle=30.0, pdu=0.5)))
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
    assert log_lines(aio_log, contains="nothing received or sent for 0.6s (idle timeout)")


def test_a_long_send_to_a_peer_that_reads_it_is_no_idleness(tmp_path: Path, pki: Pki) -> None:
    """A requestor receives nothing while it sends a data set: one that took longer
    than the idle timeout to a peer reading it steadily (through a relay passing
    64 KiB every 20 ms, ~3 MB/s) was aborted as idle mid-send ("nothing received
    for 0.8s"); a long transfer over a slow link failed the same way at 300 s.
    The DIMSE timeout, which now also bounds a send the peer stops reading, lets
    it go on too."""
    dataset = make_image(1, rows=1024, columns=1024, frames=6)  # 6 MiB of pixels
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = UID(EXPLICIT_LE)
    scp = StorageSCP(tmp_path / "store")

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(64 << 10):
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.close()

    async def fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(64 << 10):
            writer.write(chunk)
            await writer.drain()
        writer.close()

    async def main() -> tuple[int, float]:
        async with running_server(providers=[VerificationSCP(), scp],
                                  tls=pki.server_tls()) as server:
            relayed: list[asyncio.Future[tuple[BaseException | None, BaseException | None]]] = []

            async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                up_reader, up_writer = await asyncio.open_connection(LOOPBACK, server.port)
                both = asyncio.gather(slow(reader, up_writer), fast(up_reader, writer),
                                      return_exceptions=True)
                relayed.append(both)
                try:
                    await both
                finally:
                    for end in (writer, up_writer):
                        end.transport.abort()

            listener = socket.socket()
            # A small window: the sender's kernel cannot take the data set at once.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            listener.bind((LOOPBACK, 0))
            relay_server = await asyncio.start_server(relay, sock=listener)
            try:
                async with associate(
                        LOOPBACK, listener.getsockname()[1], tls=pki.client_tls(),
                        contexts=[ContextRequest(SECONDARY_CAPTURE, (EXPLICIT_LE,))],
                        timeouts=Timeouts(idle=0.8, dimse=0.8)) as assoc:
                    started = asyncio.get_running_loop().time()
                    status = await assoc.store(dataset)
                    return status.code, asyncio.get_running_loop().time() - started
            finally:
                await asyncio.wait_for(asyncio.gather(*relayed), 10)
                relay_server.close()
                await relay_server.wait_closed()

    try:
        code, took = run(main(), timeout=60)
    finally:
        scp.close()
    assert code == 0
    assert took > 0.8  # the scenario's premise: the send outlasted the idle timeout
    [stored] = (tmp_path / "store").rglob("*.dcm")
    assert stored.stat().st_size > 6 << 20


@pytest.mark.parametrize("trailing", [True, False], ids=["pdu-deadline", "idle-deadline"])
def test_deadlines_wait_while_our_reading_is_paused_and_start_again_with_it(
    aio_log: pytest.LogCaptureFixture, trailing: bool,
) -> None:
    """The server's task busy (a C-ECHO hook that waits for the test), a peer's next
    messages pile up until reading pauses (our back-pressure): the peer is not slow,
    we are not reading, so neither the PDU deadline nor the idle one runs then (they
    fired, aborting with "while reading was paused ..., not for the peer"). Once the
    hook returns, reading resumes and they start again from then: the PDU whose
    first bytes came and no more (the peer's fault now) ends the association as
    "a PDU took longer than 0.5s to arrive", or, without it, the silence that
    follows as an idle timeout."""
    from dicomnet.dimse.messages import CStoreRQ

    go_on = asyncio.Event()
    held: list[ServerAssociation] = []

    async def hook(assoc: ServerAssociation) -> int:
        held.append(assoc)
        await go_on.wait()
        return 0

    echo = PDataTF((PresentationDataValue(1, True, True, encode_message(
        CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION))),)).encode()
    command = encode_message(CStoreRQ(message_id=2, affected_sop_class_uid=VERIFICATION,
                                      affected_sop_instance_uid="1.2.3"))
    chunk = 60_000  # data PDVs in PDUs well under the server's 1 MiB
    # 3 MB of data set received whole, then waiting for the busy task: beyond the
    # inbox's limit (2 MiB), so reading pauses; then the next PDU's first bytes.
    data = [PDataTF((PresentationDataValue(1, False, i == 49, bytes(chunk)),)).encode()
            for i in range(50)]
    store = PDataTF((PresentationDataValue(1, True, True, command),)).encode()
    # The next PDU's first bytes: a command PDV of which 10 of 94 bytes came.
    after = struct.pack(">BxLLBB", 0x04, 100, 96, 1, 0x03) + bytes(10)

    async def main() -> tuple[bytes, bool]:
        loop = asyncio.get_running_loop()
        async with running_server(providers=[VerificationSCP(on_c_echo=hook)],
                                  timeouts=Timeouts(idle=0.5, pdu=0.5)) as server:
            reader, writer = await _associated(server.port)
            writer.write(echo)
            await writer.drain()
            await wait_until(lambda: bool(held), "the task to be in the hook")
            (assoc,) = held
            writer.write(store + b"".join(data) + (after if trailing else b""))
            try:
                await wait_until(lambda: assoc._paused, "the server to pause reading")
                # Three times past both deadlines, reading still paused.
                paused_until = loop.time() + 1.5
                await wait_until(lambda: loop.time() > paused_until or not assoc._paused,
                                 "time to pass")
                alive = assoc._paused and assoc.failure is None
                go_on.set()
                await writer.drain()
                return await read_until_eof(reader, 15.0), alive
            finally:
                writer.close()

    received, alive = run(main())
    assert alive, aio_log.text
    # The C-ECHO's response, the C-STORE's refusal (not on its SOP Class's context),
    # then the A-ABORT.
    assert received[:1] == bytes([P_DATA_TF]) and received[-10:-9] == bytes([A_ABORT])
    aborts = log_lines(aio_log, contains="aborting: ")
    assert aborts == [f"{LOOPBACK}:{aborts[0].split(':')[1]}: aborting: " + (
        "a PDU took longer than 0.5s to arrive" if trailing else
        "nothing received or sent for 0.5s (idle timeout)")], aio_log.text


def test_an_idle_timeout_while_our_handler_runs_blames_this_side(
        aio_log: pytest.LogCaptureFixture) -> None:
    """The peer waits for the answer to its C-ECHO, whose handler does not return:
    with no operation timeout (which bounds it otherwise:
    tests/aio/test_operation_timeout.py), the idle deadline still ends the
    association (a hung handler must not hold it for ever), but says the slow side
    is ours, not "nothing received or sent" (found by reviewing the session's
    change)."""
    echo = PDataTF((PresentationDataValue(1, True, True, encode_message(
        CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION))),)).encode()
    never = asyncio.Event()

    async def hook(assoc: object) -> int:
        await never.wait()
        return 0

    received = run(_sent_then_read_to_the_end(
        echo, providers=[VerificationSCP(on_c_echo=hook)],
        timeouts=Timeouts(idle=0.5, operation=None)))
    assert received[:1] == bytes([A_ABORT]), received
    assert log_lines(aio_log, contains="aborting: no answer from this side for 0.5s: its "
                     "handler has not returned, the peer waits for it (idle timeout)"), \
        aio_log.text
