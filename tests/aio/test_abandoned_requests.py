"""A request our caller abandons (its task cancelled, a C-FIND read no further)
keeps its place in the asynchronous operations window (PS3.7 D.3.3.3) until its
final response: the peer still performs it, so a request sent in its place
would put more operations outstanding than the A-ASSOCIATE negotiated, which a
strict SCP refuses or aborts. ``request`` and ``send_request`` (the store fast
path) share that one window. The raw SCP (tests/aio/rawscp.py) counts the
requests outstanding as each one arrives."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import pytest

from dicomnet.aio.client import ClientAssociation, associate, open_association
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import (
    CCancelRQ,
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CGetRQ,
    CMoveRQ,
    refusal,
)
from dicomnet.errors import AssociationAborted, LocalProtocolError
from tests.aio.helpers import LOOPBACK, run, wait_until
from tests.aio.rawscp import (
    VERIFICATION,
    RawPeer,
    Request,
    leave_find_after_one,
    raw_scp,
    response_pdu,
)

PENDING, SUCCESS = 0xFF00, 0x0000
#: How long a client that does not wait is given to send its request anyway: an
#: upper bound for a failure to show, never a condition of passing.
GRACE = 0.5


def _echo_rsp(request: Request) -> bytes:
    return response_pdu(request.context_id, CEchoRSP(
        message_id_being_responded_to=request.message.message_id,  # type: ignore[union-attr]
        status=SUCCESS, affected_sop_class_uid=VERIFICATION))


def _find_rsp(request: Request, status: int) -> bytes:
    """The response of ``request``'s operation (a C-FIND-RSP to a C-FIND-RQ, a
    C-GET-RSP to a C-GET-RQ...: PS3.7 9.3) with ``status``."""
    rsp = refusal(request.message, status)
    assert rsp is not None
    return response_pdu(request.context_id, rsp)


@dataclass
class Counter:
    """The SCP's count of requests outstanding (received, final response not
    sent), as each request arrived, itself included; a C-CANCEL-RQ is none."""

    finals: int = 0
    at_arrival: list[int] = field(default_factory=list)

    def arrived(self, peer: RawPeer) -> None:
        operations = [r for r in peer.requests if not isinstance(r.message, CCancelRQ)]
        self.at_arrival.append(len(operations) - self.finals)

    async def answer(self, peer: RawPeer, *pdus: bytes) -> None:
        """Send ``pdus``, the last of them a final response."""
        self.finals += 1
        await peer.send(*pdus)


async def _cancel_first(assoc: ClientAssociation, peers: list[RawPeer]) -> None:
    """An echo whose task is cancelled once the SCP has its request."""
    first = asyncio.ensure_future(assoc.echo())
    await wait_until(lambda: bool(peers) and len(peers[0].requests) == 1,
                     "the first request")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first


async def _second_may_arrive(peers: list[RawPeer], messages: int = 2) -> None:
    """Give the client time to send a second request (the ``messages``-th message)."""
    with contextlib.suppress(AssertionError):
        await wait_until(lambda: len(peers[0].requests) == messages, "a second request",
                         GRACE)


@pytest.mark.parametrize("abandon", ["echo", "send_request"])
def test_an_abandoned_request_keeps_its_slot_until_its_response(abandon: str) -> None:
    """Window 1: the first request's task is cancelled while the SCP works on it
    (an echo awaiting its response; a ``send_request`` sent whole, waiting for a
    slow peer to read); the echo after it is sent once the first's response
    came, not before."""
    counter = Counter()

    async def answer(peer: RawPeer, request: Request) -> None:
        counter.arrived(peer)
        if len(peer.requests) > 1:
            await counter.answer(peer, _echo_rsp(request))

    async def main() -> tuple[int, str]:
        async with raw_scp(answer) as (port, peers):
            async with associate(LOOPBACK, port) as assoc:
                if abandon == "echo":
                    await _cancel_first(assoc, peers)
                else:
                    await _cancel_sent_whole(assoc, peers)
                second = asyncio.ensure_future(assoc.echo())
                await _second_may_arrive(peers)
                await counter.answer(peers[0], _echo_rsp(peers[0].requests[0]))
                status = int(await second)
            await wait_until(peers[0].ended.is_set, "the peer's end")
            return status, peers[0].ending

    assert run(main()) == (SUCCESS, "release")
    assert counter.at_arrival == [1, 1]


def test_a_find_left_before_its_final_response_keeps_its_slot() -> None:
    """A C-FIND whose caller leaves after its first pending response: the echo
    after it is sent once the find's final response came (its pending ones do
    not free the slot, nor does its C-CANCEL-RQ, which this SCP ignores)."""
    counter = Counter()

    async def answer(peer: RawPeer, request: Request) -> None:
        if isinstance(request.message, CCancelRQ):
            return
        counter.arrived(peer)
        if isinstance(request.message, CFindRQ):
            await peer.send(_find_rsp(request, PENDING))
        else:
            await counter.answer(peer, _echo_rsp(request))

    async def main() -> tuple[int, str]:
        async with raw_scp(answer) as (port, peers):
            async with associate(LOOPBACK, port) as assoc:
                await leave_find_after_one(assoc)
                echo = asyncio.ensure_future(assoc.echo())
                await peers[0].send(_find_rsp(peers[0].requests[0], PENDING))
                await _second_may_arrive(peers, 3)  # after the find's C-CANCEL-RQ
                await counter.answer(peers[0], _find_rsp(peers[0].requests[0], SUCCESS))
                status = int(await echo)
            await wait_until(peers[0].ended.is_set, "the peer's end")
            return status, peers[0].ending

    assert run(main()) == (SUCCESS, "release")
    assert counter.at_arrival == [1, 1]


@pytest.mark.parametrize("abandon", ["echo", "send_request"])
def test_an_abandoned_request_never_answered_aborts_at_the_dimse_timeout(
        abandon: str) -> None:
    """The abandoned request (an echo, or a ``send_request`` cancelled once sent
    whole) is never answered: its DIMSE timeout still runs, and aborts the
    association (as it would have with its caller waiting); the echo waiting
    for its slot hears why, and is never sent."""
    counter = Counter()

    async def answer(peer: RawPeer, request: Request) -> None:
        counter.arrived(peer)
        if len(peer.requests) > 1:
            await counter.answer(peer, _echo_rsp(request))

    async def main() -> tuple[BaseException | int, str]:
        async with raw_scp(answer) as (port, peers):
            async with associate(LOOPBACK, port, timeouts=Timeouts(dimse=1.0)) as assoc:
                if abandon == "echo":
                    await _cancel_first(assoc, peers)
                else:
                    await _cancel_sent_whole(assoc, peers)
                try:
                    outcome: BaseException | int = int(await assoc.echo())
                except AssociationAborted as exc:
                    outcome = exc
            await wait_until(peers[0].ended.is_set, "the peer's end")
            return outcome, peers[0].ending

    outcome, ending = run(main())
    assert isinstance(outcome, AssociationAborted), outcome
    assert "no response to message 1 within 1.0s (DIMSE timeout)" in str(outcome)
    assert ending == "abort"
    assert counter.at_arrival == [1]


def test_the_association_ending_frees_a_slot_held_for_an_abandoned_request() -> None:
    """No DIMSE timeout, and the abandoned echo never answered: the peer closing
    the connection ends the wait of the echo behind it (it does not wait for
    ever for a slot that the dead association will never give back)."""
    async def answer(peer: RawPeer, request: Request) -> None:
        return None

    async def main() -> BaseException | int:
        async with (raw_scp(answer) as (port, peers),
                    associate(LOOPBACK, port, timeouts=Timeouts(dimse=None)) as assoc):
            await _cancel_first(assoc, peers)
            second = asyncio.ensure_future(assoc.echo())
            await _second_may_arrive(peers)
            peers[0].writer.close()
            try:
                return int(await second)
            except AssociationAborted as exc:
                return exc

    outcome = run(main(), timeout=15)
    assert isinstance(outcome, AssociationAborted), outcome


def test_a_request_reusing_the_id_of_one_still_held_is_refused() -> None:
    """The abandoned echo (message 1) is the peer's still: another request with
    message ID 1 is refused before anything is sent (PS3.7 9.1.1.1: unique among
    those outstanding), and gives its slot back (the next echo goes)."""
    async def answer(peer: RawPeer, request: Request) -> None:
        if len(peer.requests) > 1:
            await peer.send(_echo_rsp(request))

    async def main() -> tuple[str, int, int]:
        async with raw_scp(answer, max_async_operations=2) as (port, peers):
            async with associate(LOOPBACK, port, max_async_operations=2) as assoc:
                await _cancel_first(assoc, peers)
                context_id = assoc.context_for(VERIFICATION).context_id
                with pytest.raises(LocalProtocolError) as refused:
                    await assoc.request_one(CEchoRQ(message_id=1), context_id)
                status = int(await assoc.echo())
            return str(refused.value), status, len(peers[0].requests)

    assert run(main()) == (
        "message ID 1 is still outstanding (its caller abandoned it before its response)",
        SUCCESS, 2)


def test_a_find_left_after_the_association_ended_holds_no_slot() -> None:
    """A C-FIND iterator closed only after the association was released: nothing
    can answer it any more, so it keeps no slot, and the echo after it is
    refused at once (not left waiting for ever for that slot)."""
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(_find_rsp(request, PENDING))

    async def main() -> str:
        async with raw_scp(answer) as (port, _):
            assoc = await open_association(LOOPBACK, port)
            find = CFindRQ(message_id=assoc.dimse.next_message_id(),
                           affected_sop_class_uid=VERIFICATION)
            replies = assoc.request(find, assoc.context_for(VERIFICATION).context_id,
                                    dataset=b"")
            async for _ in replies:
                break
            await assoc.release()
            await replies.aclose()  # type: ignore[attr-defined]
            with pytest.raises(LocalProtocolError) as refused:
                await assoc.echo()
            return str(refused.value)

    assert run(main(), timeout=10) == "the association is not established"


def test_message_ids_wrapping_skip_one_still_held() -> None:
    """After 65535 the Message IDs start again at 1; an abandoned echo holding ID 1
    (the peer's still) is skipped, not reused: the next echo goes as message 2
    instead of being refused (PS3.7 9.1.1.1: unique among those outstanding)."""
    async def answer(peer: RawPeer, request: Request) -> None:
        if len(peer.requests) > 1:
            await peer.send(_echo_rsp(request))

    async def main() -> tuple[int, list[int]]:
        async with raw_scp(answer, max_async_operations=2) as (port, peers):
            async with associate(LOOPBACK, port, max_async_operations=2) as assoc:
                await _cancel_first(assoc, peers)  # message 1, held
                assoc.dimse._last_message_id = 0xFFFF  # the count about to wrap
                status = int(await assoc.echo())
            return status, [r.message.message_id for r in peers[0].requests]  # type: ignore[union-attr]

    assert run(main()) == (SUCCESS, [1, 2])


# -- send_request: the same window as request ------------------------------------------


def _echo_rq(assoc: ClientAssociation) -> tuple[CEchoRQ, int]:
    return (CEchoRQ(message_id=assoc.dimse.next_message_id()),
            assoc.context_for(VERIFICATION).context_id)


def test_an_echo_waits_for_the_slot_a_send_request_holds() -> None:
    """Window 1: a request sent by ``send_request`` (the store fast path) holds the
    slot until its response, so the echo after it goes once that response came,
    not before (PS3.7 D.3.3.3: one accounting of the operations outstanding)."""
    counter = Counter()

    async def answer(peer: RawPeer, request: Request) -> None:
        counter.arrived(peer)
        if len(peer.requests) > 1:
            await counter.answer(peer, _echo_rsp(request))

    async def main() -> tuple[list[object], int]:
        got: list[object] = []
        async with raw_scp(answer) as (port, peers), associate(LOOPBACK, port) as assoc:
            await assoc.send_request(*_echo_rq(assoc), got.append)
            echo = asyncio.ensure_future(assoc.echo())
            await _second_may_arrive(peers)
            await counter.answer(peers[0], _echo_rsp(peers[0].requests[0]))
            status = int(await echo)
        return got, status

    got, status = run(main())
    assert status == SUCCESS and len(got) == 1
    assert counter.at_arrival == [1, 1]


def test_a_send_request_waits_for_the_slot_an_echo_holds() -> None:
    """Window 2, two echoes outstanding: ``send_request`` waits (no task of its
    own) until one of them is answered, then sends."""
    counter = Counter()

    async def answer(peer: RawPeer, request: Request) -> None:
        counter.arrived(peer)
        if len(peer.requests) > 2:
            await counter.answer(peer, _echo_rsp(request))

    async def main() -> tuple[list[object], list[int]]:
        got: list[object] = []
        async with (raw_scp(answer, max_async_operations=2) as (port, peers),
                    associate(LOOPBACK, port, max_async_operations=2) as assoc):
            echoes = [asyncio.ensure_future(assoc.echo()) for _ in range(2)]
            await wait_until(lambda: len(peers[0].requests) == 2, "two echoes")
            sending = asyncio.ensure_future(assoc.send_request(*_echo_rq(assoc), got.append))
            with contextlib.suppress(AssertionError):
                await wait_until(lambda: len(peers[0].requests) == 3, "a third request", GRACE)
            await counter.answer(peers[0], _echo_rsp(peers[0].requests[0]))
            await sending
            await wait_until(lambda: bool(got), "the send_request's response")
            await counter.answer(peers[0], _echo_rsp(peers[0].requests[1]))
            statuses = [int(await echo) for echo in echoes]
        return got, statuses

    got, statuses = run(main())
    assert statuses == [SUCCESS, SUCCESS] and len(got) == 1
    assert counter.at_arrival == [1, 2, 2]


async def _cancel_sent_whole(assoc: ClientAssociation, peers: list[RawPeer]) -> None:
    """A ``send_request`` whose task is cancelled after its request went out whole:
    the peer reads slowly (its drain held), and the SCP has the request."""
    writer = assoc.stream.writer
    stalled = asyncio.Event()

    async def slow_drain() -> None:
        await stalled.wait()

    writer.drain = slow_drain  # type: ignore[method-assign]
    sending = asyncio.ensure_future(assoc.send_request(*_echo_rq(assoc), _never))
    await wait_until(lambda: bool(peers) and len(peers[0].requests) == 1, "the first request")
    assert not sending.done()
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    del writer.drain


def _never(reply: object) -> None:
    raise AssertionError(f"the caller of a cancelled send_request heard {reply!r}")


# -- C-CANCEL for an abandoned C-FIND, C-GET, C-MOVE -------------------------------------

CANCEL = 0xFE00
#: C-CANCEL-RQ for message 1 (PS3.7 9.3.2.3, Implicit VR Little Endian: tag, length, value).
C_CANCEL_RQ_1 = bytes.fromhex(
    "0000 0000" "04000000" "1e000000"  # (0000,0000) Command Group Length UL: 30
    "0000 0001" "02000000" "ff0f"      # (0000,0100) Command Field US: 0FFFH, C-CANCEL-RQ
    "0000 2001" "02000000" "0100"      # (0000,0120) Message ID Being Responded To US: 1
    "0000 0008" "02000000" "0101"      # (0000,0800) Command Data Set Type US: 0101H, none
)


def _kinds(peer: RawPeer) -> list[str]:
    return [type(r.message).__name__ for r in peer.requests]


class _CancellableFind:
    """An SCP performing C-FIND (or C-GET, C-MOVE: what the client reads of
    their responses is their status) with one pending response per request
    and a C-CANCEL-RQ, and ending it only when cancelled: ``after_cancel``
    pending responses, then Cancel (FE00H). Echoes are answered at once."""

    def __init__(self, after_cancel: int = 0) -> None:
        self.after_cancel = after_cancel
        self.counter = Counter()

    async def __call__(self, peer: RawPeer, request: Request) -> None:
        message = request.message
        if isinstance(message, CCancelRQ):
            find = next(r for r in peer.requests
                        if getattr(r.message, "message_id", None)
                        == message.message_id_being_responded_to)
            pending = [_find_rsp(find, PENDING) for _ in range(self.after_cancel)]
            await self.counter.answer(peer, *pending, _find_rsp(find, CANCEL))
            return
        self.counter.arrived(peer)
        if isinstance(message, CEchoRQ):
            await self.counter.answer(peer, _echo_rsp(request))
        else:
            await peer.send(_find_rsp(request, PENDING))


def test_a_find_left_before_its_final_response_is_cancelled() -> None:
    """A C-FIND whose caller leaves after its first pending response: a
    C-CANCEL-RQ for its Message ID goes on its presentation context (PS3.7
    9.1.2.1), once, though two more pending responses come after it; the find
    keeps its slot until its final response (Cancel), then the echo goes."""
    scp = _CancellableFind(after_cancel=2)

    async def main() -> tuple[int, list[RawPeer]]:
        async with raw_scp(scp) as (port, peers):
            async with associate(LOOPBACK, port) as assoc:
                await leave_find_after_one(assoc)
                status = int(await assoc.echo())
            await wait_until(peers[0].ended.is_set, "the peer's end")
            return status, peers

    status, peers = run(main())
    assert status == SUCCESS
    assert _kinds(peers[0]) == ["CFindRQ", "CCancelRQ", "CEchoRQ"]
    find, cancel, _ = peers[0].requests
    assert cancel.command == C_CANCEL_RQ_1 and cancel.dataset is None
    assert cancel.context_id == find.context_id
    assert scp.counter.at_arrival == [1, 1]
    assert peers[0].ending == "release"


@pytest.mark.parametrize("operation", ["get", "move"])
def test_a_retrieve_whose_task_is_cancelled_is_cancelled(operation: str) -> None:
    """A C-GET or C-MOVE whose task is cancelled while it waits for the next
    response: the C-CANCEL-RQ names it (PS3.7 9.1.3.1, 9.1.4.1), and under a
    window of 2 the echo sent meanwhile is answered while the retrieve winds down."""
    scp = _CancellableFind()

    async def main() -> tuple[int, list[RawPeer]]:
        async with raw_scp(scp, max_async_operations=2) as (port, peers):
            async with associate(LOOPBACK, port, max_async_operations=2) as assoc:
                context_id = assoc.context_for(VERIFICATION).context_id
                message_id = assoc.dimse.next_message_id()
                rq: CGetRQ | CMoveRQ = (
                    CGetRQ(message_id=message_id, affected_sop_class_uid=VERIFICATION)
                    if operation == "get" else
                    CMoveRQ(message_id=message_id, affected_sop_class_uid=VERIFICATION,
                            move_destination="ELSEWHERE"))
                pending: list[object] = []

                async def retrieve() -> None:
                    async for reply in assoc.request(rq, context_id, dataset=b""):
                        pending.append(reply)

                task = asyncio.ensure_future(retrieve())
                await wait_until(lambda: bool(pending), "its first pending response")
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                status = int(await assoc.echo())
            await wait_until(peers[0].ended.is_set, "the peer's end")
            return status, peers

    status, peers = run(main())
    assert status == SUCCESS
    kinds = _kinds(peers[0])
    assert sorted(kinds[1:]) == ["CCancelRQ", "CEchoRQ"], kinds
    cancel = next(r for r in peers[0].requests if isinstance(r.message, CCancelRQ))
    assert cancel.command == C_CANCEL_RQ_1
    assert peers[0].ending == "release"


def test_an_abandoned_echo_is_not_cancelled() -> None:
    """C-ECHO has one response: an abandoned echo is waited for, not cancelled
    (C-CANCEL is for C-FIND, C-GET and C-MOVE only, PS3.7 9.3)."""
    async def answer(peer: RawPeer, request: Request) -> None:
        return None

    async def main() -> list[str]:
        async with raw_scp(answer) as (port, peers):
            async with associate(LOOPBACK, port) as assoc:
                await _cancel_first(assoc, peers)
                await _second_may_arrive(peers)
            await wait_until(peers[0].ended.is_set, "the peer's end")
            return _kinds(peers[0])

    assert run(main()) == ["CEchoRQ"]


def test_a_cancel_waits_for_the_message_being_sent() -> None:
    """Window 2: the first C-FIND is left while the second one's identifier (2 MiB)
    is being sent, its writes held by a slow peer: the C-CANCEL-RQ goes after
    that message's last PDV, not among its PDVs (PS3.8 9.3.5), which the SCP
    would read as one garbled message."""
    scp = _CancellableFind()
    identifier = bytes(2 << 20)

    async def main() -> list[RawPeer]:
        async with (raw_scp(scp, max_async_operations=2) as (port, peers),
                    associate(LOOPBACK, port, max_async_operations=2) as assoc):
            context_id = assoc.context_for(VERIFICATION).context_id
            first = assoc.request(CFindRQ(message_id=assoc.dimse.next_message_id(),
                                          affected_sop_class_uid=VERIFICATION),
                                  context_id, dataset=b"")
            async for _ in first:
                break
            writer = assoc.stream.writer
            stalled, writing = asyncio.Event(), asyncio.Event()

            async def slow_drain() -> None:
                writing.set()
                await stalled.wait()

            writer.drain = slow_drain  # type: ignore[method-assign]
            pending: list[object] = []

            async def second() -> None:
                async for reply in assoc.request(
                        CFindRQ(message_id=assoc.dimse.next_message_id(),
                                affected_sop_class_uid=VERIFICATION),
                        context_id, dataset=identifier):
                    pending.append(reply)

            task = asyncio.ensure_future(second())
            await writing.wait()  # its first MiB is queued, the rest waits
            await first.aclose()  # type: ignore[attr-defined]
            del writer.drain
            stalled.set()
            await wait_until(lambda: bool(pending), "the second find's pending response")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await wait_until(lambda: scp.counter.finals == 2, "both finds' ends")
        return peers

    peers = run(main())
    assert _kinds(peers[0]) == ["CFindRQ", "CFindRQ", "CCancelRQ", "CCancelRQ"]
    assert peers[0].requests[1].dataset == identifier
    assert peers[0].requests[2].command == C_CANCEL_RQ_1
    assert peers[0].requests[3].message == CCancelRQ(message_id_being_responded_to=2)


def test_a_request_reusing_the_id_of_one_outstanding_is_refused() -> None:
    """A caller-chosen Message ID that a request still awaiting its response holds
    is refused before anything is sent (PS3.7 9.1.1.1), as ``send_request``
    refuses it: taken, the new request's queue replaced the first's, whose caller
    then waited out the DIMSE timeout while its response went to the other."""
    async def answer(peer: RawPeer, request: Request) -> None:
        if len(peer.requests) > 1:
            await peer.send(_echo_rsp(request))

    async def main() -> tuple[str, list[int], int]:
        async with raw_scp(answer, max_async_operations=2) as (port, peers):
            async with associate(LOOPBACK, port, max_async_operations=2) as assoc:
                context_id = assoc.context_for(VERIFICATION).context_id
                first = asyncio.ensure_future(assoc.request_one(CEchoRQ(message_id=5), context_id))
                await wait_until(lambda: bool(peers) and len(peers[0].requests) == 1,
                                 "the first request")
                with pytest.raises(LocalProtocolError) as refused:
                    await assoc.request_one(CEchoRQ(message_id=5), context_id)
                await peers[0].send(_echo_rsp(peers[0].requests[0]))
                rsp, _ = await first
            ids = [r.message.message_id for r in peers[0].requests]  # type: ignore[union-attr]
            return str(refused.value), ids, int(rsp.status)  # type: ignore[union-attr]

    assert run(main()) == ("message ID 5 is already outstanding", [5], SUCCESS)
