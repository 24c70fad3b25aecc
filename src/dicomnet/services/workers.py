"""Worker threads that take jobs in batches, for a server's blocking work.

A C-STORE SCP must not block its event loop on file-system calls, and handing
each small object to a thread pool costs more than writing it: a future, a
wake-up of the loop per object, and threads fighting over the GIL and over the
folder's lock in the kernel (measured: six pool threads created files more
slowly than one). :class:`BatchWorker` is one thread that takes every job
queued since its last round, runs them together (so that, for instance, the
files of one round share one folder fsync), and wakes the event loop once per
round. :class:`Background` is the fire-and-forget variant, for work that
follows the answer (index rows).

``close()`` is final for both: once it returns, no thread of theirs runs or is
started again. A job submitted to a closed :class:`BatchWorker` is refused
(:class:`WorkerClosed`); an item put to a closed :class:`Background` is handled
in the caller's thread (a spilled store that outlived the server still gets
its index row looked at, and no daemon thread is left to be killed mid-write
at interpreter exit).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from ..aio.server_hooks import contained, run_contained
from ..errors import DicomNetError

__all__ = ["Background", "BatchWorker", "HandlerThreads", "WorkerClosed", "call_handler",
           "handlers_running"]

log = logging.getLogger("dicomnet.services")

J = TypeVar("J")
R = TypeVar("R")
S = TypeVar("S")
#: Called on the submitter's loop with a job and its result or exception: the
#: job carries what the callback needs, so no partial is made per job.
Callback = Callable[[Any, Any], None]
#: A queued job, the future its result settles (or the callback it is handed
#: to), and the loop that future or callback belongs to.
_Entry = tuple[J, "asyncio.Future[R] | Callback", asyncio.AbstractEventLoop]

#: At most this many jobs per round: the first answers of a round wait for the
#: whole round, so a round stays short.
MAX_BATCH = 32


class WorkerClosed(DicomNetError, RuntimeError):
    """A job submitted to a :class:`BatchWorker` after its ``close()`` (as a
    closed ``concurrent.futures`` executor refuses one with a RuntimeError)."""


class BatchWorker(Generic[J, R]):
    """One thread running ``run_batch(jobs)`` over the jobs queued so far.

    ``run_batch`` returns one result (or exception) per job, in order; each
    awaiting :meth:`submit` gets its own. Jobs of one round are answered with a
    single ``call_soon_threadsafe`` per event loop.

    :meth:`pipelined` builds the two-stage variant, for rounds that wait on a
    device: round *n* is started, then round *n-1* finished, so that the device
    works on one while the thread completes the other. A started round is
    finished at once when no other jobs are queued: idle, nothing waits longer.
    """

    def __init__(self, name: str,
                 run_batch: Callable[[list[J]], Sequence[R | BaseException]], *,
                 round_size: Callable[[J], int] | None = None) -> None:
        self._name = name
        self._round_size = round_size
        self._start: Callable[[list[J]], object] = run_batch
        self._finish: Callable[[Any], Sequence[R | BaseException]] | None = None
        self._queue: queue.SimpleQueue[_Entry[J, R] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def pipelined(cls, name: str, start: Callable[[list[J]], S],
                  finish: Callable[[S], Sequence[R | BaseException]], *,
                  round_size: Callable[[J], int] | None = None) -> BatchWorker[J, R]:
        """A worker whose rounds are ``start(jobs)``, returning the round's state,
        then, once the next round is started (or at once if none is queued),
        ``finish(state)``, returning one result per job. If ``start`` raises,
        every job of its round gets the exception and ``finish`` is not called.

        ``round_size(first_job)``, if given, caps the round that job opens
        (at most :data:`MAX_BATCH`)."""
        worker: BatchWorker[J, R] = cls(name, start, round_size=round_size)  # type: ignore[arg-type]
        worker._finish = finish
        return worker

    def submit(self, job: J) -> asyncio.Future[R]:
        """Queue ``job``; the future completes (on the caller's loop) with its result.
        Raises :class:`WorkerClosed` once :meth:`close` was called."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._put((job, future, loop))
        return future

    def submit_call(self, job: J, callback: Callback) -> None:
        """Queue ``job``; ``callback(job, outcome)`` is called on the caller's loop
        with the job and its result, or the exception it raised. Cheaper than
        :meth:`submit` for a caller that needs no task to wait: no future, no
        task wake-up. Raises :class:`WorkerClosed` once :meth:`close` was called."""
        # _put's body, not a call to it: once per object on a C-STORE SCP's loop.
        with self._lock:
            if self._closed:
                raise WorkerClosed(f"{self._name}: closed, no more jobs are taken")
            if self._thread is None:
                self._start_thread()
            self._queue.put((job, callback, asyncio.get_running_loop()))

    def _put(self, entry: _Entry[J, R]) -> None:
        # Queued under the lock close() holds to queue its stop mark: every job is
        # either ahead of the mark (run before close() returns) or refused. Checked
        # outside it, a submit racing close() started a thread nobody joined.
        with self._lock:
            if self._closed:
                raise WorkerClosed(f"{self._name}: closed, no more jobs are taken")
            if self._thread is None:
                self._start_thread()
            self._queue.put(entry)

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _take(self, *, wait: bool) -> tuple[list[_Entry[J, R]], bool]:
        """The jobs queued now, up to MAX_BATCH (waiting for a first one if
        ``wait``), and whether the worker was asked to stop."""
        try:
            first = self._queue.get() if wait else self._queue.get_nowait()
        except queue.Empty:
            return [], False
        if first is None:
            return [], True
        entries = [first]
        limit = MAX_BATCH
        if self._round_size is not None:
            try:
                limit = max(1, min(MAX_BATCH, self._round_size(first[0])))
            except Exception:  # a faulty rule must not stop the thread: whole rounds
                log.exception("%s: round_size failed", self._name)
        while len(entries) < limit:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                return entries, True
            entries.append(more)
        return entries, False

    def _run(self) -> None:
        held: tuple[list[_Entry[J, R]], object] | None = None  # started, not finished
        while True:
            entries, stop = self._take(wait=held is None)
            started: tuple[list[_Entry[J, R]], object] | None = None
            if entries:
                try:
                    started = (entries, self._start([e[0] for e in entries]))
                except BaseException as exc:  # every waiter must hear of it
                    self._answer(entries, [exc] * len(entries))
            if held is not None:
                self._complete(*held)
                held = None
            if started is not None:
                if self._finish is None:
                    self._answer(*started)  # type: ignore[arg-type]
                else:
                    held = started
            if stop:
                if held is not None:
                    self._complete(*held)
                return

    def _complete(self, entries: list[_Entry[J, R]], state: object) -> None:
        assert self._finish is not None
        try:
            results: Sequence[R | BaseException] = self._finish(state)
        except BaseException as exc:  # every waiter must hear of it
            results = [exc] * len(entries)
        self._answer(entries, results)

    def _answer(self, entries: list[_Entry[J, R]],
                results: Sequence[R | BaseException]) -> None:
        try:
            got = f"{len(results)} results"
        except TypeError:  # a run_batch that returned no sequence at all
            got = f"{type(results).__name__} instead of results"
        if got != f"{len(entries)} results":
            error = RuntimeError(f"{self._name}: {got} for {len(entries)} jobs")
            results = [error] * len(entries)
        by_loop: dict[asyncio.AbstractEventLoop,
                      list[tuple[asyncio.Future[R] | Callback, J, R | BaseException]]] = {}
        for (job, target, loop), result in zip(entries, results, strict=True):
            by_loop.setdefault(loop, []).append((target, job, result))
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                loop.call_soon_threadsafe(_settle, answers)

    def close(self) -> None:
        """Finish the queued jobs, then stop the thread; later submits are refused
        (:class:`WorkerClosed`). Calling it again waits for the same thread."""
        with self._lock:
            thread = self._thread
            if not self._closed and thread is not None:
                self._queue.put(None)
            self._closed = True
        if thread is not None:
            thread.join()


def _settle(answers: list[tuple[asyncio.Future[R] | Callback, J, R | BaseException]]
            ) -> None:
    for future, job, result in answers:
        if not isinstance(future, asyncio.Future):
            try:
                future(job, result)
            except Exception:  # one caller's bug must not cost the others their answer
                log.exception("a worker callback failed")
            continue
        if future.done():
            continue  # its waiter was cancelled (the association aborted)
        if isinstance(result, StopIteration | StopAsyncIteration):
            # A future refuses these (they would end the awaiting coroutine's frame).
            error = RuntimeError(f"job raised {type(result).__name__}")
            error.__cause__ = result
            future.set_exception(error)
        elif isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class Background(Generic[J]):
    """One worker thread handing queued items to ``handle`` in order, after the
    answers they follow (index rows). Items queued meanwhile are handed over
    together, so that, for instance, they share one transaction; with ``linger``
    the thread waits that long after a first item for others to join it (up to
    ``max_items``), unless someone is waiting in :meth:`flush`.

    A lingering thread sleeps once and is not woken by each item put meanwhile:
    on 200 x 512 KB images, per-item wake-ups had the index thread switched in
    123-279 times per run, and take the GIL each time (85-93 now)."""

    def __init__(self, name: str, handle: Callable[[list[J]], object], *,
                 linger: float = 0.0, max_items: int = 1024) -> None:
        # (item,) is an item, () asks to stop lingering (flush), None stops the thread.
        self._queue: queue.SimpleQueue[tuple[J] | tuple[()] | None] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._pending = 0
        self._flushing = 0  # flush() callers waiting: no lingering meanwhile
        self._hurry = threading.Event()  # cuts a linger short
        self._thread: threading.Thread | None = None
        self._closed = False
        # One late put()'s handle() at a time (the thread's are over by then).
        self._late = threading.Lock()
        self._name = name
        self._handle = handle
        self._linger = linger
        self._max_items = max_items

    def put(self, item: J) -> None:
        """Queue ``item`` for the worker; once :meth:`close` was called, handle it
        here, in the caller's thread (what it raises logged, as the thread's)."""
        with self._idle:
            late, crowded = self._closed, False
            if not late:
                self._pending += 1
                crowded = self._pending >= self._max_items
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self._name,
                                                    daemon=True)
                    self._thread.start()
                # Under the lock close() holds to queue its stop mark: always ahead of it.
                self._queue.put((item,))
        if late:
            self._put_late(item)
        elif crowded and self._linger > 0:
            self._hurry.set()

    def _put_late(self, item: J) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()  # in order: after what was queued, never beside the thread
        with self._late:
            try:
                self._handle([item])
            except Exception:
                log.exception("%s: background work failed after close (if it was the "
                              "index's: with the server stopped, 'dicomnet reindex FOLDER' "
                              "repairs it)", self._name)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            if not first:
                continue  # a flush with nothing pending
            if self._linger > 0 and not self._flushing and not self._closed:
                self._hurry.wait(self._linger)
            self._hurry.clear()
            items = [first[0]]
            stop = False
            while len(items) < self._max_items:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                if more:
                    items.append(more[0])
            try:
                self._handle(items)
            except BaseException:  # even SystemExit: the thread must go on serving put()
                log.exception("%s: background work failed (if it was the index's: with the "
                              "server stopped, 'dicomnet reindex FOLDER' repairs it)", self._name)
            finally:
                with self._idle:
                    self._pending -= len(items)
                    self._idle.notify_all()
            if stop:
                return

    def flush(self) -> None:
        """Wait until every queued item has been handled."""
        with self._idle:
            if not self._pending or self._thread is None:
                return
            self._flushing += 1
            self._queue.put(())  # wakes an idle thread
            self._hurry.set()  # and cuts a linger in progress short
            try:
                self._idle.wait_for(lambda: self._pending == 0)
            finally:
                self._flushing -= 1

    def close(self) -> None:
        """Handle what is queued, then stop the thread, a linger cut short. Final:
        an item put from now on is handled in its caller's thread (:meth:`put`),
        so that no thread is started again after close() returned (one started
        for items put behind the stop mark was never joined). Calling it again
        waits for the same thread."""
        with self._idle:
            thread = self._thread
            if not self._closed and thread is not None:
                self._queue.put(None)  # behind every queued item: put() queues under this lock
            self._closed = True
        self._hurry.set()
        if thread is not None:
            thread.join()


#: Threads for the plain handlers running at once: one each, made as needed and
#: kept for the next, up to this many (a server's 64 associations by default,
#: some with several operations at once). Apart from asyncio's default executor
#: (min(32, CPUs + 4) threads), which writes large objects: six handlers blocked
#: there on a two-CPU machine held up every other association's answers.
HANDLER_THREADS = 256


class HandlerThreads(concurrent.futures.Executor):
    """Up to ``most`` daemon threads running what is submitted, made as needed and
    kept for the next job: a ``ThreadPoolExecutor`` whose threads the interpreter
    does not wait for at exit (it joins those of a ``ThreadPoolExecutor``), so
    that a user's handler that never returns cannot keep a stopped server's
    process from exiting. Nothing is waited for at ``shutdown`` either: a thread
    cannot be stopped, and what it returns late has nobody to go to."""

    def __init__(self, most: int, name: str) -> None:
        self._most = most
        self._name = name
        self._jobs: queue.SimpleQueue[
            tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...],
                  dict[str, Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for a job that no submit has claimed yet
        self._running = 0

    @property
    def running(self) -> int:
        """Jobs being run now."""
        return self._running

    def submit(self, fn: Callable[..., R], /, *args: Any,
               **kwargs: Any) -> concurrent.futures.Future[R]:
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        with self._lock:
            self._jobs.put((future, fn, args, kwargs))
            if self._idle:
                self._idle -= 1  # that thread's next job: no new one needed
            elif self._threads < self._most:
                self._threads += 1
                threading.Thread(target=self._work, daemon=True,
                                 name=f"{self._name}_{self._threads - 1}").start()
        return future

    def _work(self) -> None:
        while True:
            future, fn, args, kwargs = self._jobs.get()
            if future.set_running_or_notify_cancel():
                with self._lock:
                    self._running += 1
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # the submitter's to hear, even SystemExit
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                finally:
                    with self._lock:
                        self._running -= 1
            del future, fn, args, kwargs  # nothing of a job kept while waiting for the next
            with self._lock:
                self._idle += 1


#: No thread until a handler needs one.
_HANDLER_POOL = HandlerThreads(HANDLER_THREADS, "dicomnet-handler")


def handlers_running() -> int:
    """Plain handlers (of every server of the process) running in their threads now."""
    return _HANDLER_POOL.running


async def call_handler(handler: Callable[..., Any], *args: object) -> Any:
    """Call a user's handler (``on_c_store``, ``on_c_echo``): a coroutine function
    on the event loop, where it must not block; any other callable in a thread
    of its own (from a pool of :data:`HANDLER_THREADS`), where it may (a
    database, a request to another node, reading the data set), holding its own
    association only, never the server's other ones. An awaitable it returns is
    awaited on the loop. Cancelled (its association ended), an async handler is
    cancelled; a thread cannot be stopped: what it returns is dropped.
    A ``SystemExit`` (or other ``BaseException`` that is no ``Exception``) it
    raises comes out as ``HookExited``, an ``Exception``: a handler's
    ``sys.exit()`` stopped the whole server (``aio.server_hooks``)."""
    with contained(handler):
        if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
                getattr(handler, "__call__", None)):  # noqa: B004 (an object with async __call__)
            result = handler(*args)
        else:
            context = contextvars.copy_context()  # as asyncio.to_thread does
            result = await asyncio.get_running_loop().run_in_executor(
                _HANDLER_POOL, functools.partial(context.run, run_contained, handler, *args))
        if inspect.isawaitable(result):
            result = await result
    return result
