"""close() of BatchWorker and Background is final: once it returns, no thread of
theirs is alive or started again, whatever put()/submit() raced it.

Each interleaving is forced: the worker's queue signals when close() has
queued its stop mark, and the test then submits or puts, while the worker's
thread is held in a round by an Event. No sleeps."""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

import pytest

from dicomnet.errors import DicomNetError
from dicomnet.services.workers import Background, BatchWorker, WorkerClosed
from tests.services.worker_helpers import (
    PATIENCE,
    Gated,
    run,
    threads_named,
    unique_name,
    wait_event,
)


class MarkedQueue(queue.SimpleQueue[Any]):
    """A worker's queue that sets :attr:`stop_marked` once close() queued its stop mark."""

    def __init__(self) -> None:
        super().__init__()
        self.stop_marked = threading.Event()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        if item is None:
            self.stop_marked.set()


def closing(closer: Any) -> threading.Thread:
    """``closer()`` started in a thread of its own (it blocks until the round ends)."""
    thread = threading.Thread(target=closer, daemon=True)
    thread.start()
    return thread


# -- BatchWorker ----------------------------------------------------------------------


def test_a_submit_racing_close_is_refused_and_leaves_no_thread() -> None:
    """The worker's thread is in a round; close() has queued its stop mark and waits
    for the thread; a submit then is refused (WorkerClosed), not served by a new
    thread that nobody joins and that outlives close()."""
    name = unique_name("bw-race")
    gate = Gated()
    worker: BatchWorker[int, int] = BatchWorker(name, gate)
    marked = MarkedQueue()
    worker._queue = marked

    async def main() -> tuple[int, BaseException | None]:
        first = worker.submit(1)
        await wait_event(gate.started)
        closer = closing(worker.close)
        await wait_event(marked.stop_marked)
        refused: BaseException | None = None
        try:
            late = worker.submit(2)
        except WorkerClosed as exc:
            refused = exc
        else:
            late.cancel()
        gate.release.set()
        await asyncio.to_thread(closer.join, PATIENCE)
        assert not closer.is_alive(), "close() did not return"
        return await first, refused

    answer, refused = run(main())
    assert answer == 2  # the job queued before close() was run and answered
    assert isinstance(refused, WorkerClosed) and isinstance(refused, DicomNetError)
    assert name in str(refused)
    assert gate.jobs == [1]
    assert threads_named(name) == []


def test_a_submit_after_close_is_refused() -> None:
    name = unique_name("bw-after")
    worker: BatchWorker[int, int] = BatchWorker(name, lambda jobs: jobs)
    worker.close()  # nothing started: nothing to stop, and closed all the same

    async def main() -> None:
        with pytest.raises(WorkerClosed):
            worker.submit(1)
        answers: list[object] = []
        with pytest.raises(WorkerClosed):
            worker.submit_call(1, lambda job, outcome: answers.append(outcome))
        await asyncio.sleep(0)  # a callback, had one been queued, would run now
        assert answers == []

    run(main())
    assert threads_named(name) == []
    worker.close()  # again: harmless


# -- Background -----------------------------------------------------------------------


def test_a_put_racing_close_is_handled_before_put_returns_and_leaves_no_thread() -> None:
    """The thread is handling a round; close() has queued its stop mark; an item
    put then is handled in the putter's thread, after the thread's round (never
    beside it), and no thread is started for it after close() returned."""
    name = unique_name("bg-race")
    gate = Gated()
    order: list[str] = []

    def handle(items: list[int]) -> None:
        gate(items)
        order.append(threading.current_thread().name)

    background: Background[int] = Background(name, handle)
    marked = MarkedQueue()
    background._queue = marked
    background.put(0)
    assert gate.started.wait(PATIENCE)
    background.put(1)  # queued ahead of the stop mark: the thread's
    closer = closing(background.close)
    assert marked.stop_marked.wait(PATIENCE)
    putter = closing(lambda: background.put(2))  # waits for the thread's round
    gate.release.set()
    putter.join(PATIENCE)
    closer.join(PATIENCE)
    assert not putter.is_alive() and not closer.is_alive()
    assert gate.calls == [[0], [1], [2]]
    assert order[:2] == [name, name] and order[2] == putter.name
    assert threads_named(name) == []


def test_a_put_after_close_is_handled_in_the_callers_thread() -> None:
    name = unique_name("bg-after")
    handled: list[tuple[list[int], str]] = []
    background: Background[int] = Background(
        name, lambda items: handled.append((list(items), threading.current_thread().name)))
    background.put(1)
    background.close()
    background.put(2)
    background.flush()  # nothing pending: returns
    assert handled == [([1], name), ([2], threading.current_thread().name)]
    assert threads_named(name) == []
    background.close()  # again: harmless


def test_a_late_item_whose_handle_raises_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def handle(items: list[int]) -> None:
        raise OSError("the index is gone")

    background: Background[int] = Background(unique_name("bg-late"), handle)
    background.close()
    background.put(1)  # does not raise: logged, as the thread's failures are
    assert [r.getMessage() for r in caplog.records if "after close" in r.getMessage()]


def test_close_cuts_a_linger_short() -> None:
    """A closing worker does not linger for items that cannot come any more."""
    name = unique_name("bg-linger")
    handled: list[list[int]] = []
    background: Background[int] = Background(name, handled.append, linger=60 * PATIENCE)
    background.put(1)
    closer = closing(background.close)
    closer.join(PATIENCE)
    assert not closer.is_alive(), "close() waited out the linger"
    assert handled == [[1]]
