"""DirectSpool and AtomicWriter(direct=True): bytes reach the file exactly as
written whatever the piece sizes (chunk boundaries, the unaligned tail), write
errors from the background threads surface as StorageError with their errno,
and where O_DIRECT is refused the bytes still arrive through the page cache."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomnet.storage import AtomicWriter, DuplicatePolicy, StorageError
from dicomnet.storage import direct as direct_module
from dicomnet.storage.direct import CHUNK, SLACK, AlignedBuffer, DirectBatch, DirectSpool


def _supports_direct(folder: Path) -> bool:
    fd = os.open(folder / ".probe", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        return DirectSpool.open(fd) is not None
    finally:
        os.close(fd)
        os.unlink(folder / ".probe")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    if not _supports_direct(tmp_path):  # pragma: no cover - tmpfs, some FUSE
        pytest.skip("this file system has no O_DIRECT")
    return tmp_path


def pieces(data: bytes, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    at = 0
    while at < len(data):
        size = rng.choice((1, 7, 4096, 16_372, 65_536, CHUNK - 1, CHUNK, CHUNK + 3))
        yield data[at:at + size]
        at += size


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, CHUNK - 1, CHUNK, CHUNK + 1,
                                  3 * CHUNK + 12_345])
def test_the_file_holds_exactly_what_was_written(folder: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    path = folder / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        spool = DirectSpool.open(fd)
        assert spool is not None
        for piece in pieces(data, size):
            spool.write(piece)
        spool.finish()
        # The tail went through the page cache: O_DIRECT is off again.
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
    finally:
        os.close(fd)
    assert path.read_bytes() == data


def test_atomic_writer_direct_commits_the_same_bytes(folder: Path) -> None:
    data = random.Random(1).randbytes(5 * CHUNK + 777)
    dest = folder / "a" / "b.dcm"
    with AtomicWriter(dest, direct=True) as writer:
        assert writer.direct
        for piece in pieces(data, 2):
            writer.write(piece)
        assert writer.size == len(data)
        result = writer.commit(DuplicatePolicy.KEEP)
    assert result.size == len(data)
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert [p.name for p in dest.parent.iterdir()] == ["b.dcm"]


def test_flush_makes_the_bytes_readable_before_the_commit(folder: Path) -> None:
    data = random.Random(3).randbytes(2 * CHUNK + 10)
    writer = AtomicWriter(folder / "c.dcm", direct=True)
    writer.write(data)
    writer.flush()
    assert not writer.direct  # done: nothing more in the background
    assert writer.temp_path.read_bytes() == data
    writer.commit()
    assert (folder / "c.dcm").read_bytes() == data


def test_abort_waits_for_the_disk_and_leaves_nothing(folder: Path) -> None:
    writer = AtomicWriter(folder / "d.dcm", direct=True)
    writer.write(bytes(4 * CHUNK + 5))
    writer.abort()
    assert list(folder.iterdir()) == []


def test_without_o_direct_the_writer_falls_back(folder: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(fd: int, on: bool) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(direct_module, "_set_direct", refuse)
    data = random.Random(4).randbytes(CHUNK + 9)
    with AtomicWriter(folder / "e.dcm", direct=True) as writer:
        assert not writer.direct
        writer.write(data)
        writer.commit()
    assert (folder / "e.dcm").read_bytes() == data


class FakeKernel:
    """The real kernel calls, with one of them made to fail or to change its
    answer: what a file system or a device could do, that this disk will not."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = direct_module._kernel
        assert real is not None
        self.real = real
        self.submit_error: int | None = None
        self.fallocate_error: int | None = None
        #: A file system with this many bytes free: fallocate past it is ENOSPC.
        self.free_bytes: int | None = None
        self.fallocated: list[tuple[int, int]] = []
        #: (result, descriptor) -> the result the caller sees
        self.event_result: Callable[[int, int], int] | None = None
        self.submitted = 0
        monkeypatch.setattr(real, "call", self.call, raising=False)
        monkeypatch.setattr(real, "fallocate", self.fallocate, raising=False)

    def call(self, number: int, *args: Any) -> int:
        real = self.real
        if number == real.io_submit:
            self.submitted += 1
            if self.submit_error is not None:
                raise OSError(self.submit_error, os.strerror(self.submit_error))
        count = type(real).call(real, number, *args)
        if number == real.io_getevents and self.event_result is not None:
            events = args[3]
            for k in range(count):
                iocb = ctypes.cast(events[k].obj, ctypes.POINTER(direct_module._IOCB)).contents
                events[k].res = self.event_result(events[k].res, iocb.aio_fildes)
        return count

    def fallocate(self, fd: int, offset: int, length: int) -> None:
        if self.fallocate_error is not None:
            raise OSError(self.fallocate_error, os.strerror(self.fallocate_error))
        if self.free_bytes is not None and offset + length > self.free_bytes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.fallocated.append((offset, length))
        type(self.real).fallocate(self.real, fd, offset, length)


def test_aio_refused_then_direct_refused_goes_through_the_page_cache(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = FakeKernel(monkeypatch)
    kernel.submit_error = errno.EINVAL
    real_pwrite = os.pwrite
    refused: list[int] = []

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    data = random.Random(5).randbytes(3 * CHUNK + 1)
    with AtomicWriter(folder / "f.dcm", direct=True) as writer:
        writer.write(data)
        writer.commit()
    assert kernel.submitted == 1  # AIO tried once, then synchronous writes
    assert refused == [0]  # a direct write tried once, then the page cache
    assert (folder / "f.dcm").read_bytes() == data


def test_a_short_completion_is_finished_in_place(folder: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = FakeKernel(monkeypatch)
    kernel.event_result = lambda res, fd: res // 2  # the device took half of each chunk
    data = random.Random(6).randbytes(4 * CHUNK + 100)
    with AtomicWriter(folder / "s.dcm", direct=True) as writer:
        writer.write(data)
        writer.commit()
    assert (folder / "s.dcm").read_bytes() == data


def test_a_nearly_full_disk_still_takes_an_object_that_fits(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fallocate reserves ahead in steps of 4 MiB and more, a guess at what is to
    come; where the step does not fit, only what each write needs is reserved."""
    kernel = FakeKernel(monkeypatch)
    kernel.free_bytes = 3 * CHUNK
    data = random.Random(9).randbytes(2 * CHUNK + CHUNK // 2)
    with AtomicWriter(folder / "n.dcm", direct=True) as writer:
        writer.write(data)
        writer.commit()
    assert (folder / "n.dcm").read_bytes() == data
    assert kernel.fallocated == [(0, CHUNK), (CHUNK, CHUNK)]  # then the page cache's tail


@pytest.mark.parametrize(("free", "reserved"), [
    (0, []),  # a full disk: the first reservation fails
    (2 * CHUNK, [(0, CHUNK), (CHUNK, CHUNK)]),  # room for two of the three chunks
], ids=["full", "too-small"])
def test_an_object_larger_than_the_free_space_is_out_of_resources(
        folder: Path, monkeypatch: pytest.MonkeyPatch, free: int,
        reserved: list[tuple[int, int]]) -> None:
    kernel = FakeKernel(monkeypatch)
    kernel.free_bytes = free
    writer = AtomicWriter(folder / "o.dcm", direct=True)
    with pytest.raises(StorageError) as caught:
        writer.write(bytes(3 * CHUNK))
    assert caught.value.out_of_resources
    writer.abort()
    assert list(folder.iterdir()) == []
    assert kernel.fallocated == reserved


def test_a_failed_completion_reaches_the_commit(folder: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = FakeKernel(monkeypatch)
    kernel.event_result = lambda res, fd: -errno.EIO
    writer = AtomicWriter(folder / "h.dcm", direct=True)
    writer.write(bytes(CHUNK))  # one chunk with the disk; it fails there
    with pytest.raises(StorageError, match="Input/output error"):
        writer.commit()
    assert list(folder.iterdir()) == []
    assert not (folder / "h.dcm").exists()


def test_a_failed_completion_stops_later_writes(folder: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = FakeKernel(monkeypatch)
    kernel.event_result = lambda res, fd: -errno.ENOSPC
    writer = AtomicWriter(folder / "j.dcm", direct=True)
    with pytest.raises(StorageError) as caught:
        for _ in range(8):  # back-pressure collects the failure on the way
            writer.write(bytes(CHUNK))
    assert caught.value.out_of_resources
    writer.abort()
    assert list(folder.iterdir()) == []


def test_without_fallocate_the_writes_still_land(folder: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    FakeKernel(monkeypatch).fallocate_error = errno.EOPNOTSUPP
    data = random.Random(7).randbytes(2 * CHUNK + 5)
    with AtomicWriter(folder / "k.dcm", direct=True) as writer:
        writer.write(data)
        writer.commit()
    assert (folder / "k.dcm").read_bytes() == data


def test_the_reserved_space_is_given_back(folder: Path) -> None:
    data = random.Random(8).randbytes(CHUNK + CHUNK // 2)
    with AtomicWriter(folder / "m.dcm", direct=True) as writer:
        writer.write(data)
        writer.commit()
    path = folder / "m.dcm"
    assert path.stat().st_size == len(data)
    assert path.stat().st_blocks * 512 < len(data) + 64 * 1024  # fallocate's extra freed


def test_buffers_return_to_the_pool(folder: Path) -> None:
    direct_module._aligned_free.clear()
    with AtomicWriter(folder / "i.dcm", direct=True) as writer:
        writer.write(bytes(3 * CHUNK + 1))
        writer.commit()
    idle = direct_module._aligned_free[CHUNK + SLACK]
    assert 1 <= len(idle) <= direct_module.IN_FLIGHT + 1
    assert all(len(buffer) == 0 for buffer in idle)


# -- whole objects held in memory: AlignedBuffer + DirectBatch ---------------------


def aligned(data: bytes) -> AlignedBuffer:
    buffer = AlignedBuffer(len(data))
    buffer.append(data[:100])
    buffer.append(data[100:])
    return buffer


def test_an_aligned_buffer_holds_what_was_appended_and_no_more() -> None:
    buffer = AlignedBuffer(10_000)
    assert buffer.capacity == 12_288  # whole blocks
    assert buffer.address % 4096 == 0
    buffer.append(b"abc")
    buffer.append(memoryview(b"defg"))
    assert len(buffer) == 7
    with buffer.view() as view:
        assert bytes(view) == b"abcdefg"
    with pytest.raises(ValueError):
        buffer.append(bytes(12_288 - 6))
    assert len(buffer) == 7
    buffer.close()
    buffer.close()
    with pytest.raises(ValueError):
        buffer.view()


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="Linux's /proc")
def test_an_aligned_buffer_is_private_memory() -> None:
    # Shared anonymous memory (mmap's default for -1) costs more per page first
    # touched; the kernel lists a map's sharing as the 4th letter of its rights.
    # The kernel may merge a private map with a neighbour: the one that holds
    # the buffer is looked for, not one that starts where it does.
    buffer = AlignedBuffer(1 << 20)
    try:
        with open("/proc/self/maps") as maps:
            rights = [fields[1] for fields in map(str.split, maps)
                      if _holds(fields[0], buffer.address, buffer.capacity)]
        assert rights == ["rw-p"]
    finally:
        buffer.close()


def _holds(span: str, address: int, size: int) -> bool:
    """Whether the /proc/self/maps range ``span`` (``start-end``, hex) holds the
    ``size`` bytes at ``address``."""
    start, end = (int(bound, 16) for bound in span.split("-"))
    return start <= address and address + size <= end


def write_batch(folder: Path, objects: list[bytes]) -> tuple[list[Path], list[bool]]:
    """The store thread's way: a round of objects into one batch, then commits."""
    batch = DirectBatch()
    writers, taken = [], []
    for number, data in enumerate(objects):
        writer = AtomicWriter(folder / f"{number}.dcm", unnamed=True)
        took = writer.write_in(batch, aligned(data))
        if not took:
            writer.write(data)
        taken.append(took)
        writers.append(writer)
    failed = batch.finish()
    paths = []
    for writer in writers:
        if writer.fileno() in failed:
            writer.abort()
            continue
        paths.append(writer.commit().path)
    return paths, taken


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 8191, 512 * 1024 + 1234, 1 << 20])
def test_a_batch_writes_exactly_each_object(folder: Path, size: int) -> None:
    objects = [random.Random(size + k).randbytes(size + k % 2) for k in range(5)]
    paths, taken = write_batch(folder, objects)
    # Less than a block has nothing to write directly: the caller writes it.
    assert taken == [len(data) >= 4096 for data in objects]
    assert [p.read_bytes() for p in paths] == objects
    for path, data in zip(paths, objects, strict=True):
        assert path.stat().st_size == len(data)


def test_a_batch_larger_than_its_limit_waits_and_goes_on(folder: Path) -> None:
    objects = [random.Random(k).randbytes(70_000 + k) for k in range(DirectBatch.MAX + 5)]
    paths, taken = write_batch(folder, objects)
    assert all(taken)
    assert [p.read_bytes() for p in paths] == objects


def test_a_batch_that_cannot_leaves_the_file_to_the_caller(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeKernel(monkeypatch).fallocate_error = errno.EOPNOTSUPP  # nothing written
    objects = [random.Random(10).randbytes(300_000)]
    paths, taken = write_batch(folder, objects)
    assert taken == [False]  # written through the page cache instead
    assert [p.read_bytes() for p in paths] == objects  # not padded, not doubled


def test_writes_aio_refuses_are_done_in_place(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """io_submit refused (after fallocate and O_DIRECT): the batch writes those
    objects itself, through the page cache, whole and not padded."""
    FakeKernel(monkeypatch).submit_error = errno.EINVAL
    objects = [random.Random(10 + k).randbytes(300_000 + k) for k in range(3)]
    paths, taken = write_batch(folder, objects)
    assert taken == [True] * 3
    assert [p.read_bytes() for p in paths] == objects
    assert [p.stat().st_size for p in paths] == [len(data) for data in objects]


def test_a_round_is_submitted_with_one_system_call(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = FakeKernel(monkeypatch)
    objects = [random.Random(k).randbytes(200_000 + k) for k in range(5)]
    paths, taken = write_batch(folder, objects)
    assert all(taken) and kernel.submitted == 1
    assert [p.read_bytes() for p in paths] == objects


def test_a_submission_the_kernel_takes_in_part_goes_on(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """io_submit may take fewer control blocks than given (io_submit(2)); the
    rest are submitted again, and every object is written once, whole."""
    kernel = FakeKernel(monkeypatch)
    real_call = kernel.call

    def call(number: int, *args: Any) -> int:
        if number == kernel.real.io_submit and args[1].value > 1:
            args = (args[0], ctypes.c_long(2), *args[2:])  # at most two at a time
        return real_call(number, *args)

    monkeypatch.setattr(kernel.real, "call", call, raising=False)
    objects = [random.Random(k).randbytes(100_000 + k) for k in range(5)]
    paths, taken = write_batch(folder, objects)
    assert all(taken) and kernel.submitted == 3  # 2 + 2 + 1
    assert [p.read_bytes() for p in paths] == objects


def test_a_failed_write_in_a_batch_fails_that_object_only(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = FakeKernel(monkeypatch)
    doomed: list[int] = []
    real_add = DirectBatch.add

    def add(self: DirectBatch, fd: int, buffer: AlignedBuffer) -> bool:
        doomed.append(fd)
        return real_add(self, fd, buffer)

    monkeypatch.setattr(DirectBatch, "add", add)
    kernel.event_result = lambda res, fd: -errno.EIO if fd == doomed[0] else res
    objects = [random.Random(k).randbytes(200_000) for k in range(3)]
    paths, _taken = write_batch(folder, objects)
    assert sorted(p.name for p in paths) == ["1.dcm", "2.dcm"]
    assert [p.read_bytes() for p in sorted(paths)] == objects[1:]
    assert sorted(p.name for p in folder.iterdir()) == ["1.dcm", "2.dcm"]


def test_a_short_write_in_a_batch_is_finished_in_place(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeKernel(monkeypatch).event_result = lambda res, fd: res // 3
    objects = [random.Random(k).randbytes(300_001) for k in range(3)]
    paths, _taken = write_batch(folder, objects)
    assert [p.read_bytes() for p in paths] == objects


def test_aligned_buffers_are_reused_empty() -> None:
    direct_module._aligned_free.clear()
    first = AlignedBuffer.take(100_000)
    first.append(b"x" * 5000)
    first.release()
    again = AlignedBuffer.take(100_000)
    assert again is first and len(again) == 0
    again.release()
    bigger = AlignedBuffer.take(200_000)  # another capacity: a new one
    assert bigger is not first and bigger.capacity >= 200_000
    assert direct_module._aligned_free[first.capacity] == [first]  # kept for its size
    bigger.close()
    bigger.release()  # a closed buffer is not pooled
    assert direct_module._aligned_free[bigger.capacity] == []
    direct_module._aligned_free.clear()
    first.close()


# -- receiving in place (AlignedBuffer.tail, DirectSpool.reserve) -----------------------


def test_bytes_filled_through_the_tail_are_appended_without_a_copy() -> None:
    buffer = AlignedBuffer(8192)
    buffer.append(b"head")
    tail = buffer.tail(100)
    assert tail is not None and len(tail) == 100
    tail[:5] = b"12345"  # as a socket read would
    filled = tail[:5]
    copies: list[int] = []
    real_view = buffer._view
    assert real_view is not None
    inner: memoryview = real_view

    class Watch:  # any slice assignment into the buffer would be a copy
        def __getitem__(self, key: Any) -> Any:
            return inner[key]

        def __setitem__(self, key: Any, value: Any) -> None:
            copies.append(len(value))
            inner[key] = value

    buffer._view = Watch()  # type: ignore[assignment]
    buffer.append(filled)
    assert copies == []
    buffer.append(b"67")  # bytes from elsewhere are copied
    assert copies == [2]
    buffer._view = real_view
    with buffer.view() as view:
        assert bytes(view) == b"head1234567"
    filled.release()
    tail.release()
    buffer.close()


def test_the_tail_is_bounded_by_the_free_space_and_by_most() -> None:
    buffer = AlignedBuffer(4096)
    first = buffer.tail(10_000)
    assert first is not None and len(first) == 4096
    first.release()
    buffer.append(bytes(4000))
    second = buffer.tail(1000)
    assert second is not None and len(second) == 96
    second.release()
    buffer.append(bytes(96))
    assert buffer.tail(1) is None  # full
    buffer.close()
    assert buffer.tail(1) is None  # closed


def test_a_buffer_closed_while_a_view_of_its_tail_lives_does_not_fail() -> None:
    buffer = AlignedBuffer(4096)
    tail = buffer.tail(10)
    buffer.close()  # the map goes when the last view does
    assert tail is not None and len(tail) == 10
    tail.release()


@pytest.mark.parametrize("size", [CHUNK - 100, 3 * CHUNK + 12_345])
def test_a_spool_received_in_place_holds_exactly_the_bytes(folder: Path, size: int) -> None:
    """Bytes written into reserve()'s memory and then passed to write() as that
    view land in the file once, in order, mixed with bytes copied from elsewhere."""
    data = random.Random(size).randbytes(size)
    path = folder / "in-place"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    rng = random.Random(7)
    in_place = 0
    try:
        spool = DirectSpool.open(fd)
        assert spool is not None
        at = 0
        while at < size:
            most = min(rng.choice((1, 16_384, 70_000, CHUNK)), size - at)
            if rng.random() < 0.7:
                target = spool.reserve(most)
                assert target is not None
                count = len(target)
                target[:] = data[at:at + count]
                with target[:count] as filled:
                    spool.write(filled)
                target.release()
                in_place += count
            else:
                count = most
                spool.write(data[at:at + count])
            at += count
        spool.finish()
    finally:
        os.close(fd)
    assert path.read_bytes() == data
    assert in_place > size // 2


def test_taking_a_buffer_from_an_empty_pool_raises_nothing_inside() -> None:
    """An empty pool is looked at, not popped: an IndexError raised and caught
    per received image cost the event loop an exception object each time
    (gdb on _PyErr_SetObject, session 29)."""
    import sys
    import types

    capacity = 3 * 4096 * 7  # a capacity no other test pools
    direct_module._aligned_free.pop(capacity, None)
    events: list[tuple[str, str]] = []

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event.startswith("c_"):
            events.append((event, getattr(arg, "__name__", "?")))

    sys.setprofile(profile)
    try:
        buffer = AlignedBuffer.take(capacity)
    finally:
        sys.setprofile(None)
    try:
        assert ("c_exception", "pop") not in events
        assert buffer.capacity == capacity and buffer.size == 0
    finally:
        buffer.close()


def test_adding_to_a_batch_calls_no_generator_and_no_len(folder: Path) -> None:
    """The store thread adds every aligned image to a batch: its size read as an
    attribute, the queued descriptors looked through in a loop (a generator in
    ``any()`` was ~5 Python calls per image with a round of a few)."""
    from tests.aio.test_receive_path_calls import python_calls

    batch = DirectBatch()
    buffers, fds = [], []
    try:
        for k in range(4):
            buffer = AlignedBuffer.take(1 << 20)
            buffer.append(bytes([k]) * 70_000)
            buffers.append(buffer)
            fds.append(os.open(folder / f"{k}.bin", os.O_WRONLY | os.O_CREAT, 0o600))
        for fd, buffer in zip(fds[:3], buffers[:3], strict=True):
            assert batch.add(fd, buffer)
        results: list[bool] = []
        seen = python_calls(lambda: results.extend(
            (batch.add(fds[3], buffers[3]),
             batch.add(fds[0], buffers[0]))))  # already queued: refused
        added, again = results
        assert added and not again
        assert not [name for name in seen if "genexpr" in name or "__len__" in name], seen
        batch.submit()
        assert batch.finish() == {}
        for k, fd in enumerate(fds):
            os.close(fd)
            assert (folder / f"{k}.bin").read_bytes() == bytes([k]) * 70_000
        fds.clear()
    finally:
        for fd in fds:
            os.close(fd)
        for buffer in buffers:
            buffer.close()


def test_direct_io_is_turned_off_without_an_argument_to_parse(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CPython's fcntl tries an int third argument as a buffer first, raising and
    dropping a TypeError (~3,500 instructions under callgrind): turning
    O_DIRECT off, once per image, passes none (fcntl then passes 0)."""
    calls: list[tuple[object, ...]] = []
    real = fcntl.fcntl

    def spy(*args: Any) -> Any:
        calls.append(args[1:])
        return real(*args)

    monkeypatch.setattr(fcntl, "fcntl", spy)  # the module direct uses
    fd = os.open(folder / "x.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        direct_module._set_direct(fd, True)
        assert real(fd, fcntl.F_GETFL) & os.O_DIRECT
        direct_module._set_direct(fd, False)
        assert not real(fd, fcntl.F_GETFL) & os.O_DIRECT
    finally:
        os.close(fd)
    assert calls == [(fcntl.F_SETFL, os.O_DIRECT), (fcntl.F_SETFL,)]
