"""The operations an acceptor performs for one association: how many at once (the
asynchronous operations window it granted, PS3.7 D.3.3.3), and the Message IDs
they hold (PS3.7 9.1.1.1.1)."""

from __future__ import annotations

import asyncio
import collections
import contextlib

from ..dimse.messages import DimseMessage, operation_name
from ..errors import RemoteProtocolError

__all__ = ["DUPLICATE_INVOCATION", "DuplicateInvocation", "MessageIds", "OperationsWindow"]

#: PS3.7 Annex C: the Message ID is allocated to another operation.
DUPLICATE_INVOCATION = 0x0210


class OperationsWindow:
    """How many operations an association performs at once (PS3.7 D.3.3.3, the
    asynchronous operations window the SCP granted): a semaphore that can also
    be taken without waiting (:meth:`try_take`), from a read callback."""

    __slots__ = ("_failure", "_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._failure: BaseException | None = None

    def try_take(self) -> bool:
        """Take a slot if one is free and nobody waits for one; True if taken."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Take a slot, waiting (first come, first served) for one to be released.
        Raises the association's failure once it has ended (:meth:`fail`)."""
        if self._failure is not None:
            raise self._failure
        if self.try_take():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # handed a slot just as it was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def fail(self, failure: BaseException) -> None:
        """The association ended: those waiting for a slot, and those who ask for one
        from now on (:meth:`take`), get ``failure`` instead; the operations holding
        the slots may never end (a hung store round)."""
        self._failure = failure
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(failure)

    def release(self) -> None:
        """Give a slot back: to the first waiter, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class DuplicateInvocation:
    """The sink of a request whose Message ID an operation still outstanding on the
    association holds (PS3.7 9.1.1.1.1, 10.1.1.1.1: no two identical values for
    outstanding operations): its data set is let go as it arrives (no temporary
    file), it is not performed, and it is answered 0210H, Duplicate invocation
    (PS3.7 Annex C)."""

    __slots__ = ()

    def write(self, data: bytes | memoryview) -> None:
        return None

    def abort(self) -> None:
        return None


class MessageIds:
    """The Message IDs of the requests an association received and has not answered
    yet (PS3.7 9.1.1.1.1): an ID is held from the request's command set until its
    operation's final response is about to go, then free for the next request.
    They are the requests the peer has outstanding, which the asynchronous
    operations window it negotiated bounds (``window``, PS3.7 D.3.3.3)."""

    __slots__ = ("_held", "window")

    def __init__(self) -> None:
        self._held: set[int] = set()
        #: How many requests the peer may have outstanding, when it negotiated an
        #: asynchronous operations window; None: not enforced. Without one the
        #: default is 1 (PS3.7 D.3.3.3), yet some requestors send a C-ECHO while
        #: a C-STORE is outstanding: those are performed one at a time instead.
        self.window: int | None = None

    def claim(self, message: DimseMessage) -> bool:
        """Hold the Message ID of request ``message``; False when it is held already
        (a duplicate invocation). True, holding nothing, for a message with no
        Message ID of its own (a response, a C-CANCEL-RQ). Raises
        RemoteProtocolError when it puts more requests outstanding than the
        peer's window: the association is aborted rather than the requests read
        on and queued, which is what a window keeps from happening."""
        message_id = getattr(message, "message_id", None)
        if message_id is None or not message.is_request:
            return True
        if message_id in self._held:
            return False
        held = self._held
        if self.window is not None and len(held) >= self.window:
            raise RemoteProtocolError(
                f"{operation_name(message)}-RQ with Message ID {message_id} puts "
                f"{len(held) + 1} requests outstanding, more than the asynchronous "
                f"operations window of {self.window} negotiated (PS3.7 D.3.3.3)")
        held.add(message_id)
        return True

    def release(self, message: DimseMessage) -> None:
        """``message``'s operation is answered: its Message ID is free again."""
        message_id = getattr(message, "message_id", None)
        if message_id is not None:
            self._held.discard(message_id)
