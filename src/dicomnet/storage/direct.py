"""Appending a large object to disk without the page cache (Linux ``O_DIRECT``
and native asynchronous I/O).

A C-STORE SCP must have each object on disk before it answers (PS3.4 B.2.2), so
every byte it receives is written and then waited for. Through the page cache
that costs a kernel copy per byte, which on this project's benchmark machine
was the largest single cost of receiving a 256 MB object: 0.3-1.8 s of CPU
per GB, against 0.06 s with ``O_DIRECT`` at the same disk throughput
(``bench/disk_write.py``). DCMTK's ``storescp`` pays that copy and never waits
for the disk.

:class:`DirectSpool` gathers what it is given into page-aligned chunks of
:data:`CHUNK` bytes and submits each to the kernel (``io_submit``) at its own
offset: the disk works while the network delivers the next chunk, and no
thread is involved (worker threads measured slower: each finished write had to
win the GIL back from the busy event loop). At most :data:`IN_FLIGHT` chunks
per file are with the disk; a caller that outruns it waits (back-pressure,
bounded memory). Space is reserved ahead with ``fallocate``, because ext4
performs a direct write that extends the file synchronously, inside
``io_submit``; the file is cut to its exact length at the end. The last,
partial chunk goes through the page cache after ``O_DIRECT`` is cleared, and
the caller's ``fsync`` makes the whole durable.

Data sets small enough to be received in memory (up to 1 MiB) are gathered,
past 64 KiB, in an :class:`AlignedBuffer`; the SCP's store thread then writes
a round of them with :class:`DirectBatch`: one direct write per object, all
submitted together.

Where this cannot work (not Linux x86-64 or AArch64, ``O_DIRECT`` refused by
tmpfs or a network file system, no AIO context left) :meth:`DirectSpool.open`
returns None, :meth:`DirectBatch.add` False, and the caller writes as usual; a
chunk the file system refuses later (``EINVAL``) is written synchronously,
through the page cache.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import platform
import sys
from typing import Any

__all__ = ["CHUNK", "IN_FLIGHT", "SLACK", "AlignedBuffer", "DirectBatch", "DirectSpool"]

#: Bytes per direct write: a multiple of every logical block size (512, 4096).
#: Each ``io_submit`` ends in one notification of the (virtual) disk, which on
#: the benchmark machine, a VM, is an exit to the host: with 1 MiB chunks,
#: ``iowrite16`` under ``io_submit`` was 5.4% of the server's CPU receiving
#: 256 MB objects (``perf``), 2.1% with 2 MiB; the server's CPU per GB went
#: from 0.79 to 0.745 s (medians of 8 interleaved rounds, bench/pairs.py).
CHUNK = 2 << 20
#: Chunks of one file with the disk at once; the one being filled is extra.
#: What matters is the bytes in flight: with 2 MiB the event loop waited for the
#: disk 0.4 s per GB on the benchmark machine, with 4 MiB 0.01 s. Since data
#: sets are received in place (the chunk is where TLS decrypts), larger chunks
#: also mean fewer, longer reads. One 4 MiB chunk in flight (a wait for the
#: disk before each submit) was slower than two of 2 MiB.
IN_FLIGHT = 2
#: Bytes each chunk's buffer has past :data:`CHUNK`, so that :meth:`DirectSpool.reserve`
#: can lend the whole rest of a PDV that the chunk's end would cut a little short;
#: they move to the start of the next chunk when the chunk goes to disk. Without
#: it, that rest (under the association's 64 KiB in-place threshold) was read
#: through the transport's buffer, together with the next PDU's header and up to
#: 256 KiB of its data, all copied: with 1 MiB PDUs, whose ends drift a few
#: bytes per chunk, at nearly every chunk boundary (115 KB per MiB of a 64 MiB
#: object: docs/benchmarks.md). As large as that threshold, so that a rest too
#: long for the slack is itself received in place, into the next chunk.
SLACK = 64 << 10
#: Most space reserved ahead of the writes by one fallocate call.
ALLOCATE_STEP = 64 << 20
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_IOCB_CMD_PWRITE = 1
# (io_setup, io_destroy, io_getevents, io_submit) by machine.
_SYSCALLS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2)}


class _IOCB(ctypes.Structure):
    """``struct iocb`` (linux/aio_abi.h), little-endian layout."""

    _fields_ = [
        ("aio_data", ctypes.c_uint64), ("aio_key", ctypes.c_uint32),
        ("aio_rw_flags", ctypes.c_int32), ("aio_lio_opcode", ctypes.c_uint16),
        ("aio_reqprio", ctypes.c_int16), ("aio_fildes", ctypes.c_uint32),
        ("aio_buf", ctypes.c_uint64), ("aio_nbytes", ctypes.c_uint64),
        ("aio_offset", ctypes.c_int64), ("aio_reserved2", ctypes.c_uint64),
        ("aio_flags", ctypes.c_uint32), ("aio_resfd", ctypes.c_uint32),
    ]


class _Event(ctypes.Structure):
    """``struct io_event``."""

    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64),
                ("res", ctypes.c_int64), ("res2", ctypes.c_int64)]


class _Kernel:
    """The four AIO system calls and fallocate, through libc."""

    def __init__(self) -> None:
        numbers = _SYSCALLS[platform.machine()]
        self.io_setup, self.io_destroy, self.io_getevents, self.io_submit = numbers
        self.libc = ctypes.CDLL(None, use_errno=True)  # calls release the GIL
        self.libc.syscall.restype = ctypes.c_long
        self.libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                                        ctypes.c_int64]
        self.libc.fallocate.restype = ctypes.c_int

    def call(self, number: int, *args: Any) -> int:
        result = int(self.libc.syscall(ctypes.c_long(number), *args))
        if result < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return result

    def fallocate(self, fd: int, offset: int, length: int) -> None:
        if self.libc.fallocate(fd, 0, offset, length) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))


def _load_kernel() -> _Kernel | None:
    if sys.platform != "linux" or sys.byteorder != "little" or not _O_DIRECT:
        return None
    try:
        return _Kernel()
    except (KeyError, OSError, AttributeError):
        return None


_kernel = _load_kernel()


#: Idle AIO contexts, with nothing in flight: reused, since destroying one takes
#: tens of milliseconds.
_contexts: list[int] = []
if hasattr(os, "register_at_fork"):
    # A forked child's contexts are not its own: forgotten by a hook rather than
    # checked with a getpid, a system call per object.
    os.register_at_fork(after_in_child=_contexts.clear)
_CONTEXTS_MAX = 8


def _open_context() -> int | None:
    """An AIO context with nothing in flight (reused, or new), or None."""
    if _kernel is None:
        return None
    try:
        return _contexts.pop()
    except IndexError:
        pass
    handle = ctypes.c_ulong(0)
    try:
        _kernel.call(_kernel.io_setup, ctypes.c_long(max(IN_FLIGHT, DirectBatch.MAX)),
                     ctypes.byref(handle))
    except OSError:  # EAGAIN: the system's aio-max-nr is used up; ENOSYS
        return None
    return handle.value


def _release_context(context: int, *, reusable: bool) -> None:
    """Keep ``context`` for the next writer when nothing is in flight in it;
    otherwise destroy it, which waits for what is."""
    if reusable and len(_contexts) < _CONTEXTS_MAX:
        _contexts.append(context)  # io_destroy waits ~30 ms (an RCU grace period)
        return
    assert _kernel is not None
    with contextlib.suppress(OSError):
        _kernel.call(_kernel.io_destroy, ctypes.c_ulong(context))


def _set_direct(fd: int, on: bool) -> None:
    """Turn ``O_DIRECT`` on or off for ``fd``, a descriptor of the store's own
    files. F_SETFL changes only the status flags (O_APPEND, O_ASYNC, O_DIRECT,
    O_NOATIME, O_NONBLOCK: fcntl(2)), none of which those files have otherwise:
    one system call, not a read of the flags first (two per object saved, each a
    hand-over of the GIL). Off, no third argument (fcntl passes 0): CPython's
    fcntl tries an int argument as a buffer first, and the TypeError it raises
    and drops was ~3,500 instructions per call (callgrind, session 29)."""
    if on:
        fcntl.fcntl(fd, fcntl.F_SETFL, _O_DIRECT)
    else:
        fcntl.fcntl(fd, fcntl.F_SETFL)


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


class _Writes:
    """Direct writes in flight through one AIO context, each from an
    :class:`AlignedBuffer`, at most :data:`IN_FLIGHT` at once. A failure is
    recorded per descriptor in :attr:`errors`; a write the kernel takes only in
    part is finished in place, as pwrite would."""

    __slots__ = ("_context", "_events", "_inflight", "_synchronous", "errors")

    def __init__(self, context: int) -> None:
        self._context = context
        self._events = (_Event * IN_FLIGHT)()
        # id(buffer) -> (buffer, fd, its control block: alive while in flight)
        self._inflight: dict[int, tuple[AlignedBuffer, int, _IOCB]] = {}
        self._synchronous = False  # AIO refused a write: the rest in place
        self.errors: dict[int, OSError] = {}

    @classmethod
    def open(cls) -> _Writes | None:
        context = _open_context()
        return None if context is None else cls(context)

    def buffer(self) -> AlignedBuffer:
        """An empty chunk, after waiting for one if :data:`IN_FLIGHT` are busy."""
        if len(self._inflight) >= IN_FLIGHT:
            self.reap(1)  # back-pressure: the disk is behind
        return AlignedBuffer.take(CHUNK + SLACK)

    def submit(self, fd: int, buffer: AlignedBuffer, offset: int) -> None:
        """Write ``buffer`` at ``offset`` (it is released when done). Errors go to
        :attr:`errors`."""
        if not self._synchronous:
            iocb = _IOCB()
            iocb.aio_data = id(buffer)
            iocb.aio_lio_opcode = _IOCB_CMD_PWRITE
            iocb.aio_fildes = fd
            iocb.aio_buf = buffer.address
            iocb.aio_nbytes = len(buffer)
            iocb.aio_offset = offset
            pointers = (ctypes.POINTER(_IOCB) * 1)(ctypes.pointer(iocb))
            assert _kernel is not None
            try:
                _kernel.call(_kernel.io_submit, ctypes.c_ulong(self._context),
                             ctypes.c_long(1), pointers)
            except OSError:  # EINVAL, EOPNOTSUPP...: this file takes no AIO
                self._synchronous = True
            else:
                self._inflight[id(buffer)] = (buffer, fd, iocb)
                return
        try:
            with buffer.view() as view:
                _write_at(fd, view, offset)
        except OSError as exc:
            self.errors.setdefault(fd, exc)
        finally:
            buffer.release()

    def reap(self, wanted: int) -> None:
        """Collect at least ``wanted`` finished writes (blocking for them)."""
        assert _kernel is not None
        while wanted > 0 and self._inflight:
            try:
                count = _kernel.call(
                    _kernel.io_getevents, ctypes.c_ulong(self._context),
                    ctypes.c_long(1), ctypes.c_long(IN_FLIGHT), self._events, None)
            except InterruptedError:
                continue
            for event in self._events[:count]:
                buffer, fd, iocb = self._inflight.pop(event.data)
                done = event.res
                if done < 0:
                    self.errors.setdefault(fd, OSError(-done, os.strerror(-done)))
                elif done < len(buffer):  # short: the rest in place
                    try:
                        with buffer.view() as view:
                            _write_at(fd, view[done:], iocb.aio_offset + done)
                    except OSError as exc:
                        self.errors.setdefault(fd, exc)
                buffer.release()
            wanted -= count

    def close(self) -> None:
        """Wait for everything in flight (the kernel is then done with every
        descriptor and buffer), then give the context back. Idempotent."""
        if not self._context:
            return
        assert _kernel is not None
        try:
            self.reap(len(self._inflight))
            reusable = True
        except OSError:  # io_getevents itself failed: let io_destroy settle it
            reusable = False
        context, self._context = self._context, 0
        _release_context(context, reusable=reusable)
        for buffer, _fd, _iocb in self._inflight.values():  # only left when not reusable
            buffer.release()
        self._inflight.clear()


class DirectSpool:
    """Appends to an open, empty file descriptor with ``O_DIRECT`` and AIO. Not
    thread-safe: one thread at a time calls :meth:`write`, then :meth:`finish` or
    :meth:`cancel` once. The descriptor stays the caller's, and must stay open
    until one of them has returned (the kernel may still be writing into it)."""

    __slots__ = ("_allocated", "_current", "_fd", "_offset", "_writes")

    def __init__(self, fd: int, writes: _Writes) -> None:
        self._fd = fd
        self._writes = writes
        self._offset = 0  # file offset of the chunk being filled
        self._allocated = 0  # bytes reserved by fallocate (-1: not supported)
        self._current: AlignedBuffer | None = None

    @classmethod
    def open(cls, fd: int) -> DirectSpool | None:
        """A spool for ``fd``, or None where direct, asynchronous writes are not
        possible here (the caller then writes through the page cache)."""
        if _kernel is None:
            return None
        try:
            _set_direct(fd, True)
        except OSError:
            return None
        writes = _Writes.open()
        if writes is None:
            _set_direct(fd, False)
            return None
        return cls(fd, writes)

    @property
    def size(self) -> int:
        """Bytes appended so far."""
        return self._offset + (len(self._current) if self._current is not None else 0)

    def reserve(self, most: int) -> memoryview | None:
        """Where the next bytes (at most ``most``) may be received in place: the
        free end of the chunk being filled (:meth:`AlignedBuffer.tail`), past
        its end by up to :data:`SLACK` when that takes all ``most`` (the rest of
        a PDV), else up to its end. Bytes received there and then passed to
        :meth:`write` are not copied again, but for those past the chunk's end."""
        self._check()
        current = self._current
        if current is None:
            current = self._current = self._writes.buffer()
        free = CHUNK - current.size
        if most > free + SLACK:
            most = free  # the rest is long enough to go in place into the next chunk
        return current.tail(most)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``. Raises ``OSError`` from an earlier chunk's write."""
        self._check()
        source = memoryview(data).cast("B")
        size = len(source)
        done = 0
        while done < size:
            current = self._current
            if current is None:
                current = self._current = self._writes.buffer()
                self._check()
            count = min(size - done, CHUNK - current.size)
            current.append(source[done:done + count])
            done += count
            if current.size == CHUNK:
                # What was received past the chunk's end (reserve's slack) is
                # copied to the next chunk's start on the next round, from memory
                # the disk only reads. Should the next chunk be this very buffer
                # (written, reaped and taken again: release does not clear it),
                # those bytes are still there, past CHUNK, clear of the copy's
                # destination (SLACK < CHUNK).
                self._submit()

    def finish(self) -> None:
        """Wait for every chunk, write the partial last one through the page cache
        (its length need not be aligned) and cut the file to its length.
        Raises ``OSError``; either way the spool is closed."""
        try:
            self._writes.close()
            self._check()
            _set_direct(self._fd, False)  # the descriptor is an ordinary one again
            if self._current is not None and len(self._current):
                with self._current.view() as view:
                    _write_at(self._fd, view, self._offset)
            if self._allocated > 0:
                os.ftruncate(self._fd, self.size)  # drop what fallocate reserved beyond
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop: the kernel finishes the chunks it has, and is done with the
        descriptor when this returns. Errors are ignored."""
        self._writes.close()
        current, self._current = self._current, None
        if current is not None:
            current.release()

    def _check(self) -> None:
        error = self._writes.errors.get(self._fd)
        if error is not None:
            raise error

    def _submit(self) -> None:
        current, self._current = self._current, None
        assert current is not None
        offset = self._offset
        self._offset += len(current)
        try:
            self._reserve(self._offset)
        except OSError:
            current.release()
            raise
        self._writes.submit(self._fd, current, offset)
        self._check()

    def _reserve(self, end: int) -> None:
        """fallocate ahead, so that the direct writes do not extend the file."""
        if self._allocated < 0 or end <= self._allocated:
            return
        assert _kernel is not None
        # Doubling up to the step: an object just over the spill threshold does
        # not make the file system reserve (and then release) 64 MiB.
        step = min(ALLOCATE_STEP, max(4 * CHUNK, self._allocated))
        needed = end - self._allocated
        while True:
            try:
                _kernel.fallocate(self._fd, self._allocated, step)
                break
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    self._allocated = -1  # not supported: writes extend the file as they go
                    return
                if step > needed:
                    # The step is a guess at what is still to come: a nearly full
                    # disk may yet hold this object. Reserve what this write needs.
                    step = needed
                    continue
                self._writes.errors.setdefault(self._fd, exc)
                raise
        self._allocated += step


_BLOCK = 4096  # alignment that suits every logical block size
#: Private anonymous memory, not ``mmap``'s default for ``-1`` (shared): shared
#: anonymous pages live in the kernel's shmem, and a first touch of each costs
#: more. 41 maps of 1 MiB with 512 KiB written to each, what a fresh server's
#: first window of images maps: 10.7-11.9 ms of CPU private, 17.5-18.6 ms
#: shared (docs/benchmarks.md item 46). Nothing shares them: O_DIRECT reads
#: either kind. (Windows' mmap takes no flags.)
_PRIVATE: dict[str, int] = (
    {"flags": mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS} if hasattr(mmap, "MAP_ANONYMOUS")
    else {})
#: Idle AlignedBuffers kept per capacity (their touched pages stay resident).
_ALIGNED_POOL_MAX = 16


class AlignedBuffer:
    """A byte buffer of fixed capacity in a page-aligned anonymous map, filled by
    appending: a data set received in memory that :class:`DirectBatch` can then
    write with ``O_DIRECT`` as it is, without a copy. Only the pages written to
    take memory. Its bytes are read through :meth:`view`.

    :meth:`take` and :meth:`release` reuse buffers: a fresh map costs a page
    fault and a zeroed page per 4 KiB touched, which on 512 KB images doubled
    the event loop's system time."""

    __slots__ = ("_anchor", "_map", "_view", "address", "capacity", "size")

    @classmethod
    def take(cls, capacity: int) -> AlignedBuffer:
        """An empty buffer of ``capacity`` bytes (rounded up to whole blocks),
        reused when one of that capacity was released."""
        capacity = -(-capacity // _BLOCK) * _BLOCK
        pool = _aligned_free.get(capacity)
        # Looked at before the pop: an empty pool's IndexError, raised and caught,
        # was one exception object per image received (gdb, session 29).
        if pool:
            try:
                return pool.pop()  # atomic under the GIL
            except IndexError:  # another thread took the last one meanwhile
                pass
        return cls(capacity)

    def release(self) -> None:
        """Give the buffer back for :meth:`take`: its owner must hold no view of it
        any more, and not use it again."""
        self.size = 0
        idle = _aligned_free.setdefault(self.capacity, [])
        if self._view is not None and len(idle) < _ALIGNED_POOL_MAX:
            idle.append(self)
        else:
            self.close()

    def __init__(self, capacity: int) -> None:
        self.capacity = -(-capacity // _BLOCK) * _BLOCK
        self._map = mmap.mmap(-1, self.capacity, **_PRIVATE)
        self._anchor: ctypes.c_char | None = ctypes.c_char.from_buffer(self._map)
        self.address = ctypes.addressof(self._anchor)
        self._view: memoryview | None = memoryview(self._map)
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def tail(self, most: int) -> memoryview | None:
        """The free space after the bytes appended so far, at most ``most`` bytes,
        for the caller to fill in place and then :meth:`append` as it is (only
        the length is then taken). None when full or closed."""
        free = min(self.capacity - self.size, most)
        if free <= 0 or self._view is None:
            return None
        return self._view[self.size:self.size + free]

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add ``data`` at the end. Raises ``ValueError`` past the capacity. Bytes
        already in place (filled through :meth:`tail`) are not copied."""
        source = memoryview(data).cast("B")
        count = len(source)
        end = self.size + count
        if end > self.capacity or self._view is None:
            raise ValueError(f"AlignedBuffer: {end} bytes do not fit in {self.capacity}")
        if not (source.obj is self._map and count
                and ctypes.addressof(ctypes.c_char.from_buffer(source))
                == self.address + self.size):
            self._view[self.size:end] = source
        self.size = end

    def view(self) -> memoryview:
        """The bytes appended so far (valid until :meth:`close`)."""
        if self._view is None:
            raise ValueError("AlignedBuffer is closed")
        return self._view[:self.size]

    def close(self) -> None:
        """Unmap (every view of it must have been released). Idempotent."""
        if self._view is None:
            return
        self._view.release()
        self._view = None
        self._anchor = None  # the map's export, before the map can close
        # A view still held elsewhere (a slice lent by tail()) keeps the map
        # exported: it is then unmapped when the last view goes.
        with contextlib.suppress(BufferError):
            self._map.close()


_aligned_free: dict[int, list[AlignedBuffer]] = {}  # by capacity


class DirectBatch:
    """Writes whole objects held in :class:`AlignedBuffer` s, each into its own
    empty file, all at once: one ``O_DIRECT`` write per object (its whole blocks;
    the last, partial one through the page cache) submitted together through
    AIO, so the device works on a round of objects in parallel and almost no
    byte is copied into the page cache. For data sets received in memory,
    whose every byte the caller is about to fsync: in the SCP's store thread the
    page-cache write had cost up to 0.19 s per 200 x 512 KB (against 0.07 s of
    fsync), and interleaved A/B runs on such images were faster with the batch
    in 7 of 8 pairs (as bench/pairs.py runs them). One thread uses a batch:
    :meth:`add` each object, :meth:`submit` once they are all added (one
    ``io_submit`` for the round), then :meth:`finish` once; every descriptor
    given stays open until then."""

    __slots__ = ("_context", "_events", "_failures", "_pending", "_queued")

    #: Objects submitted together at most; more wait for the previous to finish.
    MAX = 32

    def __init__(self) -> None:
        self._context = 0
        self._pending: dict[int, tuple[_IOCB, AlignedBuffer]] = {}  # by fd, in flight
        self._queued: list[tuple[_IOCB, AlignedBuffer]] = []  # added, not yet submitted
        self._events = (_Event * self.MAX)()
        self._failures: dict[int, OSError] = {}

    def add(self, fd: int, buffer: AlignedBuffer) -> bool:
        """Take ``buffer`` to write into the empty file ``fd`` (from :meth:`submit`
        on). False, having done nothing, where ``O_DIRECT``, AIO or ``fallocate``
        are not available here (the caller writes it). ``buffer`` must not change
        until :meth:`finish`."""
        # Its size as an attribute, the queue looked through in a loop: no
        # __len__, no generator (~5 Python calls per image on the store thread).
        size = buffer.size
        aligned = size - size % _BLOCK
        if _kernel is None or aligned == 0 or fd in self._pending:
            return False
        for queued in self._queued:
            if queued[0].aio_fildes == fd:
                return False
        if not self._context:
            self._context = _open_context() or 0
            if not self._context:
                return False
        try:
            # The file's length first (ext4 would write an extending direct write
            # inside io_submit); then the aligned part directly, the tail after.
            _kernel.fallocate(fd, 0, size)
            fcntl.fcntl(fd, fcntl.F_SETFL, _O_DIRECT)  # _set_direct(fd, True), inline
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            return False
        if len(self._pending) + len(self._queued) >= self.MAX:
            self._collect()
        iocb = _IOCB()
        iocb.aio_data = fd
        iocb.aio_lio_opcode = _IOCB_CMD_PWRITE
        iocb.aio_fildes = fd
        iocb.aio_buf = buffer.address
        iocb.aio_nbytes = aligned
        iocb.aio_offset = 0
        self._queued.append((iocb, buffer))
        return True

    def submit(self) -> None:
        """Start the writes added since the last call, with one ``io_submit`` (each
        system call of the store thread is a hand-over of the GIL). Writes AIO
        refuses are done here, in place, through the page cache."""
        queued, self._queued = self._queued, []
        while queued:
            assert _kernel is not None
            pointers = (ctypes.POINTER(_IOCB) * len(queued))(
                *[ctypes.pointer(iocb) for iocb, _ in queued])
            try:
                taken = _kernel.call(_kernel.io_submit, ctypes.c_ulong(self._context),
                                     ctypes.c_long(len(queued)), pointers)
            except OSError:
                taken = 0
            for iocb, buffer in queued[:taken]:
                self._pending[int(iocb.aio_fildes)] = (iocb, buffer)  # alive while in flight
            if taken == 0:
                for iocb, buffer in queued:
                    self._write_in_place(int(iocb.aio_fildes), buffer)
                return
            queued = queued[taken:]

    def _write_in_place(self, fd: int, buffer: AlignedBuffer) -> None:
        try:
            _set_direct(fd, False)
            with buffer.view() as view:
                _write_at(fd, view, 0)
        except OSError as exc:
            self._failures.setdefault(fd, exc)

    def finish(self) -> dict[int, OSError]:
        """Wait for every write and write each object's tail; return the failures
        by descriptor (those files are incomplete: abort them)."""
        try:
            self._collect()
        finally:
            if self._context:
                context, self._context = self._context, 0
                _release_context(context, reusable=not self._pending)
        failures, self._failures = self._failures, {}
        return failures

    def _collect(self) -> None:
        """Submit what is queued, then wait for every write in flight."""
        assert _kernel is not None
        self.submit()
        while self._pending:
            try:
                count = _kernel.call(
                    _kernel.io_getevents, ctypes.c_ulong(self._context), ctypes.c_long(1),
                    ctypes.c_long(self.MAX), self._events, None)
            except InterruptedError:
                continue
            for event in self._events[:count]:
                fd = int(event.data)
                _iocb, buffer = self._pending.pop(fd)
                done = event.res
                try:
                    if done < 0:
                        raise OSError(-done, os.strerror(-done))
                    fcntl.fcntl(fd, fcntl.F_SETFL)  # _set_direct(fd, False), inline
                    # The unaligned tail (and the rest of a short write) through the
                    # page cache; cutting a padded block off instead made ext4 read
                    # the block back (0.34 ms per object). One pwrite, inline, as a
                    # rule; _write_at for what a short one leaves (O_DIRECT is off:
                    # an EINVAL now is no refused direct write, and raises there).
                    with buffer.view() as view:
                        if done < len(view):
                            written = os.pwrite(fd, view[done:], done)
                            if done + written < len(view):
                                _write_at(fd, view[done + written:], done + written)
                except OSError as exc:
                    self._failures.setdefault(fd, exc)
