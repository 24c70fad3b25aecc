"""The client's response path against a hand-driven SCP (tests/aio/rawscp.py):
responses pending, cut across PDUs and reads, several in one read and out of
order, unsolicited, malformed, late or missing, and a peer that hangs up."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from pathlib import Path

import pytest

from dicomnet.aio.client import ClientAssociation, associate, open_association
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CCancelRQ, CEchoRQ, CEchoRSP, CFindRQ, CFindRSP
from dicomnet.dimse.status import Status
from dicomnet.errors import AssociationAborted, DicomNetError, DimseTimeout, LocalProtocolError
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import AAbort, ReleaseRQ, encode_pdata
from tests.aio.helpers import LOOPBACK, other_tasks, run, wait_until
from tests.aio.rawscp import (
    EXPLICIT_LE,
    IMPLICIT_LE,
    PEER_TASK,
    VERIFICATION,
    RawPeer,
    Request,
    leave_find_after_one,
    raw_scp,
    response_pdu,
)

PENDING, SUCCESS = 0xFF00, 0x0000
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _rsp(request: Request, status: int = SUCCESS, message_id: int | None = None) -> bytes:
    responded = request.message.message_id if message_id is None else message_id  # type: ignore[union-attr]
    return response_pdu(request.context_id, CEchoRSP(
        message_id_being_responded_to=responded, status=status,
        affected_sop_class_uid=VERIFICATION))


def _echo_rq(assoc: ClientAssociation) -> tuple[CEchoRQ, int]:
    ctx = assoc.context_for(VERIFICATION)
    return CEchoRQ(message_id=assoc.dimse.next_message_id()), ctx.context_id


async def _ended(peers: list[RawPeer]) -> str:
    await wait_until(lambda: bool(peers) and peers[0].ended.is_set(), "the peer's end")
    return peers[0].ending


def _find_rsp(request: Request, status: int) -> bytes:
    return response_pdu(request.context_id, CFindRSP(
        message_id_being_responded_to=request.message.message_id,  # type: ignore[union-attr]
        status=status, affected_sop_class_uid=VERIFICATION))


def test_pending_responses_come_first_then_the_final_one() -> None:
    """A C-FIND (PS3.7 9.1.2) yields its pending responses, then its final one; a
    C-ECHO, which has one response (9.1.5), ends with its first, even Pending (a
    faulty peer's): the two after it answer nothing outstanding, and abort."""
    async def answer(peer: RawPeer, request: Request) -> None:
        rsp = _find_rsp if isinstance(request.message, CFindRQ) else _rsp
        await peer.send(rsp(request, PENDING), rsp(request, PENDING), rsp(request, SUCCESS))

    async def main() -> tuple[list[int], list[int], str]:
        async with raw_scp(answer) as (port, peers):
            async with associate(LOOPBACK, port) as assoc:
                context_id = assoc.context_for(VERIFICATION).context_id
                find = CFindRQ(message_id=assoc.dimse.next_message_id(),
                               affected_sop_class_uid=VERIFICATION)
                found = [rsp.status async for rsp, _ in  # type: ignore[union-attr]
                         assoc.request(find, context_id, dataset=b"")]
                rq, context_id = _echo_rq(assoc)
                echoed = [rsp.status async for rsp, _ in  # type: ignore[union-attr]
                          assoc.request(rq, context_id)]
                await wait_until(lambda: assoc.failure is not None, "the abort")
            return found, echoed, await _ended(peers)

    assert run(main()) == ([PENDING, PENDING, SUCCESS], [PENDING], "abort")


def test_a_response_cut_across_pdus_and_reads() -> None:
    async def answer(peer: RawPeer, request: Request) -> None:
        whole = _rsp(request)[12:]  # the command set: after the PDU and PDV headers
        thirds = [whole[:10], whole[10:40], whole[40:]]
        pdus = [encode_pdata(request.context_id, True, i == 2, part)
                for i, part in enumerate(thirds)]
        stream = b"".join(pdus)
        for start in range(0, len(stream), 7):  # 7 bytes a write: many reads
            await peer.send(stream[start:start + 7])

    async def main() -> int:
        async with raw_scp(answer) as (port, _), associate(LOOPBACK, port) as assoc:
            return int(await assoc.echo())

    assert run(main()) == SUCCESS


def test_responses_in_one_read_and_out_of_order_reach_their_requests() -> None:
    held: list[Request] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        held.append(request)
        if len(held) == 3:  # all three outstanding: answer in reverse, in one write
            await peer.send(b"".join(_rsp(r, status=0xB000 + i) for i, r in
                                     reversed(list(enumerate(held)))))

    async def main() -> tuple[list[int], list[int]]:
        async with (raw_scp(answer, max_async_operations=3) as (port, _),
                    associate(LOOPBACK, port, max_async_operations=3) as assoc):
            assert assoc.async_window == 3
            requests = [_echo_rq(assoc) for _ in range(3)]
            replies = await asyncio.gather(*(assoc.request_one(rq, cid)
                                             for rq, cid in requests))
        return ([rq.message_id for rq, _ in requests],
                [rsp.message_id_being_responded_to for rsp, _ in replies])  # type: ignore[union-attr]

    sent, answered = run(main())
    assert answered == sent
    assert [r.message.message_id for r in held] == sent  # type: ignore[union-attr]


def test_a_response_to_no_outstanding_request_aborts_at_once() -> None:
    """An SCP that answers message 1 with ID 7 (PS3.7 9.1: a response names the
    request it answers): a protocol error, the association is aborted (A-ABORT,
    PS3.8 7.3) at once, and the request hears which ID came and which were
    outstanding, rather than waiting out the DIMSE timeout."""
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(_rsp(request, SUCCESS, message_id=7))

    async def main() -> tuple[BaseException | None, str]:
        raised: BaseException | None = None
        async with raw_scp(answer) as (port, peers):
            try:
                async with associate(LOOPBACK, port, timeouts=Timeouts(dimse=120)) as assoc:
                    await assoc.echo()
            except AssociationAborted as exc:
                raised = exc
            return raised, await _ended(peers)

    raised, ending = run(main())
    assert isinstance(raised, AssociationAborted)
    assert "CEchoRSP to message 7, which is not outstanding" in str(raised)
    assert "outstanding: 1" in str(raised)
    assert ending == "abort"


def test_a_response_to_no_outstanding_request_fails_every_request_outstanding() -> None:
    """Three echoes outstanding under a window of 3, answered with message ID 99:
    all three fail at once, each naming the IDs outstanding."""
    held: list[Request] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        held.append(request)
        if len(held) == 3:
            await peer.send(_rsp(request, message_id=99))

    async def main() -> list[object]:
        async with (raw_scp(answer, max_async_operations=3) as (port, _),
                    associate(LOOPBACK, port, max_async_operations=3,
                              timeouts=Timeouts(dimse=120)) as assoc):
            return list(await asyncio.gather(*(assoc.echo() for _ in range(3)),
                                             return_exceptions=True))

    outcomes = run(main())
    assert all(isinstance(o, AssociationAborted) for o in outcomes), outcomes
    assert all("message 99, which is not outstanding (outstanding: 1, 2, 3)" in str(o)
               for o in outcomes), outcomes


def test_a_second_final_response_to_a_request_aborts() -> None:
    """A duplicate: the echo has its answer, the same response again answers
    nothing outstanding (PS3.7 9.1.5: one response): the association is aborted."""
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(_rsp(request), _rsp(request, 0xC000))

    async def main() -> tuple[int, str, str]:
        async with raw_scp(answer) as (port, peers):
            async with associate(LOOPBACK, port) as assoc:
                status = int(await assoc.echo())
                await wait_until(lambda: assoc.failure is not None, "the abort")
                failure = str(assoc.failure)
            return status, failure, await _ended(peers)

    status, failure, ending = run(main())
    assert status == SUCCESS
    assert "CEchoRSP to message 1, which is not outstanding" in failure
    assert ending == "abort"


def test_a_response_to_a_request_its_caller_abandoned_is_ignored(
        caplog: pytest.LogCaptureFixture) -> None:
    """The echo's task is cancelled while its request is out (an asyncio.wait_for
    around it, say): its late response answers a request of ours, and is
    dropped; the next echo is answered and the association released. (A window
    of 2: the first keeps its slot until answered, tests/aio/test_abandoned_requests.py.)"""
    async def answer(peer: RawPeer, request: Request) -> None:
        if len(peer.requests) == 2:  # the first one's answer comes late, before the second's
            await peer.send(_rsp(peer.requests[0], 0xC000), _rsp(request))

    async def main() -> tuple[int, str]:
        async with raw_scp(answer, max_async_operations=2) as (port, peers):
            async with associate(LOOPBACK, port, max_async_operations=2) as assoc:
                first = asyncio.ensure_future(assoc.echo())
                await wait_until(lambda: bool(peers) and len(peers[0].requests) == 1,
                                 "the first request")
                first.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await first
                status = int(await assoc.echo())
            return status, await _ended(peers)

    with caplog.at_level(logging.DEBUG, logger="dicomnet.aio"):
        assert run(main()) == (SUCCESS, "release")
    assert any("CEchoRSP to message 1, whose caller abandoned it, ignored" in r.getMessage()
               for r in caplog.records)


def test_responses_to_a_find_its_caller_stopped_reading_are_ignored() -> None:
    """A C-FIND whose caller leaves after its first pending response: the pending
    and final responses after it answer a request of ours, and are dropped (a
    window of 2, as above). This SCP ignores the find's C-CANCEL-RQ."""
    async def answer(peer: RawPeer, request: Request) -> None:
        if isinstance(request.message, CCancelRQ):
            return
        if isinstance(request.message, CFindRQ):
            await peer.send(_find_rsp(request, PENDING))
        else:  # the find's rest, before the echo's answer
            find = peer.requests[0]
            await peer.send(_find_rsp(find, PENDING), _find_rsp(find, SUCCESS), _rsp(request))

    async def main() -> tuple[int, str]:
        async with raw_scp(answer, max_async_operations=2) as (port, peers):
            async with associate(LOOPBACK, port, max_async_operations=2) as assoc:
                await leave_find_after_one(assoc)
                status = int(await assoc.echo())
            return status, await _ended(peers)

    assert run(main()) == (SUCCESS, "release")


@pytest.mark.parametrize("command", [
    b"\x00\x00\x00\x00\x04\x00\x00\x00\xff\xff\xff\x7f",  # group length past the end
    b"\x00\x00\x00\x01\x02\x00\x00\x00\x30\x80",  # no group length, no message ID
    b"\x01\x02\x03",  # not even an element header
], ids=["group-length", "missing-elements", "truncated"])
def test_a_malformed_response_aborts_the_association(command: bytes) -> None:
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(encode_pdata(request.context_id, True, True, command))

    async def main() -> tuple[str, str]:
        async with raw_scp(answer) as (port, peers):
            with pytest.raises(AssociationAborted) as caught:
                async with associate(LOOPBACK, port) as assoc:
                    try:
                        await assoc.echo()
                    finally:
                        # The A-ABORT goes out at once, not when the block ends.
                        ending = await _ended(peers)
            return str(caught.value), ending

    message, ending = run(main())
    assert "invalid DIMSE data from peer" in message
    assert ending == "abort"  # PS3.8 9.2: AA-8 on invalid data


def test_no_response_is_a_dimse_timeout_and_the_association_is_aborted() -> None:
    async def answer(peer: RawPeer, request: Request) -> None:
        return None  # never answers

    async def main() -> str:
        async with raw_scp(answer) as (port, peers):
            with pytest.raises(DimseTimeout, match=r"no response to message 1 within 0\.3s"):
                async with associate(LOOPBACK, port, timeouts=Timeouts(dimse=0.3)) as assoc:
                    await assoc.echo()
            return await _ended(peers)

    assert run(main()) == "abort"


def test_a_peer_that_hangs_up_fails_the_pending_request() -> None:
    async def answer(peer: RawPeer, request: Request) -> None:
        peer.writer.close()

    async def main() -> None:
        async with raw_scp(answer) as (port, _):
            with pytest.raises(AssociationAborted):
                async with associate(LOOPBACK, port) as assoc:
                    await assoc.echo()

    run(main())


def test_a_lone_request_is_written_at_once_and_concurrent_ones_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One request outstanding: nothing else can join its write, so it goes out
    at once (a synchronous sender's next request is not held to the end of the
    loop's round); with several outstanding, small messages still wait for the
    round's end and leave together."""
    deferred: list[int] = []
    original = ClientAssociation._queue_out_soon

    def spy(self: ClientAssociation) -> None:
        deferred.append(len(self._replies))
        original(self)

    monkeypatch.setattr(ClientAssociation, "_queue_out_soon", spy)
    held: list[Request] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        if request.message.message_id <= 3:  # type: ignore[union-attr]
            await peer.send(_rsp(request))
            return
        held.append(request)
        if len(held) == 3:
            await peer.send(*(_rsp(r) for r in held))

    async def main() -> list[int]:
        async with (raw_scp(answer, max_async_operations=3) as (port, _),
                    associate(LOOPBACK, port, max_async_operations=3) as assoc):
            statuses = [int(await assoc.echo()) for _ in range(3)]
            assert deferred == []
            replies = await asyncio.gather(*(assoc.request_one(*_echo_rq(assoc))
                                             for _ in range(3)))
            return statuses + [rsp.status for rsp, _ in replies]  # type: ignore[union-attr]

    assert run(main()) == [SUCCESS] * 6
    assert deferred and all(outstanding > 1 for outstanding in deferred)


def test_a_release_left_unanswered_ends_in_an_abort() -> None:
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(_rsp(request))

    async def main() -> tuple[int, str]:
        async with raw_scp(answer, answer_release=False) as (port, peers):
            async with associate(LOOPBACK, port, timeouts=Timeouts(acse=0.3)) as assoc:
                status = int(await assoc.echo())
            # The block ended with release(): no A-RELEASE-RP came within the ACSE
            # timeout, so the client aborted (PS3.8 7.2 leaves it no other way).
            return status, await _ended(peers)

    status, ending = run(main())
    assert status == SUCCESS
    assert ending == "abort"


def test_a_release_cancelled_while_unanswered_still_closes_the_connection() -> None:
    """Ctrl-C (a cancel) while release() waits for an A-RELEASE-RP that never
    comes: the cancel goes on up, and the connection is closed all the same."""
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(_rsp(request))

    async def main() -> tuple[bool, bool, str]:
        async with raw_scp(answer, answer_release=False) as (port, peers):
            assoc = await open_association(LOOPBACK, port)
            await assoc.echo()
            releasing = asyncio.create_task(assoc.release())
            await wait_until(lambda: bool(peers) and peers[0].ending == "release",
                             "the peer to receive the A-RELEASE-RQ")
            releasing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await releasing
            return releasing.cancelled(), assoc.stream.writer.is_closing(), await _ended(peers)

    cancelled, closing, ending = run(main())
    assert cancelled and closing
    assert ending == "closed"


def test_a_release_requested_by_the_acceptor_is_answered_and_ends_the_association() -> None:
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(_rsp(request), ReleaseRQ().encode())

    async def main() -> tuple[int, str]:
        async with raw_scp(answer) as (port, peers):
            async with associate(LOOPBACK, port) as assoc:
                status = int(await assoc.echo())
                ending = await _ended(peers)
                # Nothing is sent on a released association; the request says who
                # ended it (not "not established", as if we had misused the API).
                with pytest.raises(AssociationAborted, match=r"peer released the association"):
                    await assoc.echo()
            return status, ending

    status, ending = run(main())
    assert status == SUCCESS
    assert ending == "release-rp"  # PS3.8 9.2, AR-2/AR-4: the requestor answers


def _garbage(seed: int) -> bytes:
    """Hostile answers to a C-ECHO: noise, PDUs of unknown types, a P-DATA-TF whose
    PDV lengths lie, a PDU header promising more than comes, and valid framing
    around random command bytes."""
    rng = random.Random(seed)
    kind = seed % 5
    if kind == 0:
        return rng.randbytes(rng.randint(1, 300))
    if kind == 1:
        body = rng.randbytes(rng.randint(0, 40))
        return bytes([rng.choice([0x08, 0x09, 0x00, 0x42, 0xFF]), 0]) + \
            struct.pack(">I", len(body)) + body
    if kind == 2:
        pdv = rng.randbytes(rng.randint(2, 30))
        claimed = len(pdv) + rng.choice([-3, -1, 1, 5, 1 << 20])
        body = struct.pack(">I", max(claimed, 0)) + pdv
        return b"\x04\x00" + struct.pack(">I", len(body)) + body
    if kind == 3:  # a well-formed start, then silence: the rest never comes
        length = rng.randint(100, 1 << 16)
        pdv_start = struct.pack(">IBB", length - 4, 1, 0x03) + rng.randbytes(14)
        return b"\x04\x00" + struct.pack(">I", length) + pdv_start
    command = rng.randbytes(rng.randint(0, 120))
    return encode_pdata(1, True, True, command)


@pytest.mark.parametrize("seed", range(25))
def test_hostile_answers_end_in_an_error_never_a_hang(seed: int) -> None:
    """Whatever comes back, the echo ends within its bounds with one of our errors
    (or, for kind 3, a PDU that never completes, the PDU deadline), and the
    client leaves no task behind."""
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(_garbage(seed))

    async def main() -> tuple[type[BaseException] | None, set[asyncio.Task[object]]]:
        raised: type[BaseException] | None = None
        async with raw_scp(answer) as (port, _):
            try:
                async with associate(LOOPBACK, port, timeouts=Timeouts(dimse=1, pdu=1)) as assoc:
                    await assoc.echo()
            except DicomNetError as exc:
                raised = type(exc)
            left = {t for t in other_tasks() if t.get_name() != PEER_TASK}
        return raised, left

    raised, left = run(main(), timeout=20)
    assert raised is not None, "a hostile answer was taken for a response"
    assert issubclass(raised, (AssociationAborted, DimseTimeout))
    assert not left


def test_responses_read_with_an_a_abort_still_reach_their_requests() -> None:
    """Two responses and an A-ABORT in one write (one read): the two requests
    answered hear their Success, the third the abort (PS3.8: what came before
    the A-ABORT was received)."""
    held: list[Request] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        held.append(request)
        if len(held) == 3:
            await peer.send(_rsp(held[0]) + _rsp(held[1]) + AAbort(source=2, reason=0).encode())

    async def main() -> list[object]:
        async with (raw_scp(answer, max_async_operations=3) as (port, _),
                    associate(LOOPBACK, port, max_async_operations=3) as assoc):
            outcomes = await asyncio.gather(
                *(assoc.request_one(*_echo_rq(assoc)) for _ in range(3)),
                return_exceptions=True)
        return [o if isinstance(o, BaseException) else o[0].status for o in outcomes]  # type: ignore[union-attr]

    first, second, third = run(main())
    assert (first, second) == (SUCCESS, SUCCESS)
    assert isinstance(third, AssociationAborted)
    assert "aborted by the peer (its A-ABORT: service-provider" in str(third)


@pytest.mark.parametrize(("granted", "proposed"), [(1, 1), (1, 5), (2, 5)])
def test_concurrent_callers_never_exceed_the_window_the_peer_granted(
        monkeypatch: pytest.MonkeyPatch, granted: int, proposed: int) -> None:
    """Five echoes at once from five tasks: at most ``granted`` requests are ever
    outstanding (PS3.7 D.3.3.3.1), and every one is answered."""
    outstanding: list[int] = []
    original = ClientAssociation.send_message

    async def spy(self: ClientAssociation, *args: object, **kwargs: object) -> None:
        outstanding.append(len(self._replies))
        await original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ClientAssociation, "send_message", spy)

    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(_rsp(request))

    async def main() -> tuple[int, list[Status]]:
        async with (raw_scp(answer, max_async_operations=granted) as (port, _),
                    associate(LOOPBACK, port, max_async_operations=proposed) as assoc):
            return assoc.async_window, list(
                await asyncio.gather(*(assoc.echo() for _ in range(5))))

    window, statuses = run(main())
    assert window == granted
    assert [int(s) for s in statuses] == [SUCCESS] * 5
    assert len(outstanding) == 5 and max(outstanding) <= granted
    if granted > 1:
        assert max(outstanding) == granted  # the window is used, not just respected


# -- send_request: one response, to a callback --------------------------------------


def test_send_request_hands_the_response_to_its_callback_once() -> None:
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(_rsp(request), _rsp(request))  # the second is a duplicate

    async def main() -> tuple[list[object], int, str]:
        got: list[object] = []
        async with raw_scp(answer) as (port, _), associate(LOOPBACK, port) as assoc:
            rq, ctx = _echo_rq(assoc)
            await assoc.send_request(rq, ctx, got.append)
            await wait_until(lambda: assoc.failure is not None, "the duplicate's abort")
            outstanding = len(assoc._replies)
        return got, outstanding, str(assoc.failure)

    got, outstanding, failure = run(main())
    assert len(got) == 1 and outstanding == 0
    assert "CEchoRSP to message 1, which is not outstanding" in failure
    reply = got[0]
    assert isinstance(reply, tuple) and isinstance(reply[0], CEchoRSP)
    assert reply[0].status == SUCCESS and reply[1] is None


def test_send_request_times_out_into_its_callback() -> None:
    async def answer(peer: RawPeer, request: Request) -> None:
        return None  # never answers

    async def main() -> list[object]:
        got: list[object] = []
        async with (raw_scp(answer) as (port, _),
                    associate(LOOPBACK, port, timeouts=Timeouts(dimse=0.3)) as assoc):
            rq, ctx = _echo_rq(assoc)
            await assoc.send_request(rq, ctx, got.append)
            await wait_until(lambda: bool(got), "the timeout")
            assert not assoc._replies
            await assoc.abort()
        return got

    got = run(main())
    assert len(got) == 1 and isinstance(got[0], DimseTimeout)
    assert "no response to message 1 within 0.3s" in str(got[0])


def test_send_request_hears_of_a_peer_that_hangs_up() -> None:
    async def answer(peer: RawPeer, request: Request) -> None:
        peer.writer.close()

    async def main() -> list[object]:
        got: list[object] = []
        async with raw_scp(answer) as (port, _):
            assoc = await open_association(LOOPBACK, port)
            rq, ctx = _echo_rq(assoc)
            await assoc.send_request(rq, ctx, got.append)
            await wait_until(lambda: bool(got), "the end of the association")
            await assoc.abort()
        return got

    got = run(main())
    assert len(got) == 1 and isinstance(got[0], AssociationAborted)


def test_send_request_refuses_a_message_id_already_outstanding() -> None:
    async def answer(peer: RawPeer, request: Request) -> None:
        return None

    async def main() -> None:
        async with raw_scp(answer) as (port, _):
            assoc = await open_association(LOOPBACK, port)
            try:
                rq, ctx = _echo_rq(assoc)
                await assoc.send_request(rq, ctx, lambda reply: None)
                with pytest.raises(LocalProtocolError, match="already outstanding"):
                    await assoc.send_request(rq, ctx, lambda reply: None)
            finally:
                await assoc.abort()

    run(main())


def test_every_outstanding_send_request_hears_of_the_end_and_the_association_closes() -> None:
    """Three requests in flight (a window of 3) when the peer hangs up: each
    callback gets the error once, and the association still winds down (its
    reader finishes)."""
    answered: list[Request] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        answered.append(request)
        if len(answered) == 3:
            peer.writer.close()

    async def main() -> list[object]:
        got: list[object] = []
        async with raw_scp(answer, max_async_operations=3) as (port, _):
            assoc = await open_association(LOOPBACK, port, max_async_operations=3)
            for _ in range(3):
                rq, ctx = _echo_rq(assoc)
                await assoc.send_request(rq, ctx, got.append)
            await wait_until(lambda: len(got) == 3, "every callback")
            await asyncio.wait_for(assoc.wait_closed(), 5)
            assert not assoc._replies
            await assoc.abort()
        return got

    got = run(main())
    assert len(got) == 3 and all(isinstance(item, AssociationAborted) for item in got)


def test_a_peer_that_closes_instead_of_answering_the_release_costs_no_result(
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """An SCP that closes the connection on our A-RELEASE-RQ, no A-RELEASE-RP
    (PS3.8 Table 9-10: Evt17 in Sta7 is AA-4, an A-P-ABORT): every object it
    answered is still stored as it answered, and the log says how the
    association ended (it said nothing)."""
    from pydicom.uid import ExplicitVRLittleEndian

    from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
    from dicomnet.services.storage import store_paths
    from tests.aio.rawscp import EXPLICIT_LE
    from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

    async def answer(peer: RawPeer, request: Request) -> None:
        message = request.message
        assert isinstance(message, CStoreRQ)
        await peer.send(response_pdu(request.context_id, CStoreRSP(
            message_id_being_responded_to=message.message_id,
            affected_sop_class_uid=SECONDARY_CAPTURE,
            affected_sop_instance_uid=message.affected_sop_instance_uid, status=SUCCESS)))

    async def main(paths: list[Path]) -> tuple[list[tuple[bool, int | None, str | None]], str]:
        async with raw_scp(answer, contexts={SECONDARY_CAPTURE: [EXPLICIT_LE]},
                           close_on_release=True) as (port, peers):
            results = await store_paths(LOOPBACK, port, paths)
            return [(r.ok, r.status, r.error) for r in results], await _ended(peers)

    paths = [write_part10(tmp_path / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
             for n in (1, 2)]
    with caplog.at_level(logging.INFO, logger="dicomnet.aio"):
        results, ending = run(main(paths))
    assert results == [(True, SUCCESS, None)] * 2
    assert ending == "release"
    assert any(r.getMessage().endswith(
        ": no A-RELEASE-RP, association aborted - the transport connection closed")
        for r in caplog.records), [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("offset", [2, 4], ids=["other-accepted-context", "unknown-context"])
def test_a_response_on_another_presentation_context_than_its_request_aborts(
        offset: int) -> None:
    """A response travels on its request's presentation context (PS3.8 7.1.1.13,
    E.1; PS3.7 9.1: it answers that request, of that context's SOP Class, its
    data set in that context's transfer syntax): a C-ECHO-RSP on another one,
    accepted (another SOP Class's) or not, is invalid data from the peer, not
    the answer (A-ABORT, PS3.8 9.2 AA-8). One on a twin of the request's context
    (same SOP Class) is taken: test_response_context_twin.py."""
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(response_pdu(request.context_id + offset, CEchoRSP(
            message_id_being_responded_to=request.message.message_id,  # type: ignore[union-attr]
            status=SUCCESS, affected_sop_class_uid=VERIFICATION)))

    async def main() -> tuple[str, str, dict[int, str]]:
        async with raw_scp(answer, contexts={VERIFICATION: [EXPLICIT_LE],
                                             _SECONDARY_CAPTURE: [IMPLICIT_LE]}) as (port, peers):
            try:
                async with associate(LOOPBACK, port, contexts=[
                        ContextRequest(VERIFICATION, (EXPLICIT_LE,)),
                        ContextRequest(_SECONDARY_CAPTURE, (IMPLICIT_LE,))]) as assoc:
                    contexts = {c.context_id: c.transfer_syntax for c in assoc.contexts.values()}
                    outcome = f"taken: status {int(await assoc.echo()):04X}"
            except AssociationAborted as exc:
                outcome = str(exc)
            return outcome, await _ended(peers), contexts

    message, ending, contexts = run(main())
    assert sorted(contexts) == [1, 3]  # Verification, then Secondary Capture
    assert ending == "abort"
    assert "invalid DIMSE data from peer" in message
    assert (f"CEchoRSP to message 1 came on presentation context {1 + offset}, its request "
            "went on 1 (PS3.7 9.1, PS3.8 E.1)") in message, message
