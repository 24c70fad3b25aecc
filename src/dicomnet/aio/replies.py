"""The bookkeeping of a requestor's outstanding requests (``aio.client``): the
responses to one request as they arrive, for a task awaiting them (``Replies``),
or for a callback (``OneReply``, a request sent by ``send_request``), and the
requests whose callers left before their final response (``Abandoned``), a
C-FIND, C-GET or C-MOVE among them cancelled (C-CANCEL-RQ). PS3.7 9.1: a
response names the request it answers by its Message ID Being Responded To.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..dimse.messages import CCancelRQ, DimseMessage
from ..errors import DicomNetError, LocalProtocolError

if TYPE_CHECKING:
    from .client import ClientAssociation

__all__ = ["Abandoned", "OneReply", "OneReplyDeadlines", "Replies", "Reply"]

log = logging.getLogger("dicomnet.aio")

#: A response and its data set (None when it has none).
Reply = tuple[DimseMessage, bytes | None]
#: How many message IDs of requests our callers abandoned are remembered, besides
#: those holding a slot of the window: their late responses are dropped, not
#: taken for a peer's error.
ABANDONED_KEPT = 1024


class Replies:
    """The responses to one request, as they arrive (several when pending).

    A future per wait and one ``call_later`` for the DIMSE timeout: lighter than
    ``asyncio.wait_for`` on a queue, which makes a task per response."""

    __slots__ = ("answered", "context_id", "deadline", "items", "request_field", "several",
                 "timer", "waiter")

    def __init__(self, context_id: int, several: bool, request_field: int) -> None:
        #: The presentation context the request went on, and its responses come on.
        self.context_id = context_id
        #: The request's Command Field: its responses carry it with bit 15 set (PS3.7 9.3).
        self.request_field = request_field
        #: Whether responses before the last may come (Pending: PS3.7 9.1.2-9.1.4).
        self.several = several
        #: Whether the last response came (queued, maybe not read yet): any after
        #: it answers nothing.
        self.answered = False
        self.items: deque[Reply | BaseException] = deque()
        self.waiter: asyncio.Future[None] | None = None
        #: When the wait in progress runs out (the DIMSE timeout), if one is.
        self.deadline: float | None = None
        #: Abandoned, the request's DIMSE timeout (``Abandoned``).
        self.timer: asyncio.TimerHandle | None = None

    def put(self, item: Reply | BaseException) -> None:
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self, loop: asyncio.AbstractEventLoop,
                  timeout: float | None) -> Reply | BaseException:
        while not self.items:
            self.waiter = waiter = loop.create_future()
            timer = None
            if timeout is not None:
                self.deadline = loop.time() + timeout
                timer = loop.call_at(self.deadline, _expire, waiter)
            try:
                await waiter
            finally:
                self.waiter = None
                if timer is not None:
                    timer.cancel()
        self.deadline = None  # kept by a wait its caller left (``Abandoned.add``)
        return self.items.popleft()


class OneReply:
    """The single response a request started by ``send_request`` awaits, handed to
    its callback when it comes (or the error that ends the wait), once; its slot
    of the window (PS3.7 D.3.3.3) goes back then, before the callback runs."""

    __slots__ = ("assoc", "callback", "context_id", "deadline", "message_id", "request_field",
                 "timer")

    def __init__(self, assoc: ClientAssociation, message_id: int, context_id: int,
                 callback: Callable[[Reply | BaseException], None],
                 request_field: int) -> None:
        self.assoc = assoc
        self.message_id = message_id
        #: The presentation context the request went on, and its response comes on.
        self.context_id = context_id
        #: The request's Command Field: its response carries it with bit 15 set (PS3.7 9.3).
        self.request_field = request_field
        self.callback: Callable[[Reply | BaseException], None] | None = callback
        #: When its DIMSE timeout falls (the loop's time), once sent: the
        #: association's one timer for them all expires it (``_replies_due``).
        self.deadline: float | None = None
        #: Its own timer once abandoned (``Abandoned``).
        self.timer: asyncio.TimerHandle | None = None

    def put(self, item: Reply | BaseException) -> None:
        callback = self.callback
        if callback is None:
            return
        self.callback = None
        if self.timer is not None:
            self.timer.cancel()
        assoc = self.assoc
        if assoc._replies.get(self.message_id) is self:
            del assoc._replies[self.message_id]
        assert assoc._invoked is not None  # taken by send_request
        assoc._invoked.release()
        callback(item)

    def expire(self) -> None:
        self.put(self.assoc._timed_out(self.message_id))


class OneReplyDeadlines:
    """The DIMSE timeouts of an association's ``send_request`` requests (each
    waits ``Timeouts.dimse`` for its response from its send, PS3.7 9.1): one
    timer for them all, armed for the earliest deadline and re-armed when it
    fires, not a handle made and cancelled per request (``call_later``, its
    cancel and the timer heap's work: ~300 byte code instructions of the
    client's ~10,000 per stored image)."""

    __slots__ = ("assoc", "at", "timer")

    def __init__(self, assoc: ClientAssociation) -> None:
        self.assoc = assoc
        self.timer: asyncio.TimerHandle | None = None
        #: When the timer is due (inf: none armed).
        self.at = math.inf

    def start(self, reply: OneReply, dimse: float, now: float) -> None:
        """``reply``'s request was sent (at ``now``, the loop's time): its wait starts."""
        reply.deadline = deadline = now + dimse
        if deadline < self.at:
            self._arm(deadline)

    def _arm(self, deadline: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.at = deadline
        self.timer = self.assoc._loop.call_at(deadline, self._due)

    def _due(self) -> None:
        """Those due when the timer was (its time, or now) expire, the earliest
        first (``_timed_out``: the first aborts the association, the others hear
        that); the timer is then armed for the earliest left."""
        due = max(self.at, self.assoc._loop.time())
        self.timer, self.at = None, math.inf
        waiting = sorted((r for r in self.assoc._replies.values() if isinstance(r, OneReply)
                          and r.callback is not None and r.deadline is not None),
                         key=_deadline)
        for reply in waiting:
            assert reply.deadline is not None
            if reply.deadline > due:
                self._arm(reply.deadline)
                return
            reply.expire()

    def stop(self) -> None:
        """The association ended: no timer left behind (it would keep it alive)."""
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.at = None, math.inf


def _deadline(reply: OneReply) -> float:
    return reply.deadline if reply.deadline is not None else math.inf


class Abandoned:
    """The requests sent whole whose callers left before the last response (a
    cancelled task, a C-FIND read no further): the peer still performs them, and
    their responses are dropped when they come (oldest first, at most
    ``ABANDONED_KEPT`` besides those holding a slot).

    One ``ClientAssociation.request`` left, or a ``send_request`` cancelled once
    its request went out whole, keeps its slot of the asynchronous operations
    window (PS3.7 D.3.3.3: the operations the requestor may have outstanding)
    until its final response, or the association's end: freed at once, a
    request sent in its place would put one more outstanding than negotiated,
    which a strict SCP refuses or aborts. Its DIMSE timeout still runs (from the
    wait its caller left, or from its cancel for a ``send_request``, restarted
    by each pending response): one never answered aborts the association, as it
    would have with its caller waiting, rather than hold the slot for ever.

    An abandoned C-FIND, C-GET or C-MOVE is cancelled (``cancel``), so that the
    peer stops early rather than perform it to its end, holding the slot."""

    __slots__ = ("assoc", "cancels", "ids")

    def __init__(self, assoc: ClientAssociation) -> None:
        self.assoc = assoc
        #: The tasks sending a C-CANCEL-RQ once the message being sent is out.
        self.cancels: set[asyncio.Task[None]] = set()
        #: By Message ID: the request's ``Replies`` or ``OneReply`` while it holds a
        #: slot, else None.
        self.ids: dict[int, Replies | OneReply | None] = {}

    def add(self, message_id: int, held: Replies | OneReply | None = None) -> None:
        """``message_id`` abandoned; ``held``, its ``Replies`` or ``OneReply``, keeps
        its slot of the window (given back by ``answered`` or ``end``)."""
        self.ids[message_id] = held
        if held is not None:
            dimse = self.assoc.timeouts.dimse
            if dimse is not None:
                loop = self.assoc._loop
                # A wait its caller left runs on; a send_request had none yet.
                deadline = held.deadline if isinstance(held, Replies) else None
                held.timer = loop.call_at(
                    loop.time() + dimse if deadline is None else deadline,
                    self._expired, message_id)
            if isinstance(held, Replies) and held.several:
                self.cancel(message_id, held.context_id)
        if len(self.ids) > ABANDONED_KEPT:
            for old, holding in self.ids.items():
                if holding is None:  # one holding a slot is the peer's still
                    del self.ids[old]
                    break

    def cancel(self, message_id: int, context_id: int) -> None:
        """Ask the peer to stop the C-FIND, C-GET or C-MOVE ``message_id`` (PS3.7
        9.1.2.1, 9.1.3.1, 9.1.4.1: a C-CANCEL-RQ naming it, on its presentation
        context); its final response still ends its record. Queued at once when
        no other message is being sent, else from a task once that one is out
        (a message's PDVs are consecutive, PS3.8 9.3.5). An association ended
        meanwhile sends nothing."""
        rq = CCancelRQ(message_id_being_responded_to=message_id)
        if not self.assoc._send_lock.locked():
            self._send_cancel(rq, context_id)
            return
        task = self.assoc._loop.create_task(self._cancel_after_send(rq, context_id))
        self.cancels.add(task)
        task.add_done_callback(self.cancels.discard)

    async def _cancel_after_send(self, rq: CCancelRQ, context_id: int) -> None:
        async with self.assoc._send_lock:
            self._send_cancel(rq, context_id)

    def _send_cancel(self, rq: CCancelRQ, context_id: int) -> None:
        assoc = self.assoc
        if rq.message_id_being_responded_to not in self.ids:
            return  # answered, or the association ended, before our turn came
        log.debug("%s: C-CANCEL-RQ for message %d, whose caller left it",
                  assoc._name(), rq.message_id_being_responded_to)
        with contextlib.suppress(DicomNetError, ConnectionError, OSError):
            assoc.send_now(rq, context_id)

    def reuse(self, message_id: int) -> None:
        """A new request takes ``message_id``: the abandoned one's record goes.
        Raises LocalProtocolError while the peer still owes it an answer
        (PS3.7 9.1.1.1: a Message ID unique among those outstanding)."""
        if self.ids.get(message_id) is not None:
            raise LocalProtocolError(f"message ID {message_id} is still outstanding "
                                     "(its caller abandoned it before its response)")
        self.ids.pop(message_id, None)

    def answered(self, message_id: int, final: bool) -> None:
        """A response to ``message_id`` came: a final one ends its record and
        gives its slot back; a pending one restarts its DIMSE timeout."""
        held = self.ids.pop(message_id) if final else self.ids[message_id]
        if held is None:
            return
        if held.timer is not None:
            held.timer.cancel()
            held.timer = None
        if final:
            self._release()
        elif (dimse := self.assoc.timeouts.dimse) is not None:
            held.timer = self.assoc._loop.call_later(dimse, self._expired, message_id)

    def end(self) -> None:
        """The association ended: no response will come; the slots held go back to
        those waiting for one (who will hear why it ended)."""
        ids, self.ids = self.ids, {}
        for held in ids.values():
            if held is not None:
                if held.timer is not None:
                    held.timer.cancel()
                self._release()

    def _release(self) -> None:
        window = self.assoc._invoked
        assert window is not None  # taken by the request holding the slot
        window.release()

    def _expired(self, message_id: int) -> None:
        held = self.ids.get(message_id)
        if held is not None:
            held.timer = None
            self.assoc._timed_out(message_id)  # A-ABORT: its reader task then ends it


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
