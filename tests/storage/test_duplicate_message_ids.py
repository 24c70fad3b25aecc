"""A request whose Message ID is that of an operation still in flight on the same
association (PS3.7 9.1.1.1.1, 10.1.1.1.1: no two outstanding operations share one)
is not performed: it is answered 0210H, Duplicate invocation (PS3.7 Annex C), its
data set dropped; the first operation is performed and answered as usual."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.aio.acceptor import AnswerTally
from dicomnet.aio.operations import MessageIds
from dicomnet.aio.server import Server, ServerAssociation
from dicomnet.config import Limits, Timeouts
from dicomnet.dimse.messages import CEchoRQ, CEchoRSP, CStoreRSP, decode_message, encode_message
from dicomnet.services.storage import StorageSCP, StoredInstance
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import AssociateAC, PDataTF, ReleaseRQ, decode_pdu, encode_pdata
from tests.aio.helpers import LOOPBACK, run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10
from tests.storage.rawscu import RawAssociation, store_command
from tests.storage.test_scp_robustness import leftovers, wait_idle

VERIFICATION = "1.2.840.10008.1.1"
DUPLICATE_INVOCATION = 0x0210


def dataset(folder: Path, number: int, rows: int, columns: int) -> tuple[str, bytes]:
    """(SOP Instance UID, data set bytes) of an image of rows x columns."""
    path = write_part10(folder / f"{number}.dcm",
                        make_image(number, rows=rows, columns=columns), ExplicitVRLittleEndian)
    info = read_part10(path)
    return info.sop_instance_uid, path.read_bytes()[info.dataset_offset:]


@pytest.mark.parametrize("window", [2, 1])
def test_a_store_reusing_an_outstanding_message_id_is_refused_not_performed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, window: int) -> None:
    """The first C-STORE is held in its on_c_store hook until the second (same
    Message ID 7, sent before the first was answered; large enough to spill to a
    temporary file) has been answered. Without a window (1) the peer breaks the
    window too: the second still arrives while the first is outstanding."""
    first = dataset(tmp_path / "in", 1, 24, 24)
    second = dataset(tmp_path / "in", 2, 1024, 1280)
    root = tmp_path / "out"
    hooked: list[str] = []

    async def scenario() -> list[object]:
        release = asyncio.Event()

        async def hold(instance: StoredInstance) -> None:
            hooked.append(instance.sop_instance_uid)
            if instance.sop_instance_uid == first[0]:
                await asyncio.wait_for(release.wait(), 10)

        scp = StorageSCP(root, on_c_store=hold)
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            peer = await RawAssociation.open(
                server.port, [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))],
                window=window)
            ctx = peer.context_id(SECONDARY_CAPTURE)
            for sop, data in (first, second):
                await peer.send_store(ctx, store_command(SECONDARY_CAPTURE.encode(),
                                                         sop.encode(), message_id=7), data)
            answers: list[object] = []
            if window > 1:
                answers.append(await peer.outcome())  # the duplicate's, while the first waits
                release.set()
                answers.append(await peer.outcome())
            else:
                # One operation at a time: the first is answered first; the
                # duplicate was refused when it arrived, answered after it.
                release.set()
                answers += [await peer.outcome(), await peer.outcome()]
            await peer.release()
            await wait_idle(server)
        return answers

    with caplog.at_level(logging.WARNING):
        answers = run(scenario())
    by_status = {a.status: a for a in answers if isinstance(a, CStoreRSP)}
    assert sorted(by_status) == [0x0000, DUPLICATE_INVOCATION], answers
    assert by_status[0].affected_sop_instance_uid == first[0]
    refused = by_status[DUPLICATE_INVOCATION]
    assert refused.message_id_being_responded_to == 7
    assert refused.affected_sop_instance_uid == second[0]
    assert hooked == [first[0]]  # the duplicate was never performed
    stored = sorted(root.rglob("*.dcm"))
    assert [read_part10(p).sop_instance_uid for p in stored] == [first[0]]
    assert {p for p in leftovers(root) if p.endswith(".dcm") or "tmp" in p} == {
        stored[0].relative_to(root).as_posix()}
    assert any("C-STORE-RQ with Message ID 7" in r.getMessage() and "0210H" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_an_echo_reusing_the_id_of_an_outstanding_store_is_refused(tmp_path: Path) -> None:
    """Message IDs are unique across operations of every kind (PS3.7 9.1.5.1.1)."""
    first = dataset(tmp_path / "in", 1, 24, 24)
    root = tmp_path / "out"

    async def scenario() -> list[object]:
        release = asyncio.Event()

        async def hold(instance: StoredInstance) -> None:
            await asyncio.wait_for(release.wait(), 10)

        scp = StorageSCP(root, on_c_store=hold)
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            peer = await RawAssociation.open(
                server.port, [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,)),
                              ContextRequest(VERIFICATION, (ImplicitVRLittleEndian,))],
                window=2)
            await peer.send_store(peer.context_id(SECONDARY_CAPTURE),
                                  store_command(SECONDARY_CAPTURE.encode(), first[0].encode(),
                                                message_id=3), first[1])
            await peer.send(encode_pdata(peer.context_id(VERIFICATION), True, True,
                                         encode_message(CEchoRQ(message_id=3))))
            echo = await peer.outcome()
            release.set()
            store = await peer.outcome()
            # Once answered, the ID is free again.
            await peer.send(encode_pdata(peer.context_id(VERIFICATION), True, True,
                                         encode_message(CEchoRQ(message_id=3))))
            again = await peer.outcome()
            await peer.release()
            await wait_idle(server)
        return [echo, store, again]

    echo, store, again = run(scenario())
    assert isinstance(echo, CEchoRSP) and echo.status == DUPLICATE_INVOCATION
    assert echo.message_id_being_responded_to == 3
    assert isinstance(store, CStoreRSP) and store.status == 0
    assert isinstance(again, CEchoRSP) and again.status == 0
    assert len(list(root.rglob("*.dcm"))) == 1


def test_a_synchronous_peer_may_use_one_message_id_for_every_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that waits for each answer may send its next request with the same ID
    (the operation is over: PS3.7 9.1.1.1.1 forbids only outstanding ones) the
    moment it reads the answer. The ID is free before that answer leaves: freed
    after it, a request read while the sender waited (here made to wait 5 ms
    after each message, as it does when the peer reads slowly) was refused
    0210H. The peer runs in a thread with a blocking socket."""
    send = ServerAssociation.send_message

    async def send_then_wait(self: ServerAssociation, *args: Any, **kwargs: Any) -> None:
        await send(self, *args, **kwargs)
        await asyncio.sleep(0.005)

    monkeypatch.setattr(ServerAssociation, "send_message", send_then_wait)
    rq = build_associate_rq(calling_ae_title="SAMEID", called_ae_title="DICOMNET-SCP",
                            contexts=[ContextRequest(VERIFICATION, (ImplicitVRLittleEndian,))],
                            max_pdu_length=16384)
    echo = encode_pdata(1, True, True, encode_message(CEchoRQ(message_id=1)))

    def peer(port: int) -> list[int]:
        statuses = []
        with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(rq.encode())
            assert isinstance(decode_pdu(_read_pdu(sock)), AssociateAC)
            for _ in range(40):
                sock.sendall(echo)
                pdu = decode_pdu(_read_pdu(sock))
                assert isinstance(pdu, PDataTF)
                rsp = decode_message(b"".join(bytes(pdv.data) for pdv in pdu.pdvs))
                assert isinstance(rsp, CEchoRSP)
                statuses.append(rsp.status)
            sock.sendall(ReleaseRQ().encode())
            decode_pdu(_read_pdu(sock))
        return statuses

    async def scenario() -> list[int]:
        async with running_server(providers=[VerificationSCP()]) as server:
            return await asyncio.to_thread(peer, server.port)

    statuses = run(scenario())
    assert statuses == [0x0000] * 40


def _read_pdu(sock: socket.socket) -> bytes:
    data = b""
    while len(data) < 6 or len(data) < 6 + struct.unpack(">I", data[2:6])[0]:
        more = sock.recv(65536)
        assert more, "connection closed"
        data += more
    return data


def test_a_message_id_reused_while_its_first_answer_is_sent_stays_held() -> None:
    """Server._perform frees a request's Message ID before its final response goes
    (the peer may reuse it once it reads that answer). A request reusing it that
    arrives while the answer still waits for the wire holds the ID from then on:
    the first operation's end must not free it again, or a third request with
    that ID, sent while the second is outstanding, would be performed instead of
    refused 0210H."""
    first, second, third = (CEchoRQ(message_id=5) for _ in range(3))

    class Stub:
        """What _perform uses of a ServerAssociation."""

        def __init__(self) -> None:
            self.unclaimed_sinks: set[object] = set()
            self.message_ids = MessageIds()
            self.answers = AnswerTally()
            self.claimed_meanwhile: bool | None = None

        async def send_message(self, response: object, context_id: int,
                               dataset: bytes | None = None) -> None:
            # The answer waits for the wire; the peer's next request is read.
            self.claimed_meanwhile = self.message_ids.claim(second)

        def operation_started(self, request: object, provider: object) -> int:
            return 1

        def operation_ended(self, number: int) -> None:
            pass

    class Echoes:
        async def handle(self, assoc: object, context_id: int, message: CEchoRQ,
                         sink: None) -> list[tuple[CEchoRSP, None]]:
            return [(CEchoRSP(message_id_being_responded_to=message.message_id, status=0), None)]

    assoc = Stub()
    assert assoc.message_ids.claim(first)
    server = Server("DICOMNET", LOOPBACK, 0, None, Timeouts(), Limits(), [VerificationSCP()])
    run(server._perform(assoc, Echoes(), 1, first, None))  # type: ignore[arg-type]
    assert assoc.claimed_meanwhile is True
    assert assoc.message_ids.claim(third) is False  # the second still holds ID 5
