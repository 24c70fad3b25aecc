"""The operations an acceptor performs for one association (PS3.7 D.3.3.3): how
many at once (the asynchronous operations window it granted)."""

from __future__ import annotations

import asyncio
import collections
import contextlib

__all__ = ["OperationsWindow"]


class OperationsWindow:
    """How many operations an association performs at once (PS3.7 D.3.3.3, the
    asynchronous operations window the SCP granted): a semaphore that can also
    be taken without waiting (:meth:`try_take`), from a read callback."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_take(self) -> bool:
        """Take a slot if one is free and nobody waits for one; True if taken."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Take a slot, waiting (first come, first served) for one to be released."""
        if self.try_take():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back: to the first waiter, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
