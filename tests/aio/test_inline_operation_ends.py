"""An association without an asynchronous operations window performs each request
before it reads the next (PS3.7 D.3.3.3): a slow handler (``on_c_echo``,
``on_c_store``) runs while the association's task waits for it. When the peer
aborts (PS3.8 7.3) or its connection is lost meanwhile, the association ends
then: its slot (``Limits.max_associations``, ``max_associations_per_host``) is
free, its end is told and logged once, as aborted by the peer, an async
handler is cancelled, and the answer of one that cannot be (work in a thread)
is dropped. The association kept its slot, and was not told ended, until the
handler returned.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.aio.server_events import AssociationEnded
from dicomnet.config import Limits
from dicomnet.dimse.messages import CEchoRQ, encode_message
from dicomnet.services.storage import INDEX_NAME, StorageSCP, StoredInstance
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import AAbort, encode_pdata
from tests.aio.helpers import association_lines, read_until_eof, run, running_server, wait_until
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10
from tests.storage.rawscu import RawAssociation, store_command

VERIFICATION = "1.2.840.10008.1.1"
ECHO_CONTEXT = [ContextRequest(VERIFICATION, (ImplicitVRLittleEndian,))]
STORE_CONTEXT = [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))]
#: How each ending reads in the association's end (PS3.8 AA-3, in the words of the
#: client's AssociationAborted; Evt17 with a reset), and in its line.
REASONS = {"abort": "its A-ABORT: service-user", "reset": "the peer reset the connection"}
LINES = {"abort": "by the peer, its A-ABORT: service-user", "reset": REASONS["reset"]}


async def _end(raw: RawAssociation, ending: str) -> None:
    if ending == "abort":
        await raw.abort()
    else:
        await raw.reset()


def _ended(events: list[object]) -> list[AssociationEnded]:
    return [e for e in events if isinstance(e, AssociationEnded)]


@pytest.mark.parametrize("ending", ["abort", "reset"])
def test_an_echo_handler_waiting_is_cancelled_when_the_peer_goes(
        ending: str, aio_log: pytest.LogCaptureFixture) -> None:
    entered = asyncio.Event()
    never = asyncio.Event()
    cancelled: list[bool] = []
    events: list[object] = []

    async def on_c_echo(assoc: object) -> int:
        entered.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return 0

    async def scenario() -> None:
        async with running_server(
                providers=[VerificationSCP(on_c_echo=on_c_echo)],
                limits=Limits(max_associations=1, max_associations_per_host=1),
                on_connection_event=events.append) as server:
            raw = await RawAssociation.open(server.port, ECHO_CONTEXT)
            command = encode_message(CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION))
            await raw.send(encode_pdata(raw.context_id(VERIFICATION), True, True, command))
            await asyncio.wait_for(entered.wait(), 20)
            await _end(raw, ending)
            # The handler never returns by itself: only the association's end frees it.
            await wait_until(lambda: server.active_associations == 0,
                             "the aborted association's slot to be free", timeout=20)
            # Both limits are 1: a second association is accepted only if it is.
            second = await RawAssociation.open(server.port, ECHO_CONTEXT)
            await second.release()

    run(scenario())
    assert cancelled == [True]
    (ended, _second) = _ended(events)
    assert (ended.how, ended.reason) == ("aborted", REASONS[ending])
    assert (ended.messages, ended.answers, ended.unanswered) == (1, {}, 1)
    lines = [line for line in association_lines(aio_log) if ": aborted (" in line]
    assert len(lines) == 1 and f"aborted ({LINES[ending]})" in lines[0]


@pytest.mark.parametrize("ending", ["abort", "reset"])
def test_a_store_handler_in_a_thread_has_its_answer_dropped_when_the_peer_goes(
        tmp_path: Path, ending: str, aio_log: pytest.LogCaptureFixture) -> None:
    """The handler's work in a thread cannot be cancelled: the association ends all
    the same, and what the handler answers later is sent to no one. The object was
    durable before the handler ran: it stays stored, and no temporary file stays."""
    path = write_part10(tmp_path / "in.dcm", make_image(1), ExplicitVRLittleEndian)
    info = read_part10(path)
    data = path.read_bytes()[info.dataset_offset:]
    root = tmp_path / "out"
    entered = threading.Event()
    go_on = threading.Event()
    returned: list[str] = []
    events: list[object] = []

    def slow(instance: StoredInstance) -> None:
        entered.set()
        go_on.wait(60)
        returned.append(instance.sop_instance_uid)

    async def on_c_store(instance: StoredInstance) -> None:
        await asyncio.to_thread(slow, instance)

    async def scenario() -> bytes:
        scp = StorageSCP(root, on_c_store=on_c_store)
        try:
            async with running_server(providers=[scp], limits=Limits(max_associations=1),
                                      on_connection_event=events.append) as server:
                raw = await RawAssociation.open(server.port, STORE_CONTEXT)
                await raw.send_store(raw.context_id(SECONDARY_CAPTURE),
                                     store_command(info.sop_class_uid.encode(),
                                                   info.sop_instance_uid.encode()), data)
                await asyncio.to_thread(entered.wait, 20)
                try:
                    if ending == "abort":
                        # Sent, not closed: whatever the server sends would be read.
                        await raw.send(AAbort(source=0, reason=0).encode())
                        rest = await read_until_eof(raw.reader, 20)
                    else:
                        await raw.reset()
                        rest = b""
                    await wait_until(lambda: server.active_associations == 0,
                                     "the aborted association's slot to be free", timeout=20)
                finally:
                    go_on.set()
                await wait_until(lambda: bool(returned), "the handler's thread to return")
                await raw.close()
                return rest
        finally:
            scp.close()

    rest = run(scenario())
    assert rest == b""  # no C-STORE-RSP went out, before the close or after
    assert returned == [info.sop_instance_uid]
    (ended,) = _ended(events)
    assert (ended.how, ended.reason) == ("aborted", REASONS[ending])
    assert (ended.objects, ended.answers, ended.unanswered) == (1, {}, 1)
    assert len([line for line in association_lines(aio_log) if ": aborted (" in line]) == 1
    (stored,) = root.rglob("*.dcm")
    assert stored.read_bytes()[read_part10(stored).dataset_offset:] == data
    assert [p for p in root.rglob("*") if p.is_file() and p != stored
            and not p.name.startswith(INDEX_NAME)] == []
