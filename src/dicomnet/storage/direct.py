"""Appending a large object to disk without the page cache (Linux ``O_DIRECT``).

A C-STORE SCP must have each object on disk before it answers (PS3.4 B.2.2), so
every byte it receives is written and then waited for. Through the page cache
that costs a kernel copy per byte, which on this project's benchmark machine
was the largest single cost of receiving a 256 MB object: 0.75-1.75 s of
system time per GB, against 0.05 s with ``O_DIRECT`` at the same disk
throughput (``bench/disk_write.py``). DCMTK's ``storescp`` pays that copy and
never waits for the disk.

:class:`DirectSpool` gathers what it is given into page-aligned chunks of
:data:`CHUNK` bytes and writes each, at its own offset, from a small pool of
threads, with ``O_DIRECT`` set on the descriptor: the disk works while the
network delivers the next chunk. At most :data:`IN_FLIGHT` chunks per file
wait for the disk; a caller that outruns it waits (back-pressure, bounded
memory). The last, partial chunk is written through the page cache after
clearing ``O_DIRECT``, so the file has its exact length without truncation;
the caller's ``fsync`` then makes the whole durable.

Where ``O_DIRECT`` cannot be set (tmpfs, some network and FUSE file systems)
:meth:`DirectSpool.open` returns None and the caller writes as usual; a write
the file system refuses later (``EINVAL``: an alignment it does not accept) is
retried through the page cache.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import functools
import mmap
import os
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["CHUNK", "IN_FLIGHT", "DirectSpool"]

#: Bytes per direct write: a multiple of every logical block size (512, 4096).
#: 1 MiB wrote at the disk's full rate here (4 MiB no faster) and bounds memory.
CHUNK = 1 << 20
#: Chunks of one file being written at once; the one being filled is extra.
IN_FLIGHT = 2
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_POOL_MAX = 8  # idle chunk buffers kept for the next file (page faults are not free)
_WORKERS = 4

_free: list[mmap.mmap] = []


@functools.cache  # one pool per process, made on first use
def _get_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_WORKERS, thread_name_prefix="dicomnet-disk")


def _take_buffer() -> mmap.mmap:
    try:
        return _free.pop()  # list.pop is atomic under the GIL
    except IndexError:
        return mmap.mmap(-1, CHUNK)  # anonymous maps are page-aligned, as O_DIRECT needs


def _give_back(buffer: mmap.mmap) -> None:
    if len(_free) < _POOL_MAX:
        _free.append(buffer)
    else:
        buffer.close()


def _set_direct(fd: int, on: bool) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, (flags | _O_DIRECT) if on else (flags & ~_O_DIRECT))


def _write_at(fd: int, data: memoryview, offset: int) -> None:
    """pwrite all of ``data`` at ``offset``; if the file system refuses the direct
    write (EINVAL), go on through the page cache for this descriptor."""
    while data:
        try:
            written = os.pwrite(fd, data, offset)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            _set_direct(fd, False)  # then retried buffered just below
            written = os.pwrite(fd, data, offset)
        data = data[written:]
        offset += written


class DirectSpool:
    """Appends to an open, empty file descriptor with ``O_DIRECT``, in the
    background. Not thread-safe: :meth:`write` from one thread; :meth:`finish` or
    :meth:`cancel` once, from any thread, after the last write. The descriptor
    stays the caller's, and must stay open until one of them has returned."""

    __slots__ = ("_buffer", "_fd", "_filled", "_inflight", "_offset", "_view")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._offset = 0  # file offset of the chunk being filled
        self._buffer: mmap.mmap | None = None
        self._view: memoryview | None = None
        self._filled = 0
        self._inflight: collections.deque[Future[None]] = collections.deque()

    @classmethod
    def open(cls, fd: int) -> DirectSpool | None:
        """A spool for ``fd``, or None where this system or file system has no
        ``O_DIRECT`` (the caller then writes through the page cache)."""
        if not _O_DIRECT:
            return None
        try:
            _set_direct(fd, True)
        except OSError:
            return None
        return cls(fd)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``. Raises ``OSError`` from an earlier chunk's write."""
        source = memoryview(data).cast("B")
        size = len(source)
        done = 0
        while done < size:
            if self._view is None:
                self._start_chunk()
                assert self._view is not None
            count = min(size - done, CHUNK - self._filled)
            self._view[self._filled:self._filled + count] = source[done:done + count]
            self._filled += count
            done += count
            if self._filled == CHUNK:
                self._submit()

    def finish(self) -> None:
        """Wait for every chunk, then write the partial last one through the page
        cache (its length need not be aligned). Raises ``OSError``."""
        try:
            self._wait_all()
            _set_direct(self._fd, False)  # the descriptor is an ordinary one again
            if self._filled:
                assert self._view is not None
                _write_at(self._fd, self._view[:self._filled], self._offset)
        finally:
            self._release_current()

    def cancel(self) -> None:
        """Wait for the chunks already handed to the disk (their threads must be
        done with the descriptor before it is closed), ignoring their errors."""
        with contextlib.suppress(OSError):
            self._wait_all()
        while self._inflight:  # what _wait_all left after an error
            with contextlib.suppress(OSError):
                self._inflight.popleft().result()
        self._release_current()

    # -- internals ---------------------------------------------------------------

    def _start_chunk(self) -> None:
        while len(self._inflight) >= IN_FLIGHT:
            self._inflight.popleft().result()  # back-pressure: the disk is behind
        self._buffer = _take_buffer()
        self._view = memoryview(self._buffer)
        self._filled = 0

    def _submit(self) -> None:
        buffer, view = self._buffer, self._view
        assert buffer is not None and view is not None
        self._buffer = self._view = None
        offset, self._offset = self._offset, self._offset + CHUNK
        self._filled = 0
        self._inflight.append(_get_executor().submit(self._write_chunk, view, buffer, offset))

    def _write_chunk(self, view: memoryview, buffer: mmap.mmap, offset: int) -> None:
        try:
            _write_at(self._fd, view, offset)
        finally:
            view.release()
            _give_back(buffer)

    def _wait_all(self) -> None:
        while self._inflight:
            self._inflight.popleft().result()

    def _release_current(self) -> None:
        view, buffer = self._view, self._buffer
        self._view = self._buffer = None
        self._filled = 0
        if view is not None:
            view.release()
        if buffer is not None:
            _give_back(buffer)
