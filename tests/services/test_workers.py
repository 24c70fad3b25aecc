"""BatchWorker: the store thread of the C-STORE SCP, which runs the jobs queued
since its last round together (Background, its fire-and-forget variant, is
tested in test_background.py).

Rounds are made deterministic with a gate (``worker_helpers.Gated``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dicomnet.services.workers import MAX_BATCH, BatchWorker
from tests.services.worker_helpers import (
    PATIENCE,
    Gated,
    first_then,
    run,
    threads_named,
    unique_name,
    wait_event,
)


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
