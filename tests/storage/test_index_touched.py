"""An index file whose time moved while its contents stayed the same (an
operator's ``touch``, a tool setting times back) is not a copy over it.

The index took any change of its file's size or time outside its own commits,
not explained as another program's checkpoint, for a copy: it dropped its log
unread and wrote no more. A fresh store's index file is one page until its
first checkpoint (1000 pages of log), so its whole log, the schema with it,
went: the file read 'no such table: instance' until reindex. Its contents the
same bytes as at the last look, the log still fits the file, whatever changed
its time."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage.index import NewInstance, StorageIndex
from tests.storage.dicomfiles import make_image
from tests.storage.helpers import copy_file, index_rows, indexed_uids


@pytest.mark.parametrize("how", ["touch", "cp-of-itself"])
def test_an_index_file_touched_keeps_its_log_and_is_written_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str) -> None:
    rows = index_rows(tmp_path / "files", 6)
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[:3]) == 3
        before = path.stat()
        if how == "touch":
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        else:  # the same bytes written over it (cp of a copy made just before)
            copy_file(path, tmp_path / "same.sqlite")
            copy_file(tmp_path / "same.sqlite", path)
        assert path.stat().st_mtime_ns != before.st_mtime_ns
        assert index.add_instances(rows[3:]) == 3
        assert index.remove_instance(str(make_image(1).SOPInstanceUID))
        assert index.count()["instances"] == 5
    assert indexed_uids(path) == sorted(
        str(make_image(n).SOPInstanceUID) for n in range(2, 7))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_copy_of_other_contents_over_a_fresh_index_is_still_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The same size, other bytes (a fresh index's page, written by another
    program): a copy, as before."""
    rows = index_rows(tmp_path / "files", 4)
    path = tmp_path / INDEX_NAME
    other = tmp_path / "other.sqlite"
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[:2]) == 2
        db = sqlite3.connect(other)
        db.execute(f"PRAGMA page_size={path.stat().st_size}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA user_version=7")  # page 1 other than the index's
        db.close()
        assert other.stat().st_size == path.stat().st_size
        copy_file(other, path)
        assert index.add_instances(rows[2:]) == 0
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (7,)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors[0].startswith(f"index {path} was overwritten while in use (the same file, ")


def _rows(first: int, last: int) -> list[NewInstance]:
    """Rows of images ``first`` to ``last``, their files not written (cheap, many)."""
    return [NewInstance(make_image(n), relative_path=f"{n}.dcm",
                        transfer_syntax_uid=str(ExplicitVRLittleEndian), size=1000,
                        calling_ae="PEER", peer_fingerprint=None)
            for n in range(first, last + 1)]


@pytest.mark.parametrize("since", ["open", "own-checkpoints"])
def test_a_large_index_file_touched_keeps_its_log_and_is_written_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, since: str) -> None:
    """Over 1 MiB, the file's digest was not noted (a read of the whole file per
    checkpoint): touched with rows in its log, none checkpointed, it was taken for
    a copy, its log dropped, the rows since stored written no more. Touched after
    its own checkpoints too (its pages' digests noted again, its log restarted)."""
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index:
        assert index.add_instances(_rows(1, 2500)) == 2500
    assert path.stat().st_size > 1 << 20  # all checkpointed at close
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        if since == "own-checkpoints":
            index._db.execute("PRAGMA wal_autocheckpoint=1")  # each commit checkpoints
            for n in range(2506, 2606, 20):
                assert index.add_instances(_rows(n, n + 19)) == 20
            index._db.execute("PRAGMA wal_autocheckpoint=0")
        assert index.add_instances(_rows(2501, 2503)) == 3  # in the log only
        before = path.stat()
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        assert index.add_instances(_rows(2504, 2505)) == 2
        wanted = 2505 if since == "open" else 2605
        assert index.count()["instances"] == wanted
    assert len(indexed_uids(path)) == wanted
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_an_older_copy_of_a_large_index_over_it_is_a_copy(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A backup of the same index restored over it, older than its last checkpoint:
    most pages as they are, the size too; a copy still."""
    path = tmp_path / INDEX_NAME
    backup = tmp_path / "backup.sqlite"
    with StorageIndex(path) as index:
        assert index.add_instances(_rows(1, 2500)) == 2500
    copy_file(path, backup)
    wanted = indexed_uids(backup)
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.remove_instance(wanted[0])
        index._db.execute("PRAGMA wal_checkpoint")  # our own: its pages noted
        index._db.execute("PRAGMA wal_autocheckpoint=0")
        assert index.remove_instance(wanted[1])  # in the log only
        assert path.stat().st_size == backup.stat().st_size
        # cp by another process: closing a descriptor of the file here would drop
        # this process's POSIX locks on it, SQLite's own (sqlite.org/howtocorrupt.html).
        copy_file(backup, path)
        assert index.add_instances(_rows(2501, 2501)) == 0
    assert indexed_uids(path) == wanted
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and errors[0].startswith(f"index {path} was overwritten while in use"), errors


def test_a_copy_of_the_file_before_another_programs_checkpoint_is_a_copy(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Its bytes as at the last look, but the log, checkpointed by another program
    since, says its frames are in the file: they are not, the log no longer fits it
    (the next write restarts the log, the rows it held lost). A copy, not a touch."""
    rows = index_rows(tmp_path / "files", 5)
    path = tmp_path / INDEX_NAME
    backup = tmp_path / "backup.sqlite"
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[:3]) == 3  # in the log only
        copy_file(path, backup)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            busy, log, done = other.execute("PRAGMA wal_checkpoint").fetchone()
        finally:
            other.close()
        assert busy == 0 and done == log > 0
        copy_file(backup, path)
        assert index.add_instances(rows[3:]) == 0
    # The copy as it was (a fresh index's first page: its schema was in the log).
    assert path.read_bytes() == backup.read_bytes()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and errors[0].startswith(f"index {path} was overwritten while in use"), errors


def test_a_slow_read_of_the_index_at_open_is_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its pages are read whole at open (a second or two for an index near 1 GiB,
    before the server listens): past SLOW_OPEN, one INFO line says so, with the
    size, where the start would otherwise be slow for no reason given."""
    from dicomnet.storage import index_file

    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index:
        assert index.add_instances(index_rows(tmp_path / "files", 3)) == 3
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        with StorageIndex(path):
            pass
        assert not [r for r in caplog.records if "read at open" in r.getMessage()]
        monkeypatch.setattr(index_file, "SLOW_OPEN", 0.0)
        with StorageIndex(path):
            pass
    said = [r.getMessage() for r in caplog.records if "read at open" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"index {path}: its 0 MB read at open in ")
