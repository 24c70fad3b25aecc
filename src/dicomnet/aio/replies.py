"""The bookkeeping of a requestor's outstanding requests (``aio.client``): the
responses to one request as they arrive, for a task awaiting them (``Replies``),
or for a callback (``OneReply``, a request sent by ``send_request``). PS3.7 9.1:
a response names the request it answers by its Message ID Being Responded To.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..dimse.messages import DimseMessage

if TYPE_CHECKING:
    from .client import ClientAssociation

__all__ = ["OneReply", "Replies", "Reply"]

#: A response and its data set (None when it has none).
Reply = tuple[DimseMessage, bytes | None]


class Replies:
    """The responses to one request, as they arrive (several when pending).

    A future per wait and one ``call_later`` for the DIMSE timeout: lighter than
    ``asyncio.wait_for`` on a queue, which makes a task per response."""

    __slots__ = ("answered", "context_id", "items", "several", "waiter")

    def __init__(self, context_id: int, several: bool) -> None:
        #: The presentation context the request went on, and its responses come on.
        self.context_id = context_id
        #: Whether responses before the last may come (Pending: PS3.7 9.1.2-9.1.4).
        self.several = several
        #: Whether the last response came (queued, maybe not read yet): any after
        #: it answers nothing.
        self.answered = False
        self.items: deque[Reply | BaseException] = deque()
        self.waiter: asyncio.Future[None] | None = None

    def put(self, item: Reply | BaseException) -> None:
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self, loop: asyncio.AbstractEventLoop,
                  timeout: float | None) -> Reply | BaseException:
        while not self.items:
            self.waiter = waiter = loop.create_future()
            timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
            try:
                await waiter
            finally:
                self.waiter = None
                if timer is not None:
                    timer.cancel()
        return self.items.popleft()


class OneReply:
    """The single response a request started by ``send_request`` awaits, handed to
    its callback when it comes (or the error that ends the wait), once."""

    __slots__ = ("assoc", "callback", "context_id", "message_id", "timer")

    def __init__(self, assoc: ClientAssociation, message_id: int, context_id: int,
                 callback: Callable[[Reply | BaseException], None]) -> None:
        self.assoc = assoc
        self.message_id = message_id
        #: The presentation context the request went on, and its response comes on.
        self.context_id = context_id
        self.callback: Callable[[Reply | BaseException], None] | None = callback
        self.timer: asyncio.TimerHandle | None = None

    def put(self, item: Reply | BaseException) -> None:
        callback = self.callback
        if callback is None:
            return
        self.callback = None
        if self.timer is not None:
            self.timer.cancel()
        if self.assoc._replies.get(self.message_id) is self:
            del self.assoc._replies[self.message_id]
        callback(item)

    def expire(self) -> None:
        self.put(self.assoc._timed_out(self.message_id))


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
