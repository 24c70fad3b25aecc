"""A requestor past the asynchronous operations window of 1 it negotiated (PS3.7
D.3.3.3) is aborted as soon as its request past the window is read, not once
the operation in progress ends: that operation, performed before the next
request is read (``ServerAssociation.perform_inline``), held the abort for as
long as its handler took, up to ``Timeouts.operation`` (300 s by default).

A requestor that negotiated no window is performed one request at a time, as
DCMTK's storescp and pynetdicom do (tests/aio/test_review26_window.py)."""

from __future__ import annotations

import asyncio
import logging
import struct
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.dimse.messages import CEchoRQ, CEchoRSP, decode_message, encode_message
from dicomnet.services.storage import StorageSCP, StoredInstance
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest, async_window, build_associate_rq
from dicomnet.ul.pdu import AAbort, AssociateAC, PDataTF, decode_pdu, encode_pdata
from dicomnet.ul.user_information import AsynchronousOperationsWindowSubItem
from tests.aio.helpers import LOOPBACK, association_lines, run, running_server, wait_until
from tests.storage.dicomfiles import SECONDARY_CAPTURE, store_payloads
from tests.storage.rawscu import store_command

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = str(ExplicitVRLittleEndian)
ECHO_CONTEXT, STORE_CONTEXT = 1, 3


async def read_pdu(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(6)
    (length,) = struct.unpack(">I", head[2:])
    return head + await reader.readexactly(length)


async def associate(port: int, window: int | None
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    """A raw association proposing the window (None: no sub-item); the window
    granted (1 without one), read from the AC as the library reads it."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    rq = build_associate_rq(
        calling_ae_title="PASTWINDOW", called_ae_title="DICOMNET-SCP",
        contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,)),
                  ContextRequest(SECONDARY_CAPTURE, (EXPLICIT_LE,))],
        async_ops=None if window is None else AsynchronousOperationsWindowSubItem(window, window))
    writer.write(rq.encode())
    ac = decode_pdu(await read_pdu(reader))
    assert isinstance(ac, AssociateAC)
    return reader, writer, async_window(rq, ac)


def echo_pdu(message_id: int) -> bytes:
    return encode_pdata(ECHO_CONTEXT, True, True, encode_message(CEchoRQ(message_id=message_id)))


class Held:
    """A handler held until ``gate`` is set (never, in these tests, before the
    peer has its answer): how many calls began, and whether one was cancelled."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls = 0
        self.cancelled = 0

    async def wait(self) -> None:
        self.calls += 1
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


async def outcome(reader: asyncio.StreamReader, bound: float) -> list[str]:
    """What the server sends within ``bound`` seconds: each PDU in words, until an
    A-ABORT or the connection's end."""
    said: list[str] = []
    try:
        async with asyncio.timeout(bound):
            while True:
                pdu = decode_pdu(await read_pdu(reader))
                if isinstance(pdu, AAbort):
                    said.append("A-ABORT")
                    return said
                assert isinstance(pdu, PDataTF)
                rsp = decode_message(b"".join(bytes(pdv.data) for pdv in pdu.pdvs))
                answered = getattr(rsp, "message_id_being_responded_to", None)
                said.append(f"{type(rsp).__name__} {answered}")
    except TimeoutError:
        said.append("nothing more")
    except (asyncio.IncompleteReadError, ConnectionError):
        said.append("closed")
    return said


@pytest.mark.parametrize("together", [True, False], ids=["one write", "second later"])
def test_a_second_echo_past_a_window_of_one_is_aborted_at_once(
        together: bool, caplog: pytest.LogCaptureFixture) -> None:
    """Window of 1 negotiated, a held C-ECHO handler: the second C-ECHO-RQ, sent
    with the first (one read, one batch) or once the first is being performed
    (read while it is), is answered by an A-ABORT within a second, the held
    handler cancelled; the association's line names the window. Before, nothing
    came until the handler returned."""
    caplog.set_level(logging.INFO, logger="dicomnet.aio")
    held = Held()

    async def on_c_echo(assoc: object) -> int:
        await held.wait()
        return 0

    async def main() -> tuple[int, list[str]]:
        async with running_server(providers=[VerificationSCP(on_c_echo=on_c_echo)]) as server:
            reader, writer, granted = await associate(server.port, 1)
            try:
                if together:
                    writer.write(echo_pdu(1) + echo_pdu(2))
                else:
                    writer.write(echo_pdu(1))
                    await wait_until(lambda: held.calls == 1, "the first C-ECHO's handler")
                    writer.write(echo_pdu(2))
                said = await outcome(reader, 3)
                await wait_until(lambda: server.active_associations == 0, "the association's end")
                return granted, said
            finally:
                held.gate.set()
                writer.close()

    granted, said = run(main())
    assert granted == 1
    assert said in (["A-ABORT"], ["closed"]), said
    assert held.calls <= 1 and held.cancelled == held.calls
    lines = [line for line in association_lines(caplog) if " -> " in line]  # its end's
    assert len(lines) == 1 and "PASTWINDOW" in lines[0] and "aborted" in lines[0]
    assert ("2 requests outstanding, more than the asynchronous operations window of 1"
            in lines[0])


def test_a_second_store_past_a_window_of_one_is_aborted_at_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The same for C-STORE-RQs whose ``on_c_store`` is held (performed by its
    handler, before the next request is read): the second one, its data set
    whole, brings an A-ABORT at once."""
    caplog.set_level(logging.INFO, logger="dicomnet.aio")
    held = Held()
    objects = store_payloads(tmp_path / "in", 2)

    async def on_c_store(instance: StoredInstance) -> None:
        await held.wait()

    async def main() -> list[str]:
        scp = StorageSCP(tmp_path / "out", on_c_store=on_c_store)
        try:
            async with running_server(providers=[scp]) as server:
                reader, writer, _ = await associate(server.port, 1)
                try:
                    for number, (uid, data) in enumerate(objects, 1):
                        writer.write(encode_pdata(STORE_CONTEXT, True, True, store_command(
                            SECONDARY_CAPTURE.encode(), uid.encode(), number)))
                        writer.write(encode_pdata(STORE_CONTEXT, False, True, data))
                        if number == 1:
                            await wait_until(lambda: held.calls == 1, "the first on_c_store")
                    said = await outcome(reader, 3)
                    await wait_until(lambda: server.active_associations == 0,
                                     "the association's end")
                    return said
                finally:
                    held.gate.set()
                    writer.close()
        finally:
            scp.close()

    said = run(main())
    assert said in (["A-ABORT"], ["closed"]), said
    assert held.calls == 1 and held.cancelled == 1
    lines = [line for line in association_lines(caplog) if " -> " in line]  # its end's
    assert len(lines) == 1 and "aborted" in lines[0]
    assert "C-STORE-RQ with Message ID 2 puts 2 requests outstanding" in lines[0]


def test_without_a_window_a_second_echo_waits_for_the_first() -> None:
    """No window negotiated: the second C-ECHO-RQ, sent while the first is held,
    is neither answered nor aborted until the first is answered; then both are,
    in order (DCMTK's storescp and pynetdicom 3.0 do the same)."""
    held = Held()

    async def on_c_echo(assoc: object) -> int:
        await held.wait()
        return 0

    async def main() -> tuple[list[str], list[str]]:
        async with running_server(providers=[VerificationSCP(on_c_echo=on_c_echo)]) as server:
            reader, writer, granted = await associate(server.port, None)
            assert granted == 1
            try:
                writer.write(echo_pdu(1) + echo_pdu(2))
                await wait_until(lambda: held.calls == 1, "the first C-ECHO's handler")
                before = await outcome(reader, 0.5)
                held.gate.set()
                after = [await outcome_one(reader) for _ in range(2)]
                return before, after
            finally:
                held.gate.set()
                writer.close()

    before, after = run(main())
    assert before == ["nothing more"]
    assert after == ["CEchoRSP 1", "CEchoRSP 2"]


async def outcome_one(reader: asyncio.StreamReader) -> str:
    pdu = decode_pdu(await asyncio.wait_for(read_pdu(reader), 10))
    assert isinstance(pdu, PDataTF), pdu
    rsp = decode_message(b"".join(bytes(pdv.data) for pdv in pdu.pdvs))
    assert isinstance(rsp, CEchoRSP) and rsp.status == 0
    return f"CEchoRSP {rsp.message_id_being_responded_to}"
