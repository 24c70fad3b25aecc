"""A blocking API for scripts, over the same asyncio engine.

Each ``BlockingAssociation`` owns a private event loop and runs the async
association on it for the duration of each call; it holds no protocol logic.
Called from a thread whose own event loop is running (a Jupyter notebook, an
``async def``), a call runs that private loop in a helper thread while the
caller's thread waits: it blocks, that loop too (``dicomnet.aio`` does not),
and its callbacks (``on_progress``, ``on_secure_link_ready``) run in the helper.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import threading
import warnings
import weakref
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..aio.client import ClientAssociation, open_association
from ..aio.transport import SecureLinkHook
from ..config import Limits, Timeouts
from ..dimse.status import Status
from ..errors import AssociationAborted, LocalProtocolError, peer_abort_words
from ..security.config import TLSConfig
from ..security.info import SecurityInfo
from ..services.storage import RetryEvent, StoreResult, store_paths
from ..ul.items import UserIdentityRQSubItem
from ..ul.negotiation import AcceptedContext, ContextRequest

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["BlockingAssociation", "associate", "echo", "store"]

T = TypeVar("T")


def _call(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on ``loop`` to its end: in this thread, or in a helper thread
    when this one runs an event loop already (a second one cannot run here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_through(loop, coro)
    return _run_in_helper(loop, coro)


def _run_in_helper(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """``loop.run_until_complete(coro)`` in a thread of its own while this one
    waits. A KeyboardInterrupt meanwhile (a notebook's interrupt reaches the main
    thread) cancels the call, which aborts an association under way (PS3.8
    7.3), and is raised once the call has ended (in seconds: the abort's own
    deadlines bound it); another one meanwhile waits for that end too, as the
    loop must not be closed, or driven by a next call, while it runs.

    Under ``asyncio.run``, whose SIGINT handler only cancels the main task on a
    first Ctrl-C (that task blocked here, the call went on to its end), that
    Ctrl-C cancels the call as well: the call raises CancelledError, and
    ``asyncio.run``, its main task cancelled, raises KeyboardInterrupt."""
    task = loop.create_task(coro)  # here: the caller may cancel it
    runners = _runner_sigint_handler()
    if runners is None:
        return _wait_for(loop, task)
    cancelled = False

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal cancelled
        if not cancelled:
            cancelled = True
            loop.call_soon_threadsafe(task.cancel)
        runners(signum, frame)  # cancels the main task; a second one raises KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        return _wait_for(loop, task)
    finally:
        # asyncio.run's again, unless the script installed its own meanwhile.
        if signal.getsignal(signal.SIGINT) is on_sigint:
            signal.signal(signal.SIGINT, runners)


def _runner_sigint_handler() -> Callable[[int, Any], Any] | None:
    """asyncio.run's SIGINT handler (an ``asyncio.Runner``'s), when it is the one
    in place and this is the main thread; None otherwise."""
    if threading.current_thread() is not threading.main_thread():
        return None
    handler = signal.getsignal(signal.SIGINT)
    if isinstance(handler, functools.partial) and isinstance(
            getattr(handler.func, "__self__", None), asyncio.Runner):
        return handler
    return None


def _wait_for(loop: asyncio.AbstractEventLoop, task: asyncio.Task[T]) -> T:
    """Run ``task`` on ``loop`` in a helper thread; see ``_run_in_helper``."""
    outcome: list[T] = []
    failure: list[BaseException] = []
    ended = threading.Event()

    def run() -> None:
        try:
            outcome.append(loop.run_until_complete(task))
        except BaseException as exc:
            failure.append(exc)
        finally:
            ended.set()

    threading.Thread(target=run, name="dicomnet-blocking", daemon=True).start()
    # An Event, not Thread.join: in Python 3.11 a join interrupted by Ctrl-C
    # takes the thread for ended, and a second join returns at once.
    try:
        ended.wait()
    except KeyboardInterrupt:
        loop.call_soon_threadsafe(task.cancel)
        while True:
            try:
                ended.wait()
                break
            except KeyboardInterrupt:
                continue
        raise
    if failure:
        raise failure.pop()
    return outcome[0]


def _run_through(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """``loop.run_until_complete(coro)``, but a Ctrl-C cancels the coroutine and lets
    it end (an open association aborted: A-ABORT sent, PS3.8 7.3), then raises
    KeyboardInterrupt; a second Ctrl-C raises it at once. As ``asyncio.run`` does:
    Python's own handler raised KeyboardInterrupt wherever the loop happened to
    be, in a task's step (the task died with it, "Task exception was never
    retrieved", no A-ABORT) or in a callback (the loop left in a state the
    cancelled task could wait in for ever). Only from the main thread, and
    only over Python's default handler: a script's own handler is left alone."""
    task = loop.create_task(coro)
    interrupts = 0

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1 and not task.done():
            task.cancel()
            loop.call_soon_threadsafe(lambda: None)  # wake a select() waiting long
            return
        raise KeyboardInterrupt

    replaced = (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if replaced:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if interrupts and task.uncancel() == 0:
            raise KeyboardInterrupt from None
        raise
    except BaseException:
        if not task.done():  # a second Ctrl-C, or another handler's exception
            task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(task)
        raise
    finally:
        # Python's again, unless the script installed its own meanwhile (a callback).
        if replaced and signal.getsignal(signal.SIGINT) is on_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)


async def _take_what_arrived() -> None:
    """Let a loop that has not run since its last call read what arrived meanwhile
    (the peer's A-ABORT, its end of the connection): a round for the selector
    to report it, a round for the Upper Layer to take it."""
    for _ in range(3):
        await asyncio.sleep(0)


def _abandoned(loop: asyncio.AbstractEventLoop, assoc: ClientAssociation,
               turn: threading.Lock) -> None:
    """A ``BlockingAssociation`` garbage-collected, or still open as the interpreter
    exits, unreleased: A-ABORT it (PS3.8 7.3) so that the peer hears it ended,
    and close its loop (its reader task pending, the loop printed "Task was
    destroyed but it is pending!"). One the peer had ended meanwhile (its
    A-ABORT, or its connection closed, read now: the loop runs only during
    calls) is closed with nothing sent, and the warning says so. Not while a
    call runs it (a daemon thread's at exit, holding its ``turn``, its loop
    perhaps not running yet): that thread owns it."""
    if not turn.acquire(blocking=False):
        return
    ended: str | None = None
    try:
        if loop.is_closed() or loop.is_running():
            return
        try:
            with contextlib.suppress(Exception):
                _call(loop, _take_what_arrived())
                if assoc.failure is not None or not assoc.ul.is_established:
                    failure = assoc.failure
                    ended = _ended_words(failure)
                _call(loop, assoc.abort())  # with it ended: the connection closed, no PDU
                _call(loop, loop.shutdown_asyncgens())
        finally:
            loop.close()
    finally:
        turn.release()
    host, port = assoc.peer[:2]
    warnings.warn(f"association with {host}:{port} was not released: "
                  + ("aborted" if ended is None else f"closed, nothing sent ({ended})"),
                  ResourceWarning, stacklevel=1)


def _ended_words(failure: AssociationAborted | None) -> str:
    """How an association left open had ended, for its warning: the peer's A-ABORT
    in the words of ``AssociationAborted`` ("aborted by the peer, its A-ABORT:
    service-user"; PS3.8 AA-3), else what happened ("the transport connection
    closed")."""
    if failure is None:
        return "it had ended"
    if failure.by == "peer" and failure.source is not None:
        return f"aborted by the peer, {peer_abort_words(failure.source, failure.reason)}"
    return failure.detail or str(failure)


class BlockingAssociation:
    """An open association driven synchronously. Use as a context manager: it
    releases on a normal exit and aborts on an exception. Threads may share it:
    their calls take turns, each one's request and responses whole. One left
    open is aborted when it is garbage-collected or the interpreter exits."""

    def __init__(self, loop: asyncio.AbstractEventLoop, assoc: ClientAssociation) -> None:
        self._loop = loop
        self._assoc = assoc
        # One call at a time: the loop, and the PDU stream it drives, are one
        # thread's for the length of a call; another thread waits for its turn.
        self._turn = threading.Lock()
        # Holds the loop and association, not self: called when self is collected,
        # or at exit (weakref.finalize's atexit hook) if it is still alive then.
        self._finalizer = weakref.finalize(self, _abandoned, loop, assoc, self._turn)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._turn:
            if self._loop.is_closed():
                coro.close()  # never started: no "never awaited" warning
                raise LocalProtocolError("this association has ended (released or aborted)")
            return _call(self._loop, coro)

    @property
    def security(self) -> SecurityInfo | None:
        """What TLS negotiated, or None on a plain connection."""
        return self._assoc.security

    @property
    def contexts(self) -> dict[int, AcceptedContext]:
        """The presentation contexts the peer accepted, by context ID (PS3.8 9.3.3.2)."""
        return self._assoc.contexts

    @property
    def refused(self) -> dict[str, int]:
        """The abstract syntaxes the peer accepted in no context, each with its reason
        (PS3.8 Table 9-18: 1 user rejection, 2 no reason, 3 abstract syntax not
        supported, 4 transfer syntaxes not supported)."""
        return self._assoc.refused

    def echo(self) -> Status:
        """C-ECHO (PS3.7 9.1.5)."""
        return self._run(self._assoc.echo())

    def store(self, dataset: Dataset) -> Status:
        """C-STORE a pydicom ``Dataset`` held in memory; its status (see
        ``ClientAssociation.store``)."""
        return self._run(self._assoc.store(dataset))

    def release(self) -> None:
        """A-RELEASE (PS3.8 7.2); nothing if the association has ended already."""
        self._end(self._assoc.release)

    def abort(self) -> None:
        """A-ABORT (PS3.8 7.3); nothing if the association has ended already."""
        self._end(self._assoc.abort)

    def _end(self, how: Callable[[], Coroutine[Any, Any, None]]) -> None:
        with self._turn:
            if self._loop.is_closed():
                return  # released or aborted already
            try:
                _call(self._loop, how())
            finally:
                self._close_loop()

    def _close_loop(self) -> None:
        self._finalizer.detach()
        if not self._loop.is_closed():
            _call(self._loop, self._loop.shutdown_asyncgens())
            self._loop.close()

    def __enter__(self) -> BlockingAssociation:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._loop.is_closed():
            return
        if exc_type is None:
            self.release()
        else:
            self.abort()


def associate(
    host: str,
    port: int,
    *,
    contexts: Sequence[ContextRequest] | None = None,
    calling_ae_title: str = "DICOMNET",
    called_ae_title: str = "ANY-SCP",
    tls: TLSConfig | None = None,
    timeouts: Timeouts | None = None,
    limits: Limits | None = None,
    user_identity: UserIdentityRQSubItem | None = None,
    on_secure_link_ready: SecureLinkHook | None = None,
    max_async_operations: int = 1,
) -> BlockingAssociation:
    """Open an association; the arguments are those of ``dicomnet.aio.client.associate``
    (spelt out, so that a type checker catches a misspelt one)."""
    loop = asyncio.new_event_loop()
    try:
        assoc = _call(loop, open_association(
            host, port, contexts=contexts, calling_ae_title=calling_ae_title,
            called_ae_title=called_ae_title, tls=tls, timeouts=timeouts, limits=limits,
            user_identity=user_identity, on_secure_link_ready=on_secure_link_ready,
            max_async_operations=max_async_operations,
        ))
    except BaseException:
        loop.close()
        raise
    return BlockingAssociation(loop, assoc)


def echo(
    host: str,
    port: int,
    *,
    contexts: Sequence[ContextRequest] | None = None,
    calling_ae_title: str = "DICOMNET",
    called_ae_title: str = "ANY-SCP",
    tls: TLSConfig | None = None,
    timeouts: Timeouts | None = None,
    limits: Limits | None = None,
    user_identity: UserIdentityRQSubItem | None = None,
    on_secure_link_ready: SecureLinkHook | None = None,
    max_async_operations: int = 1,
) -> Status:
    """Associate, C-ECHO, release: the Verification service in one call (PS3.7
    9.1.5); the arguments are those of ``associate``."""
    with associate(
        host, port, contexts=contexts, calling_ae_title=calling_ae_title,
        called_ae_title=called_ae_title, tls=tls, timeouts=timeouts, limits=limits,
        user_identity=user_identity, on_secure_link_ready=on_secure_link_ready,
        max_async_operations=max_async_operations,
    ) as assoc:
        return assoc.echo()


def store(
    host: str,
    port: int,
    paths: Sequence[Path | str] | Path | str,
    *,
    tls: TLSConfig | None = None,
    calling_ae_title: str = "DICOMNET",
    called_ae_title: str = "ANY-SCP",
    timeouts: Timeouts | None = None,
    on_progress: Callable[[StoreResult], None] | None = None,
    max_async_operations: int = 32,
    on_secure_link_ready: SecureLinkHook | None = None,
    retries: int = 0,
    retry_delay: float = 2.0,
    on_retry: Callable[[RetryEvent], None] | None = None,
    results: list[StoreResult] | None = None,
    listed: bool = False,
) -> list[StoreResult]:
    """C-STORE files and folders; the arguments, results and errors are those of
    ``dicomnet.services.storage.store_paths`` (``paths`` may be one path alone,
    ``"study/"``). A Ctrl-C
    aborts the association and raises KeyboardInterrupt: the objects answered
    before it were given to ``on_progress``, and ``results`` (an empty list, if
    given) says what became of every file, as after a cancel of ``store_paths``."""
    loop = asyncio.new_event_loop()
    try:
        return _call(loop, store_paths(
            host, port, paths, tls=tls, calling_ae_title=calling_ae_title,
            called_ae_title=called_ae_title, timeouts=timeouts, on_progress=on_progress,
            max_async_operations=max_async_operations,
            on_secure_link_ready=on_secure_link_ready, retries=retries,
            retry_delay=retry_delay, on_retry=on_retry, results=results, listed=listed,
        ))
    finally:
        loop.close()
