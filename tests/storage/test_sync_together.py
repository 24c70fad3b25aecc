"""A round of in-memory data sets made durable with one syncfs (storage.syncfs:
sync_together), and every case where the store thread must fsync file by file
instead: one object, syncfs failing, much dirty data, two file systems, a flush
failing. In each case every object is stored whole under its final name."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.dimse.messages import CStoreRQ
from dicomnet.services.storage import StorageSCP
from dicomnet.services.store_jobs import Job
from dicomnet.services.store_sink import SPILL_THRESHOLD
from dicomnet.storage import AtomicWriter, sync_together
from dicomnet.storage import syncfs as syncfs_module
from dicomnet.storage.direct import AlignedBuffer
from dicomnet.storage.part10 import part10_header

from .helpers import data_set_bytes, make_dataset, sender

TS = str(ExplicitVRLittleEndian)
UID_ROOT = "1.2.826.0.1.3680043.8.498.77."

pytestmark = pytest.mark.skipif(syncfs_module._syncfs is None, reason="Linux only")


class Calls:
    """What the store thread asked of the kernel: syncfs calls, fsyncs of files
    and of folders."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, syncfs_result: int | None = None,
                 watch: Path | None = None) -> None:
        self.syncfs = 0
        #: Files under ``watch`` that had a name when syncfs was called.
        self.named_at_syncfs: list[Path] = []
        self.file_fsyncs = 0
        self.folder_fsyncs = 0
        real_fsync, real_syncfs = os.fsync, syncfs_module._syncfs
        assert real_syncfs is not None

        def fsync(fd: int) -> None:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                self.folder_fsyncs += 1
            else:
                self.file_fsyncs += 1
            real_fsync(fd)

        def syncfs(fd: int) -> int:
            self.syncfs += 1
            if watch is not None:
                self.named_at_syncfs += [p for p in watch.rglob("*") if p.is_file()]
            if syncfs_result is not None:
                ctypes.set_errno(errno.EIO)
                return syncfs_result
            return real_syncfs(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(syncfs_module, "_syncfs", syncfs)
        # The machine's own dirty memory must not decide (see the test about it).
        monkeypatch.setattr(syncfs_module, "_dirty_bytes", lambda: 0)


def jobs(count: int, *, first: int = 1, aligned: bool = False) -> Iterator[tuple[Job, bytes]]:
    """``count`` data sets as the SCP's event loop hands them over; ``aligned``:
    200 KB images in page-aligned buffers, which the store thread writes with
    O_DIRECT where the file system allows it."""
    for number in range(first - 1, first - 1 + count):
        uid = f"{UID_ROOT}{number + 1}"
        ds = make_dataset(sop_instance_uid=uid)
        if aligned:
            ds.Rows, ds.Columns = 400, 500
            ds.PixelData = bytes(range(256)) * 781 + bytes(number % 256 for _ in range(64))
        header = part10_header(sop_class_uid=str(ds.SOPClassUID), sop_instance_uid=uid,
                               transfer_syntax_uid=TS, implementation_class_uid="1.2.3",
                               implementation_version_name="TEST", source_ae_title="SCU")
        data = header + data_set_bytes(ds, TS)
        message = CStoreRQ(message_id=number + 1, affected_sop_class_uid=str(ds.SOPClassUID),
                           affected_sop_instance_uid=uid)
        buffer: bytearray | AlignedBuffer = bytearray(data)
        if aligned:
            buffer = AlignedBuffer.take(SPILL_THRESHOLD)
            buffer.append(data)
        yield Job(buffer, message, TS, sender()), data


def commit_round(root: Path, count: int) -> None:
    """One round of ``count`` objects through the store thread's code; every one
    must be stored, byte for byte, and nothing else left in the folder."""
    scp = StorageSCP(root, index=False)
    try:
        made = list(jobs(count))
        answers = scp._finish_round(scp._start_round([job for job, _ in made]))
        assert not [a for a in answers if isinstance(a, BaseException)]
        stored = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in root.rglob("*") if p.is_file()}
        assert sorted(stored.values()) == sorted(
            hashlib.sha256(data).hexdigest() for _, data in made)
    finally:
        scp.close()


def test_a_round_is_made_durable_with_one_syncfs(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch, watch=tmp_path)
    commit_round(tmp_path, 5)
    assert calls.syncfs == 1
    assert calls.file_fsyncs == 0
    assert calls.folder_fsyncs >= 1  # the names: the series folder, once
    # Bytes and inodes durable first, names after (as with fsync, AtomicWriter.commit).
    assert calls.named_at_syncfs == []


def digests(root: Path) -> dict[Path, str]:
    """Every named file under ``root`` (the index is off) and its SHA-256."""
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*")
            if p.is_file()}


def test_overlapped_rounds_name_only_their_own_files(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The store thread is pipelined (BatchWorker.pipelined): round B's writes
    start before round A is finished. A's finish names A's files only, after its
    syncfs; B's get no name until B's own finish, after B's syncfs."""
    calls = Calls(monkeypatch, watch=tmp_path)
    scp = StorageSCP(tmp_path, index=False)
    try:
        round_a, round_b = list(jobs(3, aligned=True)), list(jobs(3, first=4, aligned=True))
        started_a = scp._start_round([job for job, _ in round_a])
        started_b = scp._start_round([job for job, _ in round_b])
        assert digests(tmp_path) == {}  # written, not named
        answers = scp._finish_round(started_a)
        assert not [a for a in answers if isinstance(a, BaseException)]
        named_a = digests(tmp_path)
        assert sorted(named_a.values()) == sorted(
            hashlib.sha256(data).hexdigest() for _, data in round_a)
        assert calls.syncfs == 1 and calls.named_at_syncfs == []
        answers = scp._finish_round(started_b)
        assert not [a for a in answers if isinstance(a, BaseException)]
        assert sorted(digests(tmp_path).values()) == sorted(
            hashlib.sha256(data).hexdigest() for _, data in round_a + round_b)
        # B's syncfs came before any of B's names: only A's were there.
        assert calls.syncfs == 2 and sorted(calls.named_at_syncfs) == sorted(named_a)
        assert calls.file_fsyncs == 0
    finally:
        scp.close()


def test_a_single_object_is_fsynced_on_its_own(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch)
    commit_round(tmp_path, 1)
    assert (calls.syncfs, calls.file_fsyncs) == (0, 1)


def test_a_failing_syncfs_falls_back_to_fsyncs(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch, syncfs_result=-1)
    commit_round(tmp_path, 4)
    assert (calls.syncfs, calls.file_fsyncs) == (1, 4)


def test_much_dirty_data_means_file_by_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """syncfs would wait for every dirty page of the file system, whoever wrote it."""
    calls = Calls(monkeypatch)
    monkeypatch.setattr(syncfs_module, "_dirty_bytes",
                        lambda: syncfs_module.SYNCFS_DIRTY_LIMIT + 1)
    commit_round(tmp_path, 4)
    assert (calls.syncfs, calls.file_fsyncs) == (0, 4)


def test_dirty_bytes_are_read_from_meminfo() -> None:
    dirty = syncfs_module._dirty_bytes()
    assert dirty is not None and dirty >= 0


def writers(root: Path, count: int) -> list[AtomicWriter]:
    made = []
    for number in range(count):
        writer = AtomicWriter(root / f"f{number}", unnamed=True)
        writer.write(b"x" * 100)
        made.append(writer)
    return made


def test_writers_on_two_file_systems_are_not_synced_together(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch)
    # One folder is on one file system: the two writers are in two folders.
    pair = writers(tmp_path / "a", 1) + writers(tmp_path / "b", 1)
    devices = iter([1, 2])
    monkeypatch.setattr(syncfs_module, "_device", lambda fd: next(devices))
    assert not sync_together(pair)
    assert calls.syncfs == 0
    for writer in pair:
        writer.commit()  # as usual: fsynced one by one
    assert calls.file_fsyncs == 2
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/*")) == [
        "a/f0", "b/f0"]


def test_one_fstat_per_folder_not_per_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A file made in a folder is on that folder's file system: the round's files
    are checked for one file system with one fstat per folder (a system call on
    the store thread, which hands the GIL to the event loop)."""
    calls = Calls(monkeypatch)
    a, b = writers(tmp_path / "a", 3), writers(tmp_path / "b", 2)
    made = [a[0], b[0], a[1], b[1], a[2]]
    asked: list[int] = []
    real = syncfs_module._device

    def device(fd: int) -> int:
        asked.append(fd)
        return real(fd)

    monkeypatch.setattr(syncfs_module, "_device", device)
    assert sync_together(made)
    assert calls.syncfs == 1
    assert asked == [a[0].fileno(), b[0].fileno()]
    for writer in made:
        writer.commit(synced=True)


def test_a_flush_that_fails_means_no_syncfs(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A direct writer's writes in flight failing (only such a writer has any
    left to finish: the others' flush is not even called): no syncfs."""
    calls = Calls(monkeypatch)
    pair = writers(tmp_path, 2)

    class FailingSpool:
        def finish(self) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        def cancel(self) -> None:
            pass

    monkeypatch.setattr(pair[1], "_spool", FailingSpool())
    assert not sync_together(pair)
    assert calls.syncfs == 0
    for writer in pair:
        writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_dirty_bytes_cost_a_few_calls_not_one_per_meminfo_line() -> None:
    """Read once per store-thread round: the two values are found in one pass over
    /proc/meminfo's ~50 lines, not with a call per line."""
    events: list[str] = []

    def profile(frame: object, event: str, arg: object) -> None:
        if event in ("call", "c_call"):
            events.append(event)

    sys.setprofile(profile)
    try:
        dirty = syncfs_module._dirty_bytes()
    finally:
        sys.setprofile(None)
    assert dirty is not None and dirty >= 0
    assert len(events) <= 12, len(events)


@pytest.mark.parametrize(("text", "expected"), [
    (b"MemTotal: 8 kB\nDirty:  3 kB\nWriteback:   5 kB\nWritebackTmp: 7 kB\n", 8 << 10),
    (b"Dirty: 3 kB\nWriteback: 5 kB\n", 8 << 10),
    (b"MemTotal: 8 kB\nDirty: 3 kB\nWritebackTmp: 7 kB\n", None),
    (b"", None),
])
def test_dirty_bytes_add_dirty_and_writeback(text: bytes, expected: int | None,
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_bytes(text)
    monkeypatch.setattr(syncfs_module, "_MEMINFO", str(meminfo))
    assert syncfs_module._dirty_bytes() == expected
