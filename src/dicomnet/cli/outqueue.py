"""A server's stdout and stderr lines, written by threads of their own.

``dicomnet serve`` writes its --json events and its log lines from the event
loop. A write to a pipe whose reader lags (a log shipper, a script busy
elsewhere) blocks once the pipe is full (64 KiB on Linux), and the loop with
it: every association stalls ("no response within 60 s"). So the loop only
hands each line to a :class:`LineQueue`, whose thread writes it; a reader that
lags then costs memory, up to a bound, and past it lines, dropped, counted and
told once the reader has caught up. The stop waits a few seconds for the lines
pending, and no longer.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections import deque
from collections.abc import Callable
from typing import TextIO

import click

__all__ = ["DEFAULT_LIMIT", "LineQueue"]

#: Characters of lines waiting at most, per stream: ~13,000 "stored" events.
DEFAULT_LIMIT = 8 << 20
#: Characters written at once.
_PIECE = 1 << 16

#: Made of the count of lines dropped: the lines (without their newline) that
#: say so on this stream, once its reader has caught up.
Notice = Callable[[int], list[str]]


class LineQueue:
    """Lines for ``stream``, written in their order by a thread of their own
    (named ``name``). :meth:`put` never blocks: past ``limit`` characters
    waiting, a line is dropped and counted; once all those before are written,
    ``notice(count)`` is called (on the writer's thread) and its lines written.
    A reader gone (EPIPE) turns the stream into /dev/null and calls
    ``on_closed`` once: writes to it would fail again, the flush at exit too.

    A stream with a file descriptor is written through it, around the stream's
    buffer (flushed first): a thread blocked in ``write`` then holds no lock
    that the interpreter's exit would wait for."""

    def __init__(self, stream: TextIO, *, name: str, limit: int = DEFAULT_LIMIT,
                 notice: Notice | None = None,
                 on_closed: Callable[[], None] | None = None) -> None:
        self._stream = stream
        self._limit = limit
        self._notice = notice
        self._on_closed = on_closed
        try:
            stream.flush()
            self._fd: int | None = stream.fileno()
            self._tty = os.isatty(self._fd)
        except (AttributeError, OSError, ValueError):  # CliRunner's: no descriptor
            self._fd = None
            self._tty = False
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._written = threading.Condition(self._lock)
        self._lines: deque[str] = deque()
        self._pending = 0  # characters queued and not yet written
        self._dropped = 0
        self._queued = 0  # lines queued, ever
        self._done = 0  # lines written (or dropped by a closed reader), ever
        self._closing = False
        # Set once close() gave up on the thread and handed the stream back: the
        # descriptor may then be closed and its number reused (a test's next
        # pipe), so a write that fails later must not dup2 /dev/null onto it.
        self._released = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Lines dropped and not yet told."""
        return self._dropped

    def put(self, line: str, *, always: bool = False) -> bool:
        """Queue ``line`` (without its newline); False if dropped (the bound, which
        ``always`` passes: a run's last line)."""
        size = len(line) + 1
        with self._lock:
            if self._closing or (self._pending + size > self._limit and not always):
                self._dropped += 1
                return False
            self._lines.append(line)
            self._pending += size
            self._queued += 1
            self._wake.notify()
        return True

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the lines queued so far to be
        written; whether they were."""
        with self._lock:
            target = self._queued
            return self._written.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float) -> bool:
        """Write what is pending within ``timeout`` seconds, then stop. A reader
        that does not take it then: the rest is given up, and the stream made
        /dev/null, so that no later write (Python's flush at exit, the run's
        last document) blocks on it. Whether all was written."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return True
        with self._lock:
            self._released = True
            self._to_devnull()  # the blocked write holds the old pipe; others go nowhere
        return False

    def _run(self) -> None:
        while True:
            with self._lock:
                self._wake.wait_for(lambda: bool(self._lines) or self._closing)
                if not self._lines and self._closing:
                    return
                batch = list(self._lines)
                self._lines.clear()
            self._write_lines(batch)
            with self._lock:
                self._pending -= sum(len(line) + 1 for line in batch)
                self._done += len(batch)
                caught_up = not self._lines
                dropped = self._dropped if caught_up else 0
                self._dropped -= dropped
                self._written.notify_all()
            if dropped and self._notice is not None:
                self._write_lines(self._notice(dropped))

    def _write_lines(self, lines: list[str]) -> None:
        text = "".join(f"{line}\n" for line in lines)
        if not self._tty:
            text = click.unstyle(text)  # the colours only a terminal shows (click.echo's way)
        try:
            if self._fd is None:
                self._stream.write(text)
                self._stream.flush()
                return
            data = text.encode(self._encoding, "backslashreplace")
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self._fd, view[:_PIECE]):]
                except BlockingIOError:  # a descriptor someone made non-blocking
                    select.select([], [self._fd], [], 1.0)
        except BrokenPipeError:
            with self._lock:
                if self._released:
                    return  # close() made it /dev/null already; the number is not ours
                self._to_devnull()
            if self._on_closed is not None:
                self._on_closed()
        except (OSError, ValueError):
            pass  # a stream closed under us: these lines have nowhere to go

    def _to_devnull(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._fd)
            os.close(devnull)
