"""What the end-to-end targets (``server_receive``, ``client_store``) share: an
event loop kept for every input, watched for what goes wrong in it, and one
harness made at the first input and ended at exit."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

__all__ = ["LoopWatch", "Shared", "open_files"]

#: The loggers whose ERROR lines fail an input.
LOGGERS = ("dicomnet", "asyncio")


def open_files() -> int:
    """This process's open file descriptors."""
    return len(os.listdir("/proc/self/fd"))


class _Errors(logging.Handler):
    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__(logging.ERROR)
        self.allowed = allowed
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if not any(known in text for known in self.allowed):
            self.records.append(text)


class LoopWatch:
    """An event loop (its default executor two threads, made now: closing at
    exit is too late to import its module) whose unhandled exceptions, and the
    ERROR lines of :data:`LOGGERS` not holding any of ``allowed``, fail the
    input they came in (:meth:`check`)."""

    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(ThreadPoolExecutor(2, "dicomnet-fuzz"))
        self.loop_errors: list[str] = []
        self.loop.set_exception_handler(
            lambda loop, context: self.loop_errors.append(str(context.get("message"))
                                                          + repr(context.get("exception"))))
        self.errors = _Errors(allowed)
        for name in LOGGERS:
            logging.getLogger(name).addHandler(self.errors)

    def check(self) -> None:
        assert not self.errors.records, self.errors.records
        assert not self.loop_errors, self.loop_errors

    def close(self) -> None:
        self.loop.close()
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(self.errors)


class _Closable(Protocol):
    def close(self) -> None: ...


H = TypeVar("H", bound=_Closable)


class Shared(Generic[H]):
    """One harness for every input of a target: made by ``make`` at the first
    (:meth:`get`), ended by :meth:`close` or, before the interpreter joins its
    threads (closing needs an executor), at exit."""

    def __init__(self, make: Callable[[], H]) -> None:
        self._make = make
        self._harness: H | None = None
        self._hooked = False

    def get(self) -> H:
        if self._harness is None:
            self._harness = self._make()
            if not self._hooked:
                getattr(threading, "_register_atexit")(self.close)  # noqa: B009
                self._hooked = True
        return self._harness

    def close(self) -> None:
        harness, self._harness = self._harness, None
        if harness is not None:
            harness.close()
