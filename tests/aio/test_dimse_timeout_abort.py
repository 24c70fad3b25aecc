"""A DIMSE timeout (no response within ``Timeouts.dimse``) ends the association
with an A-ABORT (PS3.8 7.3, source 0: service-user), as DCMTK's SCUs and
pynetdicom do: the peer's state is unknown, and a late response must not be
taken for the answer to a later request reusing its Message ID. The request
hears DimseTimeout saying so, later calls on that association
AssociationAborted. The peer is hand-driven (tests/aio/rawscp.py): it answers
what the test says, and reads the very bytes the client sends at the end."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet import blocking
from dicomnet.aio.client import ClientAssociation, associate
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CEchoRQ, CEchoRSP, CStoreRQ
from dicomnet.errors import AssociationAborted, DimseTimeout
from tests.aio.helpers import LOOPBACK, log_lines, run, wait_until
from tests.aio.rawscp import (
    VERIFICATION,
    Answer,
    RawPeer,
    Request,
    raw_scp,
    response_pdu,
    store_into,
    store_response,
)
from tests.storage.dicomfiles import make_image, write_part10

#: A-ABORT PDU (PS3.8 9.3.8): type 07, reserved, length 4, two reserved bytes,
#: source 0 (DICOM UL service-user), reason 0 (not significant for source 0).
A_ABORT_BY_USER = bytes.fromhex("07 00 00000004 00 00 00 00")

TIMED_OUT = (r"no response to message 1 within 0\.3s \(DIMSE timeout\); "
             r"aborted by us \(A-ABORT sent\)")


def _echo_rsp(request: Request) -> bytes:
    return response_pdu(request.context_id, CEchoRSP(
        message_id_being_responded_to=request.message.message_id,  # type: ignore[union-attr]
        status=0, affected_sop_class_uid=VERIFICATION))


class _Silent:
    """An ``answer`` for raw_scp: the requests numbered in ``silent`` (from 1) get
    no response; the peer then reads on, keeping what the client sends up to
    its A-ABORT (b"" for a close without one); the others get Success."""

    def __init__(self, *silent: int) -> None:
        self.silent = set(silent)
        self.seen = 0
        self.after_silence: list[bytes] = []

    async def __call__(self, peer: RawPeer, request: Request) -> None:
        self.seen += 1
        if self.seen not in self.silent:
            if isinstance(request.message, CStoreRQ):
                await peer.send(store_response(request, 0))
            else:
                await peer.send(_echo_rsp(request))
            return
        if self.after_silence:
            return  # read up to the end already
        while True:
            try:
                pdu = await peer.read_pdu()
            except (asyncio.IncompleteReadError, ConnectionError):
                pdu = b""
            self.after_silence.append(pdu)
            if pdu[:1] in (b"", b"\x07"):
                return

    @property
    def ended(self) -> bool:
        return bool(self.after_silence) and self.after_silence[-1][:1] in (b"", b"\x07")


def test_a_dimse_timeout_aborts_the_association_and_later_calls_say_so(
        aio_log: pytest.LogCaptureFixture) -> None:
    answer = _Silent(1)

    async def main() -> tuple[str, str]:
        async with raw_scp(answer) as (port, peers):
            with pytest.raises(AssociationAborted) as later:
                async with associate(LOOPBACK, port, timeouts=Timeouts(dimse=0.3)) as assoc:
                    with pytest.raises(DimseTimeout, match=TIMED_OUT):
                        await assoc.echo()
                    await wait_until(lambda: answer.ended, "the A-ABORT")
                    await assoc.echo()
            await wait_until(peers[0].ended.is_set, "the peer's end")
            return str(later.value), peers[0].ending

    message, ending = run(main())
    assert answer.after_silence == [A_ABORT_BY_USER]
    assert ending == "closed"  # nothing after the A-ABORT: no second request, no release
    assert message == ("association aborted by us (A-ABORT sent: service-user) - no response "
                       "to message 1 within 0.3s (DIMSE timeout)")
    lines = log_lines(aio_log, contains="aborting")
    assert len(lines) == 1 and lines[0].endswith(
        "aborting: no response to message 1 within 0.3s (DIMSE timeout)")
    assert not log_lines(aio_log, contains="unsolicited")


def test_a_timeout_of_one_of_several_requests_in_flight_fails_the_others() -> None:
    """Under an asynchronous operations window (PS3.7 D.3.3.3), requests sent
    with ``send_request``: the first one's timeout aborts the association; the
    other one outstanding hears AssociationAborted, not a timeout of its own."""
    answer = _Silent(1, 2)

    async def main() -> list[BaseException | tuple[object, object]]:
        heard: list[BaseException | tuple[object, object]] = []
        async with raw_scp(answer, max_async_operations=2) as (port, _):
            assoc = await _open(port, Timeouts(dimse=0.3), window=2)
            try:
                ctx = assoc.context_for(VERIFICATION)
                for _ in range(2):
                    rq = CEchoRQ(message_id=assoc.dimse.next_message_id())
                    await assoc.send_request(rq, ctx.context_id, heard.append)
                await wait_until(lambda: len(heard) == 2, "both requests' ends")
                await wait_until(lambda: answer.ended, "the A-ABORT")
            finally:
                await assoc.abort()
        return heard

    first, second = run(main())
    assert isinstance(first, DimseTimeout)
    assert str(first).startswith("no response to message 1 within 0.3s (DIMSE timeout)")
    assert isinstance(second, AssociationAborted) and "message 1" in str(second)
    # The second request (a P-DATA-TF, 04H) came before the A-ABORT.
    assert [pdu[0] for pdu in answer.after_silence] == [4, 7]
    assert answer.after_silence[-1] == A_ABORT_BY_USER


async def _open(port: int, timeouts: Timeouts, window: int) -> ClientAssociation:
    from dicomnet.aio.client import open_association

    assoc = await open_association(LOOPBACK, port, timeouts=timeouts,
                                   max_async_operations=window)
    assert assoc.async_window == window
    return assoc


@contextlib.contextmanager
def _raw_scp_thread(answer: Answer, **options: object) -> Iterator[tuple[int, list[RawPeer]]]:
    """raw_scp in a thread of its own (the blocking API runs its loop in the test's)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    holder: list[tuple[int, list[RawPeer]]] = []

    async def serve() -> None:
        async with raw_scp(answer, **options) as (port, peers):  # type: ignore[arg-type]
            holder.append((port, peers))
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    try:
        assert started.wait(10)
        yield holder[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def test_blocking_a_dimse_timeout_aborts_and_later_calls_say_so() -> None:
    answer = _Silent(1)
    with _raw_scp_thread(answer) as (port, peers):
        with blocking.associate(LOOPBACK, port, timeouts=Timeouts(dimse=0.3)) as assoc:
            with pytest.raises(DimseTimeout, match=TIMED_OUT):
                assoc.echo()
            with pytest.raises(AssociationAborted,
                               match=r"aborted by us \(A-ABORT sent: service-user\) - no "
                               r"response to message 1 within 0\.3s \(DIMSE timeout\)"):
                assoc.echo()
        deadline = time.monotonic() + 10
        while not peers[0].ended.is_set():  # an asyncio.Event of the peer's thread
            assert time.monotonic() < deadline, "the peer never saw the end"
            time.sleep(0.01)
    assert answer.after_silence == [A_ABORT_BY_USER]
    assert peers[0].ending == "closed"


@pytest.mark.parametrize("window", [1, 3], ids=["synchronous", "window-3"])
def test_store_paths_reports_the_unanswered_object_and_the_rest(
        tmp_path: Path, window: int) -> None:
    """store_paths of 3 files to a peer that never answers the second C-STORE: the
    first is stored, the second failed by the DIMSE timeout (sent: the peer may
    hold it), the third 'not sent' (window 1) or failed by the abort (window 3:
    it was out), all three retryable; the peer reads an A-ABORT."""
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n, rows=8, columns=8),
                          ExplicitVRLittleEndian) for n in range(3)]
    answer = _Silent(2)

    async def main() -> list[tuple[bool, int | None, bool, bool, str | None]]:
        stored, _ending = await store_into(answer, files, window=window,
                                           timeouts=Timeouts(dimse=0.3))
        return [(r.ok, r.status, r.sent, r.retryable, r.error) for r in stored]

    results = run(main())
    assert answer.after_silence[-1] == A_ABORT_BY_USER
    # Window 3: the third C-STORE came in before the A-ABORT (P-DATA-TF, 04H:
    # its command's, its data set's).
    assert [pdu[0] for pdu in answer.after_silence[:-1]] == ([] if window == 1 else [4, 4])
    timed_out = "no response to message 2 within 0.3s (DIMSE timeout); aborted by us (A-ABORT sent)"
    assert results[0] == (True, 0, True, False, None)
    assert results[1] == (False, None, True, True, timed_out)
    if window == 1:
        assert results[2] == (False, None, False, True, f"not sent: {timed_out}")
    else:  # out when the association was aborted: it says why
        assert results[2] == (False, None, True, True, timed_out)



def test_send_requests_answered_in_time_share_one_timer_and_a_late_one_still_times_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The DIMSE timeouts of ``send_request`` (the store fast path) are one timer
    for them all, armed for the earliest and re-armed when it fires: a timer
    per request (call_later, its cancel, the heap's work for both) took ~300
    byte code instructions of the client's ~10,000 per sent image. The 20th
    request, never answered, still times out after its own 0.3 s."""
    answer = _Silent(20)
    armed: list[str] = []

    async def main() -> tuple[list[BaseException | tuple[object, object]], float]:
        heard: list[BaseException | tuple[object, object]] = []
        loop = asyncio.get_running_loop()
        call_at = loop.call_at

        def counted(when: float, callback: object, *args: object, **kw: object) -> object:
            armed.append(getattr(callback, "__qualname__", repr(callback)))
            return call_at(when, callback, *args, **kw)  # type: ignore[arg-type]

        async with raw_scp(answer, max_async_operations=2) as (port, _):
            assoc = await _open(port, Timeouts(dimse=0.3), window=2)
            try:
                ctx = assoc.context_for(VERIFICATION)
                monkeypatch.setattr(loop, "call_at", counted)
                for _ in range(19):
                    rq = CEchoRQ(message_id=assoc.dimse.next_message_id())
                    await assoc.send_request(rq, ctx.context_id, heard.append)
                await wait_until(lambda: len(heard) == 19, "19 answers")
                rq = CEchoRQ(message_id=assoc.dimse.next_message_id())
                sent = loop.time()
                await assoc.send_request(rq, ctx.context_id, heard.append)
                await wait_until(lambda: len(heard) == 20, "the timeout")
                waited = loop.time() - sent
                await wait_until(lambda: answer.ended, "the A-ABORT")
            finally:
                monkeypatch.undo()
                await assoc.abort()
        return heard, waited

    heard, waited = run(main())
    assert all(isinstance(h, tuple) for h in heard[:19])
    assert isinstance(heard[19], DimseTimeout)
    assert str(heard[19]).startswith("no response to message 20 within 0.3s")
    assert 0.3 <= waited < 2
    replies = [name for name in armed if "Reply" in name or "repl" in name]
    assert len(replies) <= 3, replies
