"""The free-space reserve (storage.space, ``StorageSCP(min_free=...)``): objects
that would leave less than the reserve free are refused with 0xA700 (PS3.4
B.2.3) on every path to disk, nothing of them stays, and the store goes on once
room is made. The end-to-end tests fill a small tmpfs for real (root only, as
test_full_disk.py); one streamed object on the ordinary file system has its
free space read through a stand-in, to reach the checks made while it grows."""

from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.errors import ConfigurationError, StorageError
from dicomnet.services.storage import INDEX_NAME, FreeSpace, StorageSCP
from dicomnet.storage.files import AtomicWriter
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.space import SpaceReserve, size_words
from tests.storage import helpers
from tests.storage.dicomfiles import make_image, uid, write_part10

OUT_OF_RESOURCES = 0xA700
MIB = 1 << 20
COMMENT = "cannot store: disk space down to the store's reserve"


@pytest.mark.parametrize(("text", "expected"), [
    ("0", FreeSpace()), ("1048576", FreeSpace(size=MIB)), ("500MB", FreeSpace(size=500_000_000)),
    ("5GiB", FreeSpace(size=5 << 30)), ("2g", FreeSpace(size=2_000_000_000)),
    ("1.5 KiB", FreeSpace(size=1536)), ("10%", FreeSpace(percent=10)),
    ("0.5%", FreeSpace(percent=0.5)), ("100%", FreeSpace(percent=100)),
])
def test_a_reserve_is_a_size_or_a_percentage(text: str, expected: FreeSpace) -> None:
    assert FreeSpace.parse(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "5 parsecs", "101%", "1e9", "%", "GiB", "1,5G"])
def test_what_is_no_reserve_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"not a size|at most 100%"):
        FreeSpace.parse(text)


def test_a_reserve_says_itself_and_its_bytes() -> None:
    assert not FreeSpace() and FreeSpace(size=1) and FreeSpace(percent=1)
    assert (str(FreeSpace(percent=1)), str(FreeSpace(size=5 << 30))) == ("1%", "5.0 GiB")
    assert FreeSpace(percent=10).bytes_of(1000) == 100
    assert FreeSpace(size=7).bytes_of(1000) == 7
    assert [size_words(n) for n in (0, 1023, 1536, 3 * MIB)] == [
        "0 bytes", "1023 bytes", "1.5 KiB", "3.0 MiB"]
    with pytest.raises(ConfigurationError):
        FreeSpace(size=1, percent=1)
    with pytest.raises(ConfigurationError):
        FreeSpace(size=-1)


def test_a_reserve_of_a_folder_not_made_yet_is_its_parent_file_system(tmp_path: Path) -> None:
    stat = os.statvfs(tmp_path)
    reserve = SpaceReserve(str(tmp_path / "not" / "yet"), FreeSpace(percent=50))
    assert reserve.minimum == stat.f_blocks * stat.f_frsize // 2
    assert reserve.available() is None  # the folder is not there: the write says why


def test_the_refusal_is_out_of_resources_and_tells_the_peer_no_path(tmp_path: Path) -> None:
    reserve = SpaceReserve(str(tmp_path), FreeSpace(percent=100))
    with pytest.raises(StorageError) as caught:
        reserve.check()
    error = caught.value
    assert error.errno == errno.ENOSPC and error.out_of_resources
    assert f"cannot store: {error.reason}" == COMMENT and len(COMMENT) <= 64
    assert str(tmp_path) in str(error) and "kept free (min_free 100%)" in str(error)
    SpaceReserve(str(tmp_path), FreeSpace(size=1)).check(incoming=1)  # room enough


def test_under_the_reserve_every_path_is_refused_then_stores_once_room_is_made(
        tmp_path: Path, small_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    sources = helpers.one_per_path(tmp_path / "in")
    root = small_fs / "store"
    filler = small_fs / "filler"
    left: list[object] = []

    def between(batch: int) -> None:
        if batch == 0:
            helpers.fill_disk(filler, leave=MIB // 2)  # under the 1 MiB kept free, not full
            return
        left.extend([sorted(root.rglob("*.dcm")), helpers.temporary_files(root)])
        filler.unlink()

    refused, stored = helpers.send_batches(StorageSCP(root, min_free="1MiB"),
                                           list(sources.values()), list(sources.values()),
                                           between=between)
    assert [(r.path.stem, r.status, r.error) for r in refused] == [
        (name, OUT_OF_RESOURCES, COMMENT) for name in sources]
    lines = [r.getMessage() for r in caplog.records if r.name == "dicomnet.services"
             and r.levelno >= logging.WARNING]
    assert len(lines) == len(sources), lines
    for message in lines:
        assert re.match(r"C-STORE \S+ from DICOMNET@127\.0\.0\.1:\d+ refused, status 0xA700: "
                        rf"no room for .* in {re.escape(str(root))}: .* free, and 1\.0 MiB kept "
                        r"free \(min_free 1\.0 MiB\)$", message), message
    assert left == [[], []]
    assert all(r.ok for r in stored), [r.error for r in stored]
    for i, (name, source) in enumerate(sources.items()):
        stored_file = root / uid(1, i) / uid(2, i) / f"{uid(9, i)}.dcm"
        assert helpers.same_dataset(stored_file, source), name
    assert helpers.temporary_files(root) == []
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.count()["instances"] == len(sources)


def test_a_streamed_object_that_would_cross_the_reserve_is_refused_and_removed(
        tmp_path: Path, small_fs: Path) -> None:
    """4 MiB free, 2 MiB kept: the 2.4 MB object would leave 1.6 MiB. Its bytes
    were written (tmpfs has no O_DIRECT: the page cache, no reservation ahead),
    so the check before its name refuses it and its space comes back; a small
    object sent after it is stored."""
    sources = helpers.one_per_path(tmp_path / "in")
    root = small_fs / "store"
    # The small one on an association of its own: sent beside the large one, it
    # may be written while the large one's bytes are still there (and refused).
    ((big,), (small,)) = helpers.send_batches(
        StorageSCP(root, min_free=FreeSpace(size=2 * MIB)), [sources["spilled"]],
        [sources["small"]],
        between=lambda n: None if n else helpers.fill_disk(small_fs / "filler", leave=4 * MIB))
    assert (big.status, big.error) == (OUT_OF_RESOURCES, COMMENT)
    assert small.ok, small.error
    assert [p.name for p in root.rglob("*.dcm")] == [f"{uid(9, 0)}.dcm"]
    assert helpers.temporary_files(root) == []
    stat = os.statvfs(small_fs)
    assert stat.f_bavail * stat.f_frsize > 3 * MIB  # the refused object's bytes are gone


def test_a_large_object_is_refused_as_it_grows_past_the_reserve(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the ordinary file system (direct writes where it can), with the free
    space read through a stand-in that falls under the reserve at the object's
    second check (CHECK_EVERY bytes after it spilled): refused there, the rest of
    its data set dropped, its temporary file removed; the next object stored."""
    monkeypatch.setattr("dicomnet.services.store_sink.CHECK_EVERY", 4 * MIB)
    big = write_part10(tmp_path / "in" / "big.dcm", make_image(1, rows=3000, columns=4000),
                       str(ExplicitVRLittleEndian))  # 12 MB: a check at the spill, then every 4 MiB
    small = write_part10(tmp_path / "in" / "small.dcm", make_image(2, rows=50, columns=100),
                         str(ExplicitVRLittleEndian))
    readings: list[int] = []
    real = SpaceReserve.available

    def available(self: SpaceReserve) -> int | None:
        readings.append(len(readings))
        free = real(self)
        # The second reading is the big object's, 4 MiB past its spill; every
        # other has room.
        return self.minimum - 1 if len(readings) == 2 else free

    monkeypatch.setattr(SpaceReserve, "available", available)
    aborted: list[int] = []  # bytes each aborted temporary file had
    abort = AtomicWriter.abort

    def recording_abort(self: AtomicWriter) -> None:
        aborted.append(self.size)
        abort(self)

    monkeypatch.setattr(AtomicWriter, "abort", recording_abort)
    root = tmp_path / "store"
    scp = StorageSCP(root, min_free="1MiB")
    readings.clear()  # the one at the start (warn_if_short)
    ((refused, stored),) = helpers.send_batches(scp, [big, small])
    assert (refused.status, refused.error) == (OUT_OF_RESOURCES, COMMENT)
    assert stored.ok, stored.error
    assert [p.name for p in root.rglob("*.dcm")] == [f"{uid(9, 2)}.dcm"]
    assert helpers.temporary_files(root) == []
    assert len(readings) == 3  # at the spill, 4 MiB on (refused: no more), the small one
    # Refused as it grew, not once whole: the spill (up to 1 MiB), 4 MiB, then
    # the check after the PDV that crossed them (up to 1 MiB): 4-6 MiB of 12 MB.
    assert len(aborted) == 1 and 4 * MIB <= aborted[0] <= 6 * MIB, aborted


def test_no_reserve_reads_no_free_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def available(self: SpaceReserve) -> int | None:
        raise AssertionError("read without a reserve")

    monkeypatch.setattr(SpaceReserve, "available", available)
    source = helpers.one_per_path(tmp_path / "in")["image"]
    ((result,),) = helpers.send_batches(StorageSCP(tmp_path / "store", min_free=0), [source])
    assert result.ok, result.error
