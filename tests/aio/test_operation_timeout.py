"""``Timeouts.operation``: how long a server may take to perform one request (its
handler). A handler that never returns held its association, and its slot, for
ever once the peer had sent enough to fill the inbox: reading paused, the
peer's idle and PDU deadlines wait (they are not the peer's fault then), and
nothing else ran. Now the association is aborted (A-ABORT, PS3.8 7.3), the log
line and the ``association_ended`` event say the handler was the slow side, the
slot is freed, an async handler is cancelled, a plain one's late result is
dropped, and no temporary file stays."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.server_association import ServerAssociation
from dicomnet.aio.server_events import AssociationEnded, ConnectionEvent
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CEchoRQ, CStoreRQ, encode_message
from dicomnet.errors import ConfigurationError
from dicomnet.services.storage import StorageSCP, StoredInstance
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.part10 import Part10Info, read_part10
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import AAbort, encode_pdata
from tests.aio.helpers import log_lines, read_until_eof, run, running_server, wait_until
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10
from tests.storage.rawscu import RawAssociation, store_command

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
#: What the server sends when it aborts: source 0, the service user (PS3.8 9.3.8).
A_ABORT = AAbort(source=0, reason=0).encode()


def _slow_side(seconds: float) -> str:
    return (f"was not answered within {seconds}s: its handler has not returned, the slow "
            "side is this one (operation timeout)")


SLOW_SIDE = _slow_side(0.5)
#: For the tests where the peer fills the inbox first: time enough to send 3 MB.
PAUSED_TIMEOUT = 2.0


def _echo(message_id: int) -> bytes:
    return encode_pdata(1, True, True, encode_message(
        CEchoRQ(message_id=message_id, affected_sop_class_uid=VERIFICATION)))


def _flood(context_id: int, message_id: int) -> bytes:
    """A C-STORE-RQ with 3 MB of data set: once whole and waiting for the busy
    task, beyond the inbox's limit (2 MiB), so that the server pauses reading."""
    command = encode_message(CStoreRQ(message_id=message_id,
                                      affected_sop_class_uid=SECONDARY_CAPTURE,
                                      affected_sop_instance_uid="1.2.3.4"))
    return encode_pdata(context_id, True, True, command) + b"".join(
        encode_pdata(context_id, False, i == 49, bytes(60_000)) for i in range(50))


def _ended(events: list[ConnectionEvent]) -> AssociationEnded:
    (ended,) = [e for e in events if isinstance(e, AssociationEnded)]
    return ended


def _image(tmp_path: Path) -> tuple[Part10Info, bytes]:
    """A small image's Part 10 facts and its data set's bytes."""
    source = write_part10(tmp_path / "in.dcm", make_image(1), ExplicitVRLittleEndian)
    info = read_part10(source)
    return info, source.read_bytes()[info.dataset_offset:]


async def _store_then_flood(scp: StorageSCP, info: Part10Info, data: bytes,
                            events: list[ConnectionEvent], *, held: threading.Event,
                            let_go: threading.Event, done: threading.Event,
                            check_held: Callable[[], None] = lambda: None,
                            ) -> tuple[bytes, bytes]:
    """Store ``data``; once its store is held (``held``), a 3 MB C-STORE that
    fills the inbox; read to the end and wait for the association's slot to be
    freed; then let the held store go (``let_go``) and wait until it is ``done``.
    What the peer read before the end, and after it."""
    try:
        async with running_server(providers=[VerificationSCP(), scp],
                                  timeouts=Timeouts(operation=PAUSED_TIMEOUT),
                                  on_connection_event=events.append) as server:
            assoc = await RawAssociation.open(
                server.port, [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))])
            try:
                context = assoc.context_id(SECONDARY_CAPTURE)
                await assoc.send_store(context, store_command(
                    info.sop_class_uid.encode(), info.sop_instance_uid.encode()), data)
                assert await asyncio.to_thread(held.wait, 20)
                check_held()
                assoc.writer.write(_flood(context, 2))
                received = await read_until_eof(assoc.reader, 15.0)
                await wait_until(
                    lambda: server.active_associations == 0 and not server._tasks,
                    "the association's slot to be freed")
                let_go.set()
                assert await asyncio.to_thread(done.wait, 20)
                # The late answer, dropped, comes on the loop after it.
                await asyncio.sleep(0.05)
                return received, await assoc.reader.read()
            finally:
                let_go.set()
                await assoc.close()
    finally:
        scp.close()


def _only_the_first_stored(root: Path, data: bytes) -> None:
    """The held object under its final name (durable), and no other file: the
    flood's temporary file removed."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("index"))
    (stored,) = files
    assert stored.suffix == ".dcm"
    assert stored.read_bytes()[read_part10(stored).dataset_offset:] == data


def test_a_hung_async_handler_is_cut_while_reading_is_paused_for_it(
        aio_log: pytest.LogCaptureFixture) -> None:
    never = asyncio.Event()  # set at the end: nothing left waiting
    held: list[ServerAssociation] = []
    cancelled: list[bool] = []
    events: list[ConnectionEvent] = []

    async def hook(assoc: ServerAssociation) -> int:
        held.append(assoc)
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return 0

    async def main() -> bytes:
        async with running_server(providers=[VerificationSCP(on_c_echo=hook)],
                                  timeouts=Timeouts(operation=PAUSED_TIMEOUT),
                                  on_connection_event=events.append) as server:
            assoc = await RawAssociation.open(
                server.port, [ContextRequest(VERIFICATION, (IMPLICIT_LE,))])
            try:
                await assoc.send(_echo(1))
                await wait_until(lambda: bool(held), "the task to be in the hook")
                assoc.writer.write(_flood(1, 2))
                # The scenario's premise: the peer's deadlines wait from now on.
                await wait_until(lambda: held[0]._paused, "the server to pause reading")
                received = await read_until_eof(assoc.reader, 15.0)
                await wait_until(lambda: server.active_associations == 0 and not server._tasks,
                                 "the association's slot to be freed")
                return received
            finally:
                never.set()
                await assoc.close()

    received = run(main())
    assert received == A_ABORT  # no C-ECHO-RSP, nothing else
    assert cancelled == [True]
    slow = _slow_side(PAUSED_TIMEOUT)
    assert log_lines(aio_log, contains=f"aborting: a C-ECHO-RQ {slow}"), aio_log.text
    ended = _ended(events)
    assert (ended.how, ended.reason) == ("aborted", f"a C-ECHO-RQ {slow}")


def test_hung_handlers_filling_the_window_are_cut(
        aio_log: pytest.LogCaptureFixture) -> None:
    """Two operations at once (PS3.7 D.3.3.3), both hung, the window full: the
    timeout cancels both. (A third request sent then, beyond the window, aborts
    the association itself: test_review26_window.)"""
    never = asyncio.Event()
    calls: list[int] = []
    events: list[ConnectionEvent] = []

    async def hook(assoc: ServerAssociation) -> int:
        calls.append(1)
        await never.wait()
        return 0

    async def main() -> bytes:
        async with running_server(providers=[VerificationSCP(on_c_echo=hook)],
                                  timeouts=Timeouts(operation=0.5),
                                  on_connection_event=events.append) as server:
            assoc = await RawAssociation.open(
                server.port, [ContextRequest(VERIFICATION, (IMPLICIT_LE,))], window=2)
            assert assoc.window == 2
            try:
                await assoc.send(_echo(1), _echo(2))
                received = await read_until_eof(assoc.reader, 15.0)
                await wait_until(lambda: server.active_associations == 0 and not server._tasks,
                                 "the association's slot to be freed")
                return received
            finally:
                never.set()
                await assoc.close()

    received = run(main())
    assert received == A_ABORT
    assert calls == [1, 1]
    assert _ended(events).reason == f"a C-ECHO-RQ {SLOW_SIDE}"


def test_a_hung_plain_store_handler_is_cut_its_late_answer_dropped(
        tmp_path: Path, aio_log: pytest.LogCaptureFixture) -> None:
    """A plain ``on_c_store`` (in a worker thread, which cannot be stopped) blocks
    while a second, large C-STORE fills the inbox: the association is aborted,
    the stored object stays under its final name and nothing else is on disk
    (the second data set's temporary file removed); the handler's result, once
    it returns, is dropped."""
    info, data = _image(tmp_path)
    root = tmp_path / "out"
    entered, go_on, returned = threading.Event(), threading.Event(), threading.Event()
    events: list[ConnectionEvent] = []

    def on_c_store(instance: StoredInstance) -> int:
        entered.set()
        go_on.wait(60)
        returned.set()
        return 0

    received, after = run(_store_then_flood(
        StorageSCP(root, on_c_store=on_c_store), info, data, events,
        held=entered, let_go=go_on, done=returned))
    assert (received, after) == (A_ABORT, b"")
    slow = _slow_side(PAUSED_TIMEOUT)
    assert log_lines(aio_log, contains=f"aborting: a C-STORE-RQ {slow}"), aio_log.text
    assert (_ended(events).reason or "").startswith(f"a C-STORE-RQ {slow}")
    _only_the_first_stored(root, data)


def test_the_timeout_is_positive_or_none() -> None:
    with pytest.raises(ConfigurationError, match="timeout operation must be positive"):
        Timeouts(operation=0)
    assert Timeouts().operation == 300.0 and Timeouts(operation=None).operation is None


def test_while_an_answer_is_owed_the_idle_deadline_gives_way_to_the_operation_timeout(
        aio_log: pytest.LogCaptureFixture) -> None:
    """A handler allowed longer than the idle timeout is not cut at the idle
    timeout: the peer, waiting for its answer, is not idle. The operation
    timeout ends it, in its words."""
    never = asyncio.Event()
    events: list[ConnectionEvent] = []

    async def hook(assoc: ServerAssociation) -> int:
        await never.wait()
        return 0

    async def main() -> bytes:
        async with running_server(providers=[VerificationSCP(on_c_echo=hook)],
                                  timeouts=Timeouts(idle=0.2, operation=0.5),
                                  on_connection_event=events.append) as server:
            assoc = await RawAssociation.open(
                server.port, [ContextRequest(VERIFICATION, (IMPLICIT_LE,))])
            try:
                await assoc.send(_echo(1))
                return await read_until_eof(assoc.reader, 15.0)
            finally:
                never.set()
                await assoc.close()

    assert run(main()) == A_ABORT
    assert _ended(events).reason == f"a C-ECHO-RQ {SLOW_SIDE}"
    assert log_lines(aio_log, contains="idle timeout") == [], aio_log.text



def test_a_hung_store_round_on_the_fast_path_is_cut_while_reading_is_paused(
        tmp_path: Path, aio_log: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No handler (``dicomnet serve``): a small object goes to the store thread
    without a task (``StorageSCP.start``), and that thread's round hangs (an
    fsync that never returns, simulated): a second, large C-STORE fills the
    inbox (the window of one is taken, reading pauses). The association is
    aborted at the operation timeout, naming the store as the slow side, its
    slot freed; the second data set's temporary file is removed. The round,
    let go after the abort, names its file (durable, may stay) and answers
    nothing; no temporary file is left."""
    info, data = _image(tmp_path)
    root = tmp_path / "out"
    entered, go_on, finished = threading.Event(), threading.Event(), threading.Event()
    events: list[ConnectionEvent] = []
    finish_round, start = StorageSCP._finish_round, StorageSCP.start
    started: list[bool] = []

    def hung_round(self: StorageSCP, round_: object) -> object:
        entered.set()
        go_on.wait(60)
        try:
            return finish_round(self, round_)  # type: ignore[arg-type]
        finally:
            finished.set()

    def recorded_start(self: StorageSCP, *args: Any) -> bool:
        started.append(start(self, *args))
        return started[-1]

    def on_the_fast_path() -> None:
        assert started == [True]  # no task, no handle()

    monkeypatch.setattr(StorageSCP, "_finish_round", hung_round)
    monkeypatch.setattr(StorageSCP, "start", recorded_start)
    received, after = run(_store_then_flood(
        StorageSCP(root), info, data, events, held=entered, let_go=go_on, done=finished,
        check_held=on_the_fast_path))
    assert (received, after) == (A_ABORT, b"")
    slow = (f"was not answered within {PAUSED_TIMEOUT}s: its store has not finished "
            "(writing it to disk), the slow side is this one (operation timeout)")
    assert log_lines(aio_log, contains=f"aborting: a C-STORE-RQ {slow}"), aio_log.text
    assert _ended(events).reason == f"a C-STORE-RQ {slow}"
    _only_the_first_stored(root, data)  # the hung round's, named once let go
