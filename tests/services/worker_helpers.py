"""What the worker-thread tests share: a bounded ``run``, unique thread names, and
:class:`Gated`, a ``run_batch`` / ``handle`` whose first round waits for the test.

Rounds are made deterministic with that gate: the first call blocks on a
``threading.Event`` until the test has queued what it wants grouped, so what
lands in the next round is known exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from dicomnet.services.workers import BatchWorker

T = TypeVar("T")

#: How long a test waits for a thread before it gives up (never reached when all is well).
PATIENCE = 10.0

_names = itertools.count()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` in a fresh event loop, bounded so that a lost future fails the test."""

    async def bounded() -> T:
        async with asyncio.timeout(PATIENCE):
            return await coro

    return asyncio.run(bounded())


def unique_name(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


async def wait_event(event: threading.Event) -> None:
    """Wait for a threading.Event without blocking the event loop."""
    assert await asyncio.to_thread(event.wait, PATIENCE), "the worker thread never got there"


async def first_then(worker: BatchWorker[int, Any], first: int, rest: Sequence[int],
                     started: threading.Event, release: threading.Event) -> list[Any]:
    """Submit ``first``; once its round has started (and waits on ``release``),
    queue ``rest``, so that they form the next round, and let the first go on.
    Returns every answer or exception, in the order submitted."""
    head = worker.submit(first)
    await wait_event(started)
    tail = [worker.submit(j) for j in rest]
    release.set()
    return list(await asyncio.gather(head, *tail, return_exceptions=True))


class Gated:
    """A ``run_batch`` / ``handle`` that records each round; the first round waits
    for :attr:`release`, so that jobs queued meanwhile form the next round."""

    def __init__(self, answer: Callable[[int], int | BaseException] = lambda j: 2 * j) -> None:
        self.answer = answer
        self.calls: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, jobs: list[int]) -> list[int | BaseException]:
        self.calls.append(list(jobs))
        if len(self.calls) == 1:
            self.started.set()
            if not self.release.wait(PATIENCE):
                raise TimeoutError("the test never released the first round")
        return [self.answer(j) for j in jobs]

    @property
    def jobs(self) -> list[int]:
        return [j for call in self.calls for j in call]
