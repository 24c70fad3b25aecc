"""A storage server on a file system that really fills up (a small tmpfs mounted
for the test): every path to disk answers 0xA700 "Refused: Out of Resources"
(PS3.4 B.2.3) when there is no room, leaves no temporary file and no index row,
and stores again once room is made; an object that fits is not refused for
the space fallocate would have liked to reserve ahead.

Mounting needs root (CAP_SYS_ADMIN); where the mount is refused the tests skip
and say so. The unit tests of the same paths (tests/storage/test_direct.py,
test_files.py) fake the errors instead and run everywhere.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
from pathlib import Path

import pytest

from dicomnet.services.storage import INDEX_NAME, StorageSCP
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.part10 import read_part10
from tests.storage.dicomfiles import uid
from tests.storage.helpers import (
    fill_disk,
    one_per_path,
    same_dataset,
    send_batches,
    temporary_files,
)

OUT_OF_RESOURCES = 0xA700
MIB = 1 << 20


def _stored(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.dcm"))


def _instances(root: Path) -> int:
    """Rows in the index, read without writing (the disk may be full)."""
    db = sqlite3.connect(f"file:{root / INDEX_NAME}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM instance").fetchone()[0])
    finally:
        db.close()


def test_a_full_disk_refuses_every_path_then_stores_once_room_is_made(
        tmp_path: Path, small_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    sources = one_per_path(tmp_path / "in")
    root = small_fs / "store"
    filler = small_fs / "filler"

    left: list[object] = []

    def between(batch: int) -> None:
        if batch == 0:
            fill_disk(filler)  # the disk fills while the server runs
            return
        # What the refusals left: no file, no temporary one, no index row.
        left.extend([_stored(root), temporary_files(root), _instances(root)])
        filler.unlink()

    refused, stored = send_batches(StorageSCP(root), list(sources.values()),
                                   list(sources.values()), between=between)
    assert [(r.path.stem, r.status) for r in refused] == [
        (name, OUT_OF_RESOURCES) for name in sources]
    # The peer is told why, not where; the log says where.
    assert [r.error for r in refused] == ["cannot store: No space left on device"] * len(sources)
    # One line per refused object, whatever the path to disk (a spilled one
    # was logged twice, and none said the status or who sent it).
    lines = [r for r in caplog.records if r.name == "dicomnet.services"
             and r.levelno >= logging.WARNING]
    assert len(lines) == len(sources), [r.getMessage() for r in lines]
    assert {r.levelno for r in lines} == {logging.ERROR}
    for i in range(len(sources)):  # each names its object, sender, status, where it went
        (message,) = [r.getMessage() for r in lines
                      if r.getMessage().startswith(f"C-STORE {uid(9, i)} from ")]
        assert re.match(rf"C-STORE {uid(9, i)} from DICOMNET@127\.0\.0\.1:\d+ refused, "
                        r"status 0xA700: ", message), message
        assert "No space left on device" in message and str(root) in message
        assert "/proc/self" not in message
    assert left == [[], [], 0]
    assert all(r.ok for r in stored), [r.error for r in stored]
    files = _stored(root)
    assert len(files) == len(sources)
    for i, (name, source) in enumerate(sources.items()):
        path = root / uid(1, i) / uid(2, i) / f"{uid(9, i)}.dcm"
        assert same_dataset(path, source), name
    assert temporary_files(root) == []
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.count()["instances"] == len(sources)


def test_a_streamed_object_that_fits_is_not_refused_for_the_reservation_ahead(
        tmp_path: Path, small_fs: Path) -> None:
    """2.4 MB arrives streamed to a direct file, which reserves the disk ahead
    in steps of 4 MiB or more; with 3 MiB free the step cannot be had, the
    object still fits, and it is stored."""
    source = one_per_path(tmp_path / "in")["spilled"]
    root = small_fs / "store"
    ((result,),) = send_batches(StorageSCP(root), [source],
                                between=lambda _: fill_disk(small_fs / "filler", leave=3 * MIB))
    assert result.ok, result.error
    (path,) = _stored(root)
    assert same_dataset(path, source)
    assert path.stat().st_size == source.stat().st_size - read_part10(source).dataset_offset \
        + read_part10(path).dataset_offset
    with contextlib.suppress(FileNotFoundError):
        assert temporary_files(root) == []
