"""How a ``dicomnet`` run ends: its exit codes, what Ctrl-C and SIGTERM do to it,
and the JSON document ``--json`` promises whatever happens.

Standard library only: the entry point (:mod:`dicomnet.cli.main`) uses it before
click, asyncio or cryptography are loaded, which takes a tenth of a second or more
of each run, and a Ctrl-C may land in it.
"""

from __future__ import annotations

import _thread
import contextlib
import contextvars
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

__all__ = [
    "CERTS_EXIT_CODES_EPILOG",
    "EXIT_CODES_EPILOG",
    "EXIT_FAILURE_STATUS",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "REINDEX_EXIT_CODES_EPILOG",
    "SERVE_EXIT_CODES_EPILOG",
    "JsonPromise",
    "Terminated",
    "interruption",
    "handle_signals",
    "held_signals",
    "json_promise",
    "leave",
    "promise_json",
    "quit_now",
    "raise_terminated",
    "send_again",
]

EXIT_OK = 0
EXIT_FAILURE_STATUS = 1
EXIT_USAGE = 2
EXIT_NETWORK = 3
EXIT_INTERRUPTED = 130
#: 128 + SIGTERM, what a shell reports for a process the signal ended.
EXIT_TERMINATED = 128 + signal.SIGTERM

# What each command's --help says of them (its epilog).
_EXIT_USAGE_LINES = (
    "  2  usage or configuration error (bad option, missing file, wrong key password,\n"
    "     an output folder that cannot be used)\n"
)

EXIT_CODES_EPILOG = (
    "\b\nExit codes:\n"
    "  0  success\n"
    # store: store_paths re-raises an association failure only when no object
    # was stored; once one was, the others are failed results (exit 1).
    "  1  echo: the peer answered with a non-success status; store: one or more\n"
    "     objects were not stored (a failure status from the peer, a file that is\n"
    "     not DICOM or in a transfer syntax the peer refused, the link lost once\n"
    "     some were stored); demo: a step failed\n"
    + _EXIT_USAGE_LINES +
    "  3  association, TLS or network failure (store: before any object was stored)\n"
    "  130 interrupted (Ctrl-C)\n"
    "  143 terminated (SIGTERM: timeout(1), systemd, a cancelled CI job), handled as\n"
    "      Ctrl-C is (store and echo abort the association and report)"
)

#: A server is meant to be stopped: Ctrl-C and SIGTERM close it, and that is success.
SERVE_EXIT_CODES_EPILOG = (
    "\b\nExit codes:\n"
    "  0  stopped by Ctrl-C or SIGTERM (the server closed, \"stopped\" printed)\n"
    + _EXIT_USAGE_LINES +
    "  3  cannot listen (address in use, no permission) or another network failure\n"
    "  130 interrupted before it listened (Ctrl-C at the key's password prompt, or\n"
    "      while it loaded its certificates)\n"
    "  143 terminated (SIGTERM) before it listened"
)

#: reindex and certs touch only local files: no peer status, no network (3).
_EXIT_LOCAL_INTERRUPT_LINES = (
    "  130 interrupted (Ctrl-C)\n"
    "  143 terminated (SIGTERM)"
)
REINDEX_EXIT_CODES_EPILOG = (
    "\b\nExit codes:\n"
    "  0  success (rows added or removed, or none to change)\n"
    # As store's 1: the run went through, but not everything asked was done.
    "  1  --repair: one or more files could not be relabelled (the summary names\n"
    "     them and why: not_relabelled with --json); the others were, and every\n"
    "     file is indexed as what it is\n"
    "  2  usage or configuration error (FOLDER not a folder or not a store, the\n"
    "     store in use by a server, an index that cannot be read or written)\n"
    + _EXIT_LOCAL_INTERRUPT_LINES
)
CERTS_EXIT_CODES_EPILOG = (
    "\b\nExit codes:\n"
    "  0  success\n"
    "  2  usage or configuration error (init, issue: files there already without\n"
    "     --force; no CA, a missing or wrong password, a file that holds no\n"
    "     certificate)\n"
    + _EXIT_LOCAL_INTERRUPT_LINES
)

INTERRUPTED = "interrupted"
TERMINATED = "terminated (SIGTERM)"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, as Python raises KeyboardInterrupt
    for Ctrl-C: whatever handles a Ctrl-C handles it too (a password prompt
    restores the terminal, a command reports what it did), and it exits 143."""


def raise_terminated(signum: int, frame: Any) -> NoReturn:
    """The entry point's SIGTERM handler (SIGINT's is Python's own)."""
    raise Terminated


def handle_signals() -> None:
    """The program's handling of SIGTERM (raise :class:`Terminated`) and of a
    Ctrl-C or SIGTERM that lands in a finalizer, for the rest of the process.

    A handler someone else set for SIGTERM (or SIG_IGN) is left alone."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, raise_terminated)
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        # Python runs a signal's handler wherever the main thread is, a
        # generator's finalizer, an object's __del__ or a weakref callback
        # included, and there can only print the KeyboardInterrupt ("Exception
        # ignored in: ...", a traceback) and go on as if none had come. It is
        # sent again a moment later, when the main thread has left the hook.
        exc = getattr(unraisable, "exc_value", None)
        if not isinstance(exc, KeyboardInterrupt):
            previous(unraisable)
            return
        send_again(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)

    sys.unraisablehook = hook


def send_again(signum: signal.Signals) -> None:
    """Have ``signum`` handled in the main thread again in a moment, once it has left
    the finalizer (and this hook) where the first one was lost. Should that
    moment come while we are still here (a loaded machine: it came within
    ``Thread.start``, raised out of the hook, and was lost with it), it is sent
    once more: exactly one is ever pending."""
    while True:
        try:
            _thread.start_new_thread(_interrupt_soon, (signum,))  # no wait for the thread
            return
        except KeyboardInterrupt as landed:  # the one sent came before we returned
            signum = signal.SIGTERM if isinstance(landed, Terminated) else signal.SIGINT


def _interrupt_soon(signum: signal.Signals) -> None:
    time.sleep(0.001)
    _thread.interrupt_main(signum)


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Write the run's last document here: a Ctrl-C or SIGTERM that comes
    meanwhile is dropped, and the outcome the document tells stands. Raised
    there, it cut the document where the write was (a pipe's reader lagging)
    and the fallback document followed: stdout no longer parsed. Handled and
    not raised, it cut the document all the same: a write(2) it interrupts
    after part of the data, Python's buffered writer drops the rest. So they
    are blocked here, and those that came are taken off, unhandled, before
    they are let through again. (A write stuck on a pipe nobody reads is cut
    by the reader's end, or SIGQUIT.)

    Only where Python handles the signal (its own handlers; not SIG_IGN, nor
    SIG_DFL, which ends the process all the same) and in the main thread."""
    if (threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "pthread_sigmask")):
        yield
        return
    held = [signum for signum in (signal.SIGINT, signal.SIGTERM)
            if callable(signal.getsignal(signum))]
    # Dropped too when another thread takes it (the main thread's mask is its own).
    handlers = {signum: signal.signal(signum, _drop) for signum in held}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        while held and signal.sigtimedwait(held, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _drop(signum: int, frame: Any) -> None:
    """A signal's handler that does nothing (see :func:`held_signals`)."""


def interruption(exc: BaseException | None = None, *,
                 terminated: bool = False) -> tuple[str, int]:
    """The ``error:`` line's message and the exit code of a run that a Ctrl-C
    (or, with ``terminated`` or a :class:`Terminated`, a SIGTERM) ended."""
    if terminated or isinstance(exc, Terminated):
        return TERMINATED, EXIT_TERMINATED
    return INTERRUPTED, EXIT_INTERRUPTED


class JsonPromise:
    """``--json`` on the command line: stdout ends with one JSON document, the
    command's own or, when it printed none (a usage error, a Ctrl-C while it
    loaded), ``{"error": ..., "exit_code": ..., "interrupted": ...}`` (and
    ``"event": "error"`` for serve, whose lines are events)."""

    __slots__ = ("error", "printed", "serve", "wanted")

    def __init__(self, *, wanted: bool, serve: bool = False) -> None:
        self.wanted = wanted
        self.serve = serve
        self.printed = False
        #: The ``error:`` line's message, once one is written.
        self.error: str | None = None

    def keep(self, code: int, message: str | None = None) -> None:
        """Print the fallback document for a run that exits ``code`` (none for
        success, which prints its own, nor for --help)."""
        if not self.wanted or self.printed or not code:
            return
        import json  # here: the entry point loads what it needs first

        self.printed = True
        doc: dict[str, Any] = {"event": "error"} if self.serve else {}
        from dicomnet.cli.jsontext import valid_unicode  # a file name's odd bytes

        error = message if message is not None else self.error
        doc |= {"error": None if error is None else valid_unicode(error),
                "exit_code": code,
                "interrupted": code in (EXIT_INTERRUPTED, EXIT_TERMINATED)}
        with contextlib.suppress(OSError, ValueError):  # stdout closed: nothing to keep
            print(json.dumps(doc, indent=None if self.serve else 2), flush=True)


_PROMISE: contextvars.ContextVar[JsonPromise] = contextvars.ContextVar("dicomnet_json")


@contextlib.contextmanager
def json_promise(argv: Sequence[str] | None = None) -> Iterator[JsonPromise]:
    """The run's promise, made from its command line (``--json`` before any
    ``--``) when no outer one was (the entry point's, seen by the command group).
    Without ``argv``: the current one, or one that promises nothing."""
    current = _PROMISE.get(None)
    if current is not None or argv is None:
        yield current if current is not None else JsonPromise(wanted=False)
        return
    token = _PROMISE.set(promise := _promised(argv))
    try:
        yield promise
    finally:
        _PROMISE.reset(token)


def promise_json(argv: Sequence[str]) -> JsonPromise:
    """The program's promise, for the rest of the process (the entry point's:
    no clean-up to run, nor to be interrupted, as it exits)."""
    promise = _promised(argv)
    _PROMISE.set(promise)
    return promise


def _promised(argv: Sequence[str]) -> JsonPromise:
    words = list(argv)
    options = words[:words.index("--")] if "--" in words else words
    command = next((w for w in options if not w.startswith("-")), None)
    return JsonPromise(wanted="--json" in options, serve=command == "serve")


def write_error(message: str) -> None:
    """The ``error:`` line on stderr, plain (click may not be loaded), and noted
    for the JSON document."""
    with json_promise() as promise:
        promise.error = message
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()


def quit_now(message: str, code: int) -> NoReturn:
    """Exit at once, with no clean-up: for a third Ctrl-C, when the clean-up the
    first two asked for does not end (a thread blocked in a DNS lookup or an
    fsync holds asyncio's shutdown; raising KeyboardInterrupt there printed
    tracebacks and still waited for it). Its ``error:`` line and --json
    document are written only as far as the pipes take them at once: a reader
    that stalled (``serve``'s log shipper) left them full, and the exit blocked.
    (RuntimeError: this signal may have cut a write of the same stream.)"""
    with _not_blocking(sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            write_error(message)
        with json_promise() as promise, contextlib.suppress(OSError, ValueError, RuntimeError):
            promise.keep(code, message)
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            sys.stdout.flush()
    os._exit(code)


@contextlib.contextmanager
def _not_blocking(*streams: Any) -> Iterator[None]:
    """``streams``' descriptors made non-blocking (a write that cannot be taken
    at once fails with EAGAIN), and as they were again after. O_NONBLOCK belongs
    to the open file, which a shell or the other end of a pipeline may share
    (a dup would too): it is not left set."""
    restore: list[int] = []
    for stream in streams:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            fd = stream.fileno()
            if os.get_blocking(fd):
                os.set_blocking(fd, False)
                restore.append(fd)
    try:
        yield
    finally:
        for fd in restore:
            with contextlib.suppress(OSError):
                os.set_blocking(fd, True)


def leave(code: int | str | None) -> NoReturn:
    """Exit with ``code``, the run's outcome, which a signal now changes no more.

    Python restores SIGINT's default action while it finalizes, so a Ctrl-C
    then killed the process (exit -2 for a script, no message); ignored signals
    stay ignored. And a KeyboardInterrupt that left code compiled from a string
    (dataclasses and namedtuple make their methods so, while a command loads)
    leaves a flag behind, caught or not, that makes ``python -m`` kill itself
    with SIGINT on the way out, whatever the exit code: the next such
    compilation clears it."""
    try:
        _ignore_signals()
    except KeyboardInterrupt:  # one that came before they were ignored
        _ignore_signals()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    eval("0", {})  # a constant: clears that flag
    sys.exit(code)


def _ignore_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):  # not the main thread
            signal.signal(signum, signal.SIG_IGN)
