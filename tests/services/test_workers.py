"""BatchWorker and Background: the worker threads of the C-STORE SCP.

Rounds are made deterministic with a gate: the first call of ``run_batch`` (or
``handle``) blocks on a ``threading.Event`` until the test has queued what it
wants grouped, so what lands in the next round is known exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from dicomnet.services.workers import MAX_BATCH, Background, BatchWorker

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


@pytest.fixture
def workers() -> Iterator[list[BatchWorker[Any, Any]]]:
    """Workers a test registers here are closed even when it fails."""
    made: list[BatchWorker[Any, Any]] = []
    yield made
    for worker in made:
        worker.close()


# -- BatchWorker ----------------------------------------------------------------------


def test_each_future_gets_the_result_of_its_own_job(
        workers: list[BatchWorker[Any, Any]]) -> None:
    calls: list[list[int]] = []

    def run_batch(jobs: list[int]) -> list[str]:
        calls.append(list(jobs))
        return [f"result-{j}" for j in jobs]

    worker: BatchWorker[int, str] = BatchWorker(unique_name("bw"), run_batch)
    workers.append(worker)

    async def main() -> list[str]:
        return list(await asyncio.gather(*(worker.submit(j) for j in range(20))))

    assert run(main()) == [f"result-{j}" for j in range(20)]
    assert sorted(j for call in calls for j in call) == list(range(20))  # each ran once


def test_an_exception_answers_only_its_own_job(workers: list[BatchWorker[Any, Any]]) -> None:
    gate = Gated(lambda j: ValueError(f"bad job {j}") if j % 2 else 10 * j)
    worker: BatchWorker[int, int] = BatchWorker(unique_name("bw"), gate)
    workers.append(worker)

    async def main() -> list[int | BaseException]:
        return await first_then(worker, 0, range(1, 6), gate.started, gate.release)

    results = run(main())
    assert gate.calls == [[0], [1, 2, 3, 4, 5]]  # the failures shared a round with successes
    assert results[0::2] == [0, 20, 40]
    failures = results[1::2]
    assert [type(f) for f in failures] == [ValueError] * 3
    assert [str(f) for f in failures] == ["bad job 1", "bad job 3", "bad job 5"]


def test_submit_call_hands_each_result_or_exception_to_its_callback_on_the_loop(
        workers: list[BatchWorker[Any, Any]], caplog: pytest.LogCaptureFixture) -> None:
    """Callbacks instead of futures: each is handed its own job and that job's
    outcome (no partial per job), on the loop's thread, in one round; one that
    raises is logged and the others still run."""
    gate = Gated(lambda j: ValueError(f"bad job {j}") if j == 3 else 10 * j)
    worker: BatchWorker[int, int] = BatchWorker(unique_name("bw"), gate)
    workers.append(worker)
    got: list[tuple[int, object, bool]] = []

    async def main() -> None:
        loop_thread = threading.current_thread()
        done = asyncio.Event()

        def callback(job: int, outcome: object) -> None:
            got.append((job, outcome, threading.current_thread() is loop_thread))
            if len(got) == 5:
                done.set()
            if job == 2:
                raise RuntimeError("a caller's own bug")

        worker.submit_call(0, callback)
        await wait_event(gate.started)
        for job in range(1, 5):
            worker.submit_call(job, callback)
        gate.release.set()
        await done.wait()

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        run(main())
    assert gate.calls == [[0], [1, 2, 3, 4]]
    assert [(job, on_loop) for job, _, on_loop in got] == [(j, True) for j in range(5)]
    assert [outcome for job, outcome, _ in got if job != 3] == [0, 10, 20, 40]
    assert [str(outcome) for job, outcome, _ in got if job == 3] == ["bad job 3"]
    assert "a worker callback failed" in caplog.text


def test_jobs_queued_during_a_round_are_run_together(
        workers: list[BatchWorker[Any, Any]]) -> None:
    gate = Gated()
    worker: BatchWorker[int, int] = BatchWorker(unique_name("bw"), gate)
    workers.append(worker)

    async def main() -> list[int]:
        return await first_then(worker, 0, range(1, 10), gate.started, gate.release)

    assert run(main()) == [2 * j for j in range(10)]
    assert gate.calls == [[0], list(range(1, 10))]
    assert len(gate.calls) < 10
    assert max(len(call) for call in gate.calls) > 1


def test_a_round_stops_taking_jobs_at_max_batch(workers: list[BatchWorker[Any, Any]]) -> None:
    """Jobs queued in several steps (event loop iterations) while the thread is busy:
    the next round takes them until it holds MAX_BATCH, the one after the rest."""
    gate = Gated()
    worker: BatchWorker[int, int] = BatchWorker(unique_name("bw"), gate)
    workers.append(worker)
    step = 8
    assert MAX_BATCH % step == 0
    total = 1 + MAX_BATCH + step

    async def main() -> list[int]:
        first = worker.submit(0)
        await wait_event(gate.started)
        rest: list[asyncio.Future[int]] = []
        for begin in range(1, total, step):
            rest += [worker.submit(j) for j in range(begin, begin + step)]
            await asyncio.sleep(0)  # the next jobs are submitted in another iteration
        gate.release.set()
        return list(await asyncio.gather(first, *rest))

    assert run(main()) == [2 * j for j in range(total)]
    assert gate.calls == [[0], list(range(1, MAX_BATCH + 1)), list(range(MAX_BATCH + 1, total))]


def test_every_job_runs_once_in_order(workers: list[BatchWorker[Any, Any]]) -> None:
    gate = Gated()
    worker: BatchWorker[int, int] = BatchWorker(unique_name("bw"), gate)
    workers.append(worker)
    total = 3 * MAX_BATCH

    async def main() -> list[int]:
        return await first_then(worker, 0, range(1, total), gate.started, gate.release)

    assert run(main()) == [2 * j for j in range(total)]
    assert gate.calls[0] == [0]
    assert gate.jobs == list(range(total))
    assert len(gate.calls) < total


def test_jobs_of_two_event_loops_in_one_round(workers: list[BatchWorker[Any, Any]]) -> None:
    gate = Gated()
    worker: BatchWorker[int, int] = BatchWorker(unique_name("bw"), gate)
    workers.append(worker)
    other_submitted = threading.Event()
    other_results: list[int] = []

    async def other_loop() -> None:
        futures = [worker.submit(100), worker.submit(101)]
        other_submitted.set()
        other_results.extend(await asyncio.gather(*futures))

    def other_thread() -> None:
        run(other_loop())

    async def main() -> list[int]:
        first = worker.submit(0)
        await wait_event(gate.started)
        mine = [worker.submit(1), worker.submit(2)]
        thread = threading.Thread(target=other_thread)
        thread.start()
        await wait_event(other_submitted)
        gate.release.set()
        results = list(await asyncio.gather(first, *mine))
        await asyncio.to_thread(thread.join, PATIENCE)
        assert not thread.is_alive()
        return results

    assert run(main()) == [0, 2, 4]
    assert other_results == [200, 202]
    assert len(gate.calls) == 2
    assert sorted(gate.calls[1]) == [1, 2, 100, 101]


@pytest.mark.parametrize("extra", [-1, 1])
def test_a_wrong_number_of_results_fails_every_job_of_the_round(
        workers: list[BatchWorker[Any, Any]], extra: int) -> None:
    wrong = [True]
    calls: list[list[int]] = []
    started, release = threading.Event(), threading.Event()

    def run_batch(jobs: list[int]) -> list[int]:
        calls.append(list(jobs))
        if len(calls) == 1:
            started.set()
            assert release.wait(PATIENCE)
        results = [3 * j for j in jobs]
        if not wrong[0]:
            return results
        return results[:-1] if extra < 0 else [*results, 0]

    name = unique_name("bw-wrong")
    worker: BatchWorker[int, int] = BatchWorker(name, run_batch)
    workers.append(worker)

    async def main() -> tuple[list[int | BaseException], int]:
        first = worker.submit(0)
        await wait_event(started)
        rest = [worker.submit(j) for j in range(1, 5)]
        release.set()
        failed = list(await asyncio.gather(first, *rest, return_exceptions=True))
        wrong[0] = False  # the thread survived the bad round and answers again
        return failed, await worker.submit(7)

    failed, after = run(main())
    assert calls[:2] == [[0], [1, 2, 3, 4]]
    assert all(isinstance(f, RuntimeError) for f in failed), failed
    assert str(failed[0]) == f"{name}: {1 + extra} results for 1 jobs"
    assert all(str(f) == f"{name}: {4 + extra} results for 4 jobs" for f in failed[1:])
    assert after == 21


def test_no_sequence_of_results_fails_the_round_not_the_thread(
        workers: list[BatchWorker[Any, Any]]) -> None:
    returned: list[object] = [None]

    def run_batch(jobs: list[int]) -> Any:
        return returned[0]

    name = unique_name("bw-none")
    worker: BatchWorker[int, int] = BatchWorker(name, run_batch)
    workers.append(worker)

    async def main() -> tuple[BaseException | int, int]:
        (failed,) = await asyncio.gather(worker.submit(1), return_exceptions=True)
        returned[0] = [5]
        return failed, await worker.submit(2)

    failed, after = run(main())
    assert isinstance(failed, RuntimeError)
    assert str(failed) == f"{name}: NoneType instead of results for 1 jobs"
    assert after == 5


def test_run_batch_raising_fails_every_job_of_the_round(
        workers: list[BatchWorker[Any, Any]]) -> None:
    calls: list[list[int]] = []

    def run_batch(jobs: list[int]) -> list[int]:
        calls.append(list(jobs))
        if 13 in jobs:
            raise OSError(28, "No space left on device")
        return list(jobs)

    worker: BatchWorker[int, int] = BatchWorker(unique_name("bw"), run_batch)
    workers.append(worker)

    async def main() -> tuple[list[int | BaseException], int]:
        failed = list(await asyncio.gather(worker.submit(13), return_exceptions=True))
        return failed, await worker.submit(5)

    failed, after = run(main())
    assert len(failed) == 1
    assert isinstance(failed[0], OSError) and failed[0].errno == 28
    assert after == 5  # the thread is still there
    assert calls == [[13], [5]]


def test_run_batch_raising_reaches_every_waiter_of_a_grouped_round(
        workers: list[BatchWorker[Any, Any]]) -> None:
    def explode(j: int) -> int:
        raise KeyError(j)

    gate = Gated()
    gate.answer = explode  # raised from run_batch itself, after the gate
    worker: BatchWorker[int, int] = BatchWorker(unique_name("bw"), gate)
    workers.append(worker)

    async def main() -> list[int | BaseException]:
        return await first_then(worker, 0, (1, 2, 3), gate.started, gate.release)

    results = run(main())
    assert gate.calls == [[0], [1, 2, 3]]
    assert [type(r) for r in results] == [KeyError] * 4
    # The round fails on its first job; every waiter of the round hears of it.
    assert [r.args for r in results if isinstance(r, KeyError)] == [(0,), (1,), (1,), (1,)]


def test_a_cancelled_waiter_does_not_disturb_the_others(
        workers: list[BatchWorker[Any, Any]], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    gate = Gated()
    worker: BatchWorker[int, int] = BatchWorker(unique_name("bw"), gate)
    workers.append(worker)

    async def main() -> tuple[bool, int, int]:
        first = worker.submit(0)
        await wait_event(gate.started)
        cancelled, kept = worker.submit(1), worker.submit(2)
        cancelled.cancel()
        gate.release.set()
        return cancelled.cancelled(), await first, await kept

    assert run(main()) == (True, 0, 4)
    assert gate.calls == [[0], [1, 2]]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_closed_loop_does_not_stop_the_thread(workers: list[BatchWorker[Any, Any]]) -> None:
    gate = Gated()
    worker: BatchWorker[int, int] = BatchWorker(unique_name("bw"), gate)
    workers.append(worker)

    async def leave_early() -> None:
        worker.submit(0)  # its loop is closed before the answer comes
        await wait_event(gate.started)

    async def later() -> int:
        return await worker.submit(21)

    run(leave_early())
    gate.release.set()
    assert run(later()) == 42
    assert gate.jobs == [0, 21]


def test_submit_needs_a_running_loop() -> None:
    worker: BatchWorker[int, int] = BatchWorker(unique_name("bw"), lambda jobs: jobs)
    with pytest.raises(RuntimeError, match="no running event loop"):
        worker.submit(1)
    worker.close()


def test_the_thread_starts_on_first_submit_and_close_stops_it(
        workers: list[BatchWorker[Any, Any]]) -> None:
    name = unique_name("bw-close")
    worker: BatchWorker[int, int] = BatchWorker(name, lambda jobs: [-j for j in jobs])
    workers.append(worker)
    assert threads_named(name) == []

    async def main() -> int:
        return await worker.submit(3)

    assert run(main()) == -3
    assert len(threads_named(name)) == 1
    worker.close()
    assert threads_named(name) == []
    worker.close()  # a second close is harmless


def test_close_finishes_the_queued_jobs_first(workers: list[BatchWorker[Any, Any]]) -> None:
    name = unique_name("bw-drain")
    gate = Gated()
    worker: BatchWorker[int, int] = BatchWorker(name, gate)
    workers.append(worker)

    async def main() -> list[int]:
        first = worker.submit(0)
        await wait_event(gate.started)
        rest = [worker.submit(j) for j in range(1, 5)]
        gate.release.set()
        worker.close()  # blocks this loop until the thread has run everything queued
        assert gate.jobs == [0, 1, 2, 3, 4]
        assert threads_named(name) == []
        return list(await asyncio.gather(first, *rest))  # answers posted before the stop

    assert run(main()) == [0, 2, 4, 6, 8]


# -- BatchWorker.pipelined ------------------------------------------------------------


class Stages:
    """``start``/``finish`` of a pipelined worker, recording every call in one list;
    the first start waits for :attr:`release`, so jobs queued meanwhile form round 2,
    and each start and finish can be made to raise."""

    def __init__(self) -> None:
        self.log: list[tuple[str, list[int]]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail_start: set[int] = set()  # a round starting with this job raises
        self.fail_finish: set[int] = set()
        self.wrong_count: set[int] = set()

    def start(self, jobs: list[int]) -> list[int]:
        self.log.append(("start", list(jobs)))
        if len(self.log) == 1:
            self.started.set()
            if not self.release.wait(PATIENCE):
                raise TimeoutError("the test never released the first round")
        if jobs[0] in self.fail_start:
            raise OSError(f"start {jobs[0]}")
        return list(jobs)

    def finish(self, jobs: list[int]) -> list[int | BaseException]:
        self.log.append(("finish", list(jobs)))
        if jobs[0] in self.fail_finish:
            raise OSError(f"finish {jobs[0]}")
        if jobs[0] in self.wrong_count:
            return []
        return [10 * j for j in jobs]


def pipelined(stages: Stages, workers: list[BatchWorker[Any, Any]],
              name: str | None = None) -> BatchWorker[int, int]:
    worker: BatchWorker[int, int] = BatchWorker.pipelined(
        name or unique_name("pw"), stages.start, stages.finish)
    workers.append(worker)
    return worker


def test_pipelined_starts_the_next_round_before_finishing_the_last(
        workers: list[BatchWorker[Any, Any]]) -> None:
    """Round 1 is held while round 2 starts: the device works on round 2 while the
    thread finishes round 1. Each job gets its own finish's result."""
    stages = Stages()
    worker = pipelined(stages, workers)

    async def main() -> list[int]:
        return await first_then(worker, 1, (2, 3, 4), stages.started, stages.release)

    assert run(main()) == [10, 20, 30, 40]
    # Round 2 was queued before round 1 started: it starts first, then round 1
    # finishes; with nothing queued after it, round 2 finishes at once.
    assert stages.log == [("start", [1]), ("start", [2, 3, 4]),
                          ("finish", [1]), ("finish", [2, 3, 4])]


def test_the_first_job_of_a_round_caps_its_size(workers: list[BatchWorker[Any, Any]]) -> None:
    """round_size(first job) bounds the round that job opens (never above
    MAX_BATCH): odd jobs open rounds of 2, even ones rounds of any size, so two
    capped rounds overlap where one whole round would not."""
    stages = Stages()
    sizes: list[int] = []

    def round_size(job: int) -> int:
        sizes.append(job)
        return 2 if job % 2 else 10 * MAX_BATCH

    worker: BatchWorker[int, int] = BatchWorker.pipelined(
        unique_name("pw"), stages.start, stages.finish, round_size=round_size)
    workers.append(worker)
    rest = (1, 3, 5, 7, 8, *range(9, 9 + MAX_BATCH + 1))

    async def main() -> list[int]:
        return await first_then(worker, 0, rest, stages.started, stages.release)

    assert run(main()) == [10 * j for j in (0, *rest)]
    starts = [jobs for stage, jobs in stages.log if stage == "start"]
    assert starts == [[0], [1, 3], [5, 7], [8, *range(9, 9 + MAX_BATCH - 1)],
                      [9 + MAX_BATCH - 1, 9 + MAX_BATCH]]
    assert sizes == [0, 1, 5, 8, 9 + MAX_BATCH - 1]


def test_the_store_thread_takes_small_data_sets_half_a_window_at_a_time() -> None:
    """StorageSCP's rule: a round opened by a small (in-memory, page cache) data set
    holds at most SMALL_ROUND, one opened by a page-aligned one up to MAX_BATCH."""
    from dicomnet.services.store_jobs import SMALL_ROUND, Job, round_size
    from dicomnet.storage.direct import AlignedBuffer

    def job(buffer: bytearray | AlignedBuffer) -> Job:
        return Job(buffer, None, "", None)  # type: ignore[arg-type]

    assert 1 < SMALL_ROUND < MAX_BATCH
    assert round_size(job(bytearray(2000))) == SMALL_ROUND
    aligned = AlignedBuffer.take(1 << 20)
    try:
        assert round_size(job(aligned)) == MAX_BATCH
    finally:
        aligned.release()


def test_pipelined_finishes_at_once_when_nothing_else_is_queued(
        workers: list[BatchWorker[Any, Any]]) -> None:
    """Idle, a started round does not wait for a next one to be finished."""
    stages = Stages()
    stages.release.set()
    worker = pipelined(stages, workers)

    async def main() -> list[int]:
        answers = [await worker.submit(j) for j in (5, 6, 7)]  # one at a time
        return answers

    assert run(main()) == [50, 60, 70]
    assert stages.log == [("start", [5]), ("finish", [5]), ("start", [6]), ("finish", [6]),
                          ("start", [7]), ("finish", [7])]


def test_pipelined_start_raising_fails_only_its_round(
        workers: list[BatchWorker[Any, Any]]) -> None:
    """A start that raises answers its own jobs with the error and is never
    finished; the round held before it is finished and answered as usual."""
    stages = Stages()
    stages.fail_start.add(2)
    worker = pipelined(stages, workers)

    async def main() -> list[int | BaseException]:
        return await first_then(worker, 1, (2, 3), stages.started, stages.release)

    answers = run(main())
    assert answers[0] == 10
    assert all(isinstance(a, OSError) and str(a) == "start 2" for a in answers[1:])
    assert stages.log == [("start", [1]), ("start", [2, 3]), ("finish", [1])]


def test_pipelined_finish_raising_or_miscounting_fails_every_job_of_its_round(
        workers: list[BatchWorker[Any, Any]]) -> None:
    stages = Stages()
    stages.fail_finish.add(1)
    stages.wrong_count.add(3)
    worker = pipelined(stages, workers)

    async def main() -> list[int | BaseException]:
        first = [worker.submit(1), worker.submit(2)]
        await wait_event(stages.started)
        stages.release.set()
        second = await asyncio.gather(*first, return_exceptions=True)
        third = await asyncio.gather(worker.submit(3), worker.submit(4),
                                     return_exceptions=True)
        return [*second, *third, await worker.submit(5)]

    answers = run(main())
    assert [str(a) for a in answers[:2]] == ["finish 1", "finish 1"]
    assert all(isinstance(a, RuntimeError) and "0 results for 2 jobs" in str(a)
               for a in answers[2:4])
    assert answers[4] == 50  # the thread goes on serving


def test_pipelined_close_finishes_the_held_round(
        workers: list[BatchWorker[Any, Any]]) -> None:
    """close() waits until the last started round is finished and answered."""
    stages = Stages()
    name = unique_name("pw")
    worker = pipelined(stages, workers, name)

    async def main() -> list[int]:
        first = worker.submit(1)
        await wait_event(stages.started)
        rest = [worker.submit(j) for j in (2, 3)]
        stages.release.set()
        await asyncio.to_thread(worker.close)
        assert stages.log[-1] == ("finish", [2, 3])  # before close returned
        return list(await asyncio.gather(first, *rest))

    assert run(main()) == [10, 20, 30]
    assert not threads_named(name)


# -- Background -----------------------------------------------------------------------


def flush(background: Background[Any]) -> None:
    """``background.flush()``, failing the test instead of hanging if it never returns."""
    flusher = threading.Thread(target=background.flush, daemon=True)
    flusher.start()
    flusher.join(PATIENCE)
    assert not flusher.is_alive(), "flush() did not return"


@pytest.fixture
def backgrounds() -> Iterator[list[Background[Any]]]:
    made: list[Background[Any]] = []
    yield made
    for background in made:  # bounded: a broken worker must not hang the session
        closer = threading.Thread(target=background.close, daemon=True)
        closer.start()
        closer.join(PATIENCE)


def gated_handle() -> tuple[Gated, Callable[[list[int]], None]]:
    gate = Gated()

    def handle(items: list[int]) -> None:
        gate(items)

    return gate, handle


def test_items_queued_meanwhile_are_handled_together(
        backgrounds: list[Background[Any]]) -> None:
    gate, handle = gated_handle()
    background: Background[int] = Background(unique_name("bg"), handle)
    backgrounds.append(background)
    background.put(0)
    assert gate.started.wait(PATIENCE)
    for item in range(1, 8):
        background.put(item)
    gate.release.set()
    flush(background)
    assert gate.calls == [[0], list(range(1, 8))]


def test_flush_waits_for_the_round_in_progress(backgrounds: list[Background[Any]]) -> None:
    gate, handle = gated_handle()
    background: Background[int] = Background(unique_name("bg"), handle)
    backgrounds.append(background)
    flushed = threading.Event()

    def flush_then_tell() -> None:
        background.flush()
        flushed.set()

    background.put(1)
    assert gate.started.wait(PATIENCE)
    background.put(2)
    flusher = threading.Thread(target=flush_then_tell)
    flusher.start()
    assert not flushed.wait(0.05)  # item 1 is still being handled
    gate.release.set()
    assert flushed.wait(PATIENCE)
    flusher.join(PATIENCE)
    assert gate.calls == [[1], [2]]


def test_flush_and_close_without_items_return(backgrounds: list[Background[Any]]) -> None:
    name = unique_name("bg-idle")
    background: Background[int] = Background(name, lambda items: None)
    background.flush()
    background.close()
    assert threads_named(name) == []


@pytest.mark.parametrize("error", [ValueError("cannot write the rows"), SystemExit(3)])
def test_a_failing_handle_is_logged_and_the_thread_goes_on(
        backgrounds: list[Background[Any]], caplog: pytest.LogCaptureFixture,
        error: BaseException) -> None:
    """An exception, or even SystemExit (a BaseException), from one round is logged
    and the thread takes the next round."""
    caplog.set_level(logging.ERROR, logger="dicomnet.services")
    name = unique_name("bg-fail")
    handled: list[list[str]] = []

    def handle(items: list[str]) -> None:
        if "bad" in items:
            raise error
        handled.append(list(items))

    background: Background[str] = Background(name, handle)
    backgrounds.append(background)
    background.put("bad")
    flush(background)  # returns although the round failed
    background.put("good")
    flush(background)
    assert handled == [["good"]]
    assert len(threads_named(name)) == 1
    records = [r for r in caplog.records if r.name == "dicomnet.services"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert name in records[0].getMessage()
    assert "background work failed" in records[0].getMessage()
    assert records[0].exc_info is not None and records[0].exc_info[0] is type(error)


def test_close_handles_what_is_queued_and_stops_the_thread() -> None:
    name = unique_name("bg-close")
    gate, handle = gated_handle()
    background: Background[int] = Background(name, handle)
    background.put(0)
    assert gate.started.wait(PATIENCE)
    background.put(1)
    background.put(2)
    gate.release.set()
    background.close()
    assert gate.calls == [[0], [1, 2]]
    assert threads_named(name) == []


def test_items_put_while_closing_are_all_handled() -> None:
    """Items put from another thread while close() runs: each is handled once, by
    the thread closing or, once closed, in the putter's thread (an item queued
    behind the stop mark was lost), and close() always returns (two threads on
    the queue once made one of them take the other's stop mark)."""
    handled: list[int] = []
    lock = threading.Lock()

    def handle(items: Sequence[int]) -> None:
        with lock:
            handled.extend(items)

    background: Background[int] = Background(unique_name("bg-race"), handle)
    started = threading.Event()

    def putter() -> None:
        for number in range(20000):
            background.put(number)
            if number == 100:
                started.set()

    def closer() -> None:
        for _ in range(50):
            background.close()  # each close races the putter

    thread = threading.Thread(target=putter)
    thread.start()
    assert started.wait(PATIENCE)
    closing = threading.Thread(target=closer, daemon=True)
    closing.start()
    closing.join(PATIENCE)  # a close that never returns fails here, not by hanging
    thread.join(PATIENCE)
    assert not closing.is_alive() and not thread.is_alive()
    background.close()
    assert sorted(handled) == list(range(20000))


def test_items_keep_their_order_across_rounds(backgrounds: list[Background[Any]]) -> None:
    rounds: list[Sequence[int]] = []
    background: Background[int] = Background(unique_name("bg"), rounds.append)
    backgrounds.append(background)
    for item in range(50):
        background.put(item)
    flush(background)
    assert [i for r in rounds for i in r] == list(range(50))


#: Far longer than any test may take: a round that waited for it would show as a hang.
LONG_LINGER = 6 * PATIENCE


def test_linger_gathers_items_put_one_after_another(backgrounds: list[Background[Any]]) -> None:
    rounds: list[list[int]] = []
    background: Background[int] = Background(unique_name("bg-linger"), rounds.append,
                                             linger=LONG_LINGER)
    backgrounds.append(background)
    for item in range(5):
        background.put(item)
    flush(background)  # does not wait out the linger
    assert rounds == [[0, 1, 2, 3, 4]]


class _RecordingQueue:
    """Stands in for a Background's queue and records what its thread waited for."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.woken_with: list[Any] = []  # what each waiting get() returned

    def put(self, item: Any) -> None:
        self._inner.put(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        item = self._inner.get(block, timeout)
        self.woken_with.append(item)
        return item

    def get_nowait(self) -> Any:
        return self._inner.get_nowait()


def test_a_lingering_thread_is_not_woken_by_each_item(
        backgrounds: list[Background[Any]]) -> None:
    """Items put during a linger join the round without waking the thread: it
    sleeps once (each wake-up takes the GIL from the event loop's thread)."""
    rounds: list[list[int]] = []
    background: Background[int] = Background(unique_name("bg-sleep"), rounds.append,
                                             linger=LONG_LINGER)
    backgrounds.append(background)
    recording = _RecordingQueue(background._queue)
    background._queue = recording  # type: ignore[assignment]
    for item in range(5):
        background.put(item)
    flush(background)
    assert rounds == [[0, 1, 2, 3, 4]]
    assert recording.woken_with == [(0,)]


def test_max_items_caps_a_lingering_round(backgrounds: list[Background[Any]]) -> None:
    rounds: list[list[int]] = []
    background: Background[int] = Background(unique_name("bg-cap"), rounds.append,
                                             linger=LONG_LINGER, max_items=3)
    backgrounds.append(background)
    for item in range(7):
        background.put(item)
    flush(background)
    assert rounds == [[0, 1, 2], [3, 4, 5], [6]]


def test_close_does_not_wait_out_the_linger() -> None:
    name = unique_name("bg-linger-close")
    rounds: list[list[int]] = []
    background: Background[int] = Background(name, rounds.append, linger=LONG_LINGER)
    background.put(1)
    closer = threading.Thread(target=background.close, daemon=True)
    closer.start()
    closer.join(PATIENCE)
    assert not closer.is_alive(), "close() waited for the linger"
    assert rounds == [[1]]
    assert threads_named(name) == []


def test_a_job_raising_stop_iteration_fails_as_runtime_error(
        workers: list[BatchWorker[Any, Any]]) -> None:
    """A Future refuses StopIteration; its waiter must still hear of the failure."""
    gate = Gated(lambda j: StopIteration() if j == 1 else j)
    worker: BatchWorker[int, int] = BatchWorker(unique_name("bw-stop"), gate)
    workers.append(worker)

    async def main() -> list[int | BaseException]:
        return await first_then(worker, 0, (1, 2), gate.started, gate.release)

    results = run(main())
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], RuntimeError)
    assert isinstance(results[1].__cause__, StopIteration)


def test_a_failing_round_size_leaves_rounds_whole(workers: list[BatchWorker[Any, Any]],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    stages = Stages()

    def round_size(job: int) -> int:
        raise ValueError("broken rule")

    worker: BatchWorker[int, int] = BatchWorker.pipelined(
        unique_name("pw"), stages.start, stages.finish, round_size=round_size)
    workers.append(worker)

    async def main() -> list[int]:
        return await first_then(worker, 0, (1, 2, 3), stages.started, stages.release)

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        assert run(main()) == [0, 10, 20, 30]
    assert [jobs for stage, jobs in stages.log if stage == "start"] == [[0], [1, 2, 3]]
    assert "round_size failed" in caplog.text
