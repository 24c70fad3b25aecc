"""An index that cannot be written (its disk full) while the objects can: they are
stored and answered Success, and the log says once, without a traceback, how many
rows were lost and how to restore them. It logged a traceback whose last error
("cannot rollback - no transaction is active") hid the cause: SQLite had rolled
the transaction back itself when the disk filled (SQLITE_FULL)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME, StorageSCP
from dicomnet.storage import index as index_module
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.index_file import file_state
from dicomnet.storage.rows import row_from_file
from tests.aio.helpers import run
from tests.storage.dicomfiles import make_image, write_part10
from tests.storage.helpers import (
    copy_file,
    data_set_bytes,
    fill_disk,
    index_backup,
    indexed_uids,
    make_dataset,
    store_data_sets,
)

#: More rows than the index's pages have room for.
UIDS = [f"1.2.826.0.1.3680043.8.498.{n}" for n in range(1, 61)]


def test_a_full_index_loses_its_rows_with_one_line_and_reindex_restores_them(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    scp = StorageSCP(root)
    assert scp.index is not None
    # The index's file may not grow by a page: SQLite answers SQLITE_FULL, as on
    # a full disk ("database or disk is full").
    db = scp.index._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    data_sets = [
        (uid, data_set_bytes(make_dataset(sop_instance_uid=uid), str(ExplicitVRLittleEndian)))
        for uid in UIDS]
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        answers = run(store_data_sets(scp, str(ExplicitVRLittleEndian), data_sets))
    assert [a.status for a in answers] == [0] * len(UIDS)
    assert len(list(root.rglob("*.dcm"))) == len(UIDS)
    # One line per batch of rows lost, not one per row (a disk full for an hour).
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert failures, caplog.text
    lost = 0
    for record in failures:
        assert record.levelno == logging.ERROR and record.exc_info is None, caplog.text
        message = record.getMessage()
        found = re.match(r"(\d+) index row\(s\) not written \(index \w+ failed: database "
                         r"or disk is full\): the objects are stored; with the server stopped, "
                         rf"'dicomnet reindex {re.escape(str(root))}' restores them", message)
        assert found, message
        lost += int(found[1])
    assert 0 < lost <= len(UIDS)
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.reindex(root).added == lost
        assert index.count()["instances"] == len(UIDS)


def test_a_commit_on_a_full_disk_says_the_disk_not_the_rollback(
        tmp_path: Path, small_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    """On a real full disk the COMMIT fails (SQLite writes its WAL then) and SQLite
    rolls back by itself; the ROLLBACK sent after it failed in turn, and that
    error ("cannot rollback - no transaction is active"), raised out of the
    index, reached the log as a traceback."""
    files = tmp_path / "files"
    rows = []
    for n in range(1, 4):
        ds = make_image(n)
        relative = f"{n}.dcm"
        files.mkdir(exist_ok=True)
        write_part10(files / relative, ds, str(ExplicitVRLittleEndian))
        rows.append(row_from_file(files, relative))
    with StorageIndex(small_fs / INDEX_NAME) as index:
        fill_disk(small_fs / "filler")
        with caplog.at_level(logging.INFO, logger="dicomnet"):
            assert index.add_instances(rows) == 0
        (small_fs / "filler").unlink()
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(said) == 1, said
    level, message = said[0]
    assert level == logging.ERROR and message.startswith("3 index row(s) not written ("), said
    assert "database or disk is full" in message and "rollback" not in message


def test_an_index_locked_by_another_process_loses_the_batch_with_one_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Another process holds the index's write lock (sqlite3's BEGIN EXCLUSIVE, a
    backup) past the wait: every row fails alike, so the batch is lost with one
    line. Each row was tried again on its own, each waiting out the lock (30 s):
    a server stopping with 1,000 rows queued waited for hours."""
    files = tmp_path / "files"
    rows = []
    for n in range(1, 4):
        write_part10(files / f"{n}.dcm", make_image(n), str(ExplicitVRLittleEndian))
        rows.append(row_from_file(files, f"{n}.dcm"))
    with StorageIndex(tmp_path / INDEX_NAME) as index:
        index._db.execute("PRAGMA busy_timeout = 0")  # the wait, cut short for the test
        other = sqlite3.connect(tmp_path / INDEX_NAME, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with caplog.at_level(logging.INFO, logger="dicomnet"):
                assert index.add_instances(rows) == 0
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert index.add_instances(rows) == 3  # the lock gone, rows are written again
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(said) == 1, said
    level, message = said[0]
    assert level == logging.ERROR, said
    assert message.startswith("3 index row(s) not written (index transaction failed: "
                              "database is locked; another program held its write "
                              "lock: end"), said


def test_an_index_removed_while_in_use_is_said_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """index.sqlite deleted under a running server (an operator's rm): its rows went
    on, without a word, into the file its connection still held, which nobody
    would read again (once the server stopped, the store had no index)."""
    files = tmp_path / "files"
    rows = []
    for n in range(1, 4):
        write_part10(files / f"{n}.dcm", make_image(n), str(ExplicitVRLittleEndian))
        rows.append(row_from_file(files, f"{n}.dcm"))
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[:1]) == 1
        assert caplog.records == []
        path.unlink()
        index.add_instances(rows[1:2])
        index.add_instances(rows[2:])
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert said == [(logging.ERROR,
                     f"index {path} was removed while in use: the rows of the objects stored "
                     "since are not in it; with the server stopped, 'dicomnet reindex "
                     f"--create {tmp_path}' restores them"),
                    (logging.ERROR,
                     f"2 index row(s) were not written to {path}, removed while in use; with "
                     f"the server stopped, 'dicomnet reindex --create {tmp_path}' restores "
                     "them")], said


def test_an_index_removed_with_its_folder_says_its_rows_went_with_the_objects(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The store's whole folder removed (rm -rf) under an open index: the rows it
    could not write were said restorable by 'dicomnet reindex --create', but
    their objects went with the folder: reindex finds nothing to restore."""
    files = tmp_path / "files"
    rows = []
    for n in range(1, 3):
        write_part10(files / f"{n}.dcm", make_image(n), str(ExplicitVRLittleEndian))
        rows.append(row_from_file(files, f"{n}.dcm"))
    store = tmp_path / "store"
    store.mkdir()
    path = store / INDEX_NAME
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[:1]) == 1
        shutil.rmtree(store)
        store.mkdir()  # made again: another folder
        assert index.add_instances(rows[1:]) == 0
        assert index.add_instances(rows[1:]) == 0
    assert not path.exists()
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert said == [(logging.WARNING,
                     f"index {path} was removed with its folder while in use: the rows not "
                     "yet written are dropped, their objects gone with the folder")], said


@pytest.mark.parametrize("removed_first", [False, True], ids=["replaced", "removed-then-copied"])
def test_an_index_replaced_while_in_use_is_not_written_into_the_new_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, removed_first: bool) -> None:
    """An operator restores a backup of index.sqlite under a running server. The
    server's connection wrote on into the old file, but the write-ahead log it
    shares by name (index.sqlite-wal) is read with the new one: a reader saw
    the old index's rows instead of the restored ones ("no such table" once
    part of it was checkpointed), and the first checkpoint by a connection on
    the new file copied the old file's pages into it, losing the restored rows.
    Once the swap is seen, the server's log is emptied into its own file and
    nothing more is written."""
    files = tmp_path / "files"
    rows = []
    for n in range(1, 9):
        write_part10(files / f"{n}.dcm", make_image(n), str(ExplicitVRLittleEndian))
        rows.append(row_from_file(files, f"{n}.dcm"))
    backup, wanted = index_backup(tmp_path, rows[:2])
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[2:5]) == 3
        if removed_first:
            path.unlink()
            assert index.add_instances(rows[5:6]) == 0
            copy_file(backup, path)
        else:
            os.replace(backup, path)
        assert index.add_instances(rows[6:7]) == 0
        assert indexed_uids(path) == wanted  # while the server runs
        assert index.add_instances(rows[7:]) == 0
    assert indexed_uids(path) == wanted  # once it has stopped
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    fate = "removed" if removed_first else "replaced"
    assert said == [(logging.ERROR,
                     f"index {path} was {fate} while in "
                     "use: the rows of the objects stored since are not in it; with the server "
                     f"stopped, 'dicomnet reindex {'--create ' if removed_first else ''}"
                     f"{tmp_path}' restores them"),
                    (logging.ERROR,
                     f"{3 if removed_first else 2} index row(s) were not written to {path}, "
                     f"{fate} while in use; with the server stopped, 'dicomnet reindex "
                     f"{'--create ' if removed_first else ''}{tmp_path}' restores them")], said


def test_an_index_overwritten_in_place_while_in_use_keeps_the_new_contents(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """cp of another index over index.sqlite under a running server: the same file
    (inode), other contents. Nothing saw it: the server wrote on, its reads
    served by its write-ahead log, and its checkpoint at close wrote its pages
    into the copy ("database disk image is malformed"). Now seen (the file's
    size and time moved without a checkpoint of ours), said, and the server's
    log dropped unread: the copy stays as it was copied; the rows not written
    are counted, reindex named."""
    files = tmp_path / "files"
    rows = []
    for n in range(1, 40):
        write_part10(files / f"{n}.dcm", make_image(n), str(ExplicitVRLittleEndian))
        rows.append(row_from_file(files, f"{n}.dcm"))
    backup, wanted = index_backup(tmp_path, rows[:2])
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        # Its own checkpoints at each commit (a large store's, at 1000 pages): the
        # file holds pages, the log the latest.
        index._db.execute("PRAGMA wal_autocheckpoint=1")
        assert index.add_instances(rows[2:30]) == 28
        index._db.execute("PRAGMA wal_autocheckpoint=1000")
        assert index.add_instances(rows[30:35]) == 5
        inode = path.stat().st_ino
        copy_file(backup, path)  # cp: written in place
        assert path.stat().st_ino == inode
        assert index.add_instances(rows[35:37]) == 0
        assert index.add_instances(rows[37:]) == 0
    assert indexed_uids(path) == wanted
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert said == [
        (logging.ERROR, f"index {path} was overwritten while in use (the same file, other "
                        "contents: copied over?): this server writes it no more, and dropped "
                        "its own log of changes not yet in it, which would damage the new "
                        "contents; the rows of the objects stored since are not in it; with "
                        f"the server stopped, 'dicomnet reindex {tmp_path}' makes it describe "
                        "the folder's files"),
        (logging.ERROR, f"4 index row(s) were not written to {path}, overwritten while in "
                        f"use; with the server stopped, 'dicomnet reindex {tmp_path}' restores "
                        "them")], said


def test_a_checkpoint_of_another_thread_is_not_taken_for_an_overwrite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """One thread's commit checkpoints (the file's size and time move) and then
    notes the file's new state; a batch of another thread that looked at the
    file in between took that checkpoint for another program's write: the index
    said 'overwritten', truncated its own log (committed rows lost) and wrote no
    more. A retention job removing rows while the server indexes is such a
    second thread."""
    files = tmp_path / "files"
    rows = []
    for n in range(1, 5):
        write_part10(files / f"{n}.dcm", make_image(n), str(ExplicitVRLittleEndian))
        rows.append(row_from_file(files, f"{n}.dcm"))
    state = file_state
    committed, checked = threading.Event(), threading.Event()
    remover: list[threading.Thread] = []

    def noted_late(path: Path) -> tuple[int, int, int, int] | None:
        if remover and threading.current_thread() is remover[0] and not committed.is_set():
            committed.set()  # its commit (and checkpoint) done, its state not noted yet
            checked.wait(2)  # the other batch's look, if nothing holds it back
        return state(path)

    with StorageIndex(tmp_path / INDEX_NAME) as index, caplog.at_level(logging.WARNING):
        index._db.execute("PRAGMA wal_autocheckpoint=1")  # each commit checkpoints
        assert index.add_instances(rows[:3]) == 3
        monkeypatch.setattr(index_module, "file_state", noted_late)
        written: list[int] = []
        remover.append(threading.Thread(
            target=index.remove_instance, args=(str(make_image(1).SOPInstanceUID),)))

        def add() -> None:
            written.append(index.add_instances(rows[3:]))
            checked.set()

        adder = threading.Thread(target=add)
        remover[0].start()
        assert committed.wait(10)
        adder.start()
        adder.join(10)
        remover[0].join(10)
        assert written == [1] and index.count()["instances"] == 3
    assert not [r.getMessage() for r in caplog.records], caplog.text
