"""Changes of the index file by others at the moments the index's own looks at
it leave open.

* Found copied over (storage.index_file), the index drops its write-ahead log
  unread, under its write lock. A PASSIVE checkpoint needs no write lock: another
  program's, starting between the look at the file and the drop, copied this
  index's frames into the copy, damaging it. The index now holds SQLite's
  checkpoint lock (sqlite.org walformat.html, "WAL-Index Locks", WAL_CKPT_LOCK)
  from the look to the drop: such a checkpoint answers busy and writes nothing.
* The file's state after a commit was taken for the commit's own (its
  checkpoint's): a copy made after the look before it went unseen. It is now the
  commit's only when a checkpoint ran in it and the file was as the index left it
  just before.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage import index_file
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.index_file import IndexFiles
from dicomnet.storage.index_tables import insert_row
from tests.storage.dicomfiles import make_image
from tests.storage.helpers import copy_file, index_rows, indexed_uids

#: Another program's checkpoint: its answer (busy, frames in the log, checkpointed).
_CHECKPOINT = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
print(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
db.close()
"""


def test_a_checkpoint_by_another_program_between_the_look_and_the_drop_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = index_rows(tmp_path / "files", 6)
    backup = tmp_path / "backup.sqlite"
    with StorageIndex(backup) as other:
        assert other.add_instances(rows[:1]) == 1
    copied = backup.read_bytes()
    wanted = indexed_uids(backup)
    path = tmp_path / INDEX_NAME
    answers: list[str] = []
    drop_log = IndexFiles.drop_log

    def checkpointed_then_dropped(files: IndexFiles) -> str | None:
        done = subprocess.run([sys.executable, "-c", _CHECKPOINT, str(path)],
                              capture_output=True, text=True, check=True, timeout=60)
        answers.append(done.stdout.strip())
        return drop_log(files)

    monkeypatch.setattr(IndexFiles, "drop_log", checkpointed_then_dropped)
    with StorageIndex(path) as index:
        assert index.add_instances(rows[1:4]) == 3  # in the log, not in the file
        # cp by another process: closing a descriptor of the file here would drop
        # this process's POSIX locks on it, SQLite's own (sqlite.org/howtocorrupt.html).
        copy_file(backup, path)
        assert index.add_instances(rows[4:]) == 0
    assert answers == ["(1, -1, -1)"]  # SQLITE_BUSY: the checkpoint lock is held
    assert path.read_bytes() == copied
    assert indexed_uids(path) == wanted


@pytest.mark.parametrize("checkpoint", [False, True], ids=["no-checkpoint", "own-checkpoint"])
def test_a_copy_between_the_look_and_the_commit_is_seen_at_the_next_look(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checkpoint: bool) -> None:
    """A copy over the file made after the look before a commit: the commit took
    the copy's state for its own, and no later look saw it; the log, written on
    the old file, was checkpointed into the copy at close. Seen now, unless that
    commit's own checkpoint wrote the log into the copy first (no look can undo
    that), when it passes for that checkpoint."""
    rows = index_rows(tmp_path / "files", 8)
    backup = tmp_path / "backup.sqlite"
    with StorageIndex(backup) as other:
        assert other.add_instances(rows[:1]) == 1
    copied = backup.read_bytes()
    path = tmp_path / INDEX_NAME
    copies: list[None] = []

    def copied_then_inserted(*args: Any) -> None:
        if not copies:  # the look at the file was made, the commit not yet
            copy_file(backup, path)
            copies.append(None)
        insert_row(*args)

    with StorageIndex(path) as index:
        assert index.add_instances(rows[1:4]) == 3
        if checkpoint:  # this commit checkpoints: the copy then holds its log
            index._db.execute("PRAGMA wal_autocheckpoint=1")
        monkeypatch.setattr("dicomnet.storage.index.insert_row", copied_then_inserted)
        assert index.add_instances(rows[4:6]) == 2
        monkeypatch.setattr("dicomnet.storage.index.insert_row", insert_row)
        written = index.add_instances(rows[6:])
    if checkpoint:
        # Written into the copy by that commit's checkpoint: no look can undo it
        # (storage.index_file); the copy now holds the index's pages, and its rows.
        assert written == 2 and len(indexed_uids(path)) == 7
    else:
        assert written == 0  # seen: the writes stop, the copy kept as it is
        assert path.read_bytes() == copied



def _checkpointed(index: StorageIndex) -> tuple[int, int]:
    """Frames of the index's log checkpointed, and in it (its WAL-index's)."""
    log = index._files._log()
    assert log is not None
    return log.backfilled, log.frames


def test_its_own_checkpoint_held_back_by_a_reader_is_its_own(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The file's state after a commit is the index's own when a checkpoint ran in
    that commit and the file was as it left it just before (a change otherwise is
    left to the next look): not explained again, as another program's checkpoint
    would be, whose pages are compared (held back by a reader, all those it copied
    may be written again in later frames: none left to compare, not told apart)."""
    rows = index_rows(tmp_path / "files", 60)
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index:
        assert index.add_instances(rows[:4]) == 4  # all in the file once closed
    size = path.stat().st_size
    with StorageIndex(path) as index, caplog.at_level(logging.DEBUG, logger="dicomnet"):
        assert index.add_instances(rows[4:]) == 56
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            assert reader.execute("SELECT COUNT(*) FROM instance").fetchone() == (60,)
            assert index.add_instances(rows[4:]) == 56  # the same pages, written again
            index._db.execute("PRAGMA wal_autocheckpoint=1")  # the next commit's
            assert _checkpointed(index)[0] == 0
            assert index.add_instances(rows[4:]) == 56
            done, frames = _checkpointed(index)
            assert 0 < done < frames  # checkpointed, held back
            assert path.stat().st_size > size
        finally:
            reader.close()
        index._db.execute("PRAGMA wal_autocheckpoint=0")
        assert index.remove_instance(str(make_image(1).SOPInstanceUID))
        assert index.count()["instances"] == 59
    assert len(indexed_uids(path)) == 59
    assert not caplog.records, caplog.text  # no look had to explain it


def test_a_touched_index_compared_whole_keeps_no_checkpoint_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A touched index file is read whole to compare its pages with those noted (a
    second a GiB): that read was made under SQLite's checkpoint lock, so another
    program's checkpoint meanwhile answered busy (the sqlite3 shell's, a backup
    tool's). Now made before the locks; that checkpoint, run during it, is then
    seen at the look for what it is, the rows kept."""
    rows = index_rows(tmp_path / "files", 6)
    path = tmp_path / INDEX_NAME
    answers: list[str] = []
    digests = index_file._page_digests
    touched: list[None] = []

    def checkpointed_while_read(fd: int | None, size: int, page_size: int,
                                previous: bytes | None = None,
                                pages: list[int] | None = None) -> bytes | None:
        if touched and previous is None and not answers:  # the compare, whole
            done = subprocess.run([sys.executable, "-c", _CHECKPOINT, str(path)],
                                  capture_output=True, text=True, check=True, timeout=60)
            answers.append(done.stdout.strip())
        return digests(fd, size, page_size, previous, pages)

    monkeypatch.setattr(index_file, "_page_digests", checkpointed_while_read)
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[:3]) == 3  # in the log only
        before = path.stat()
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        touched.append(None)
        assert index.add_instances(rows[3:]) == 3
        assert index.count()["instances"] == 6
    assert len(answers) == 1 and answers[0].startswith("(0, ")  # not busy: (1, -1, -1)
    assert indexed_uids(path) == sorted(str(make_image(n).SOPInstanceUID) for n in range(1, 7))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


#: Another program: checkpoints the index, then writes a transaction large enough for
#: its frames to reach the log before its commit, held until a line comes on stdin.
_LONG_WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
print(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone(), flush=True)
db.execute("BEGIN IMMEDIATE")
db.execute("CREATE TABLE theirs (b)")
db.execute("INSERT INTO theirs SELECT zeroblob(100000) FROM (WITH RECURSIVE c(x) AS "
           "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT x FROM c)")
print("holding", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
print(db.execute("SELECT COUNT(*) FROM theirs").fetchone(), flush=True)
db.close()
"""


def test_a_changed_file_that_cannot_be_locked_keeps_its_log_and_is_looked_at_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The file changed (another program's checkpoint) while that program holds the
    write lock past the busy timeout (a long transaction, a VACUUM): the index
    dropped the log all the same, under that program's transaction, whose frames
    went ('database disk image is malformed'), and wrote no more. Now that batch
    is not written (said), nothing is dropped, and the next one looks again."""
    rows = index_rows(tmp_path / "files", 9)
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[:3]) == 3  # in the log
        index._db.execute("PRAGMA busy_timeout=50")
        writer = subprocess.Popen([sys.executable, "-c", _LONG_WRITER, str(path)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout is not None and writer.stdin is not None
            assert writer.stdout.readline().startswith("(0, ")  # checkpointed
            assert writer.stdout.readline() == "holding\n"
            assert index.add_instances(rows[3:6]) == 0  # not looked at: locked
            writer.stdin.write("commit\n")
            writer.stdin.flush()
            assert writer.stdout.readline() == "(100,)\n"
        finally:
            writer.communicate(timeout=60)
        assert index.add_instances(rows[6:]) == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and errors[0].startswith(
        f"3 index row(s) not written (index {path} changed, and cannot be locked"), errors
    assert indexed_uids(path) == sorted(
        str(make_image(n).SOPInstanceUID) for n in (1, 2, 3, 7, 8, 9))
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT COUNT(*) FROM theirs").fetchone() == (100,)
    finally:
        db.close()


def test_a_shm_opened_read_only_is_not_waited_on_for_the_checkpoint_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A POSIX write lock needs a descriptor open for writing (fcntl(2): EBADF): with
    ``-shm`` only readable (another user's folder), the checkpoint lock can never be
    had, and each look waited index_file.WAIT for it in vain."""
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index:
        index.add_instances(index_rows(tmp_path, 1))
        opened = index_file._open
        monkeypatch.setattr(index_file, "_open", lambda p, mode=os.O_RDONLY: opened(p))
        files = IndexFiles(path, None)
        slept: list[float] = []
        monkeypatch.setattr(index_file, "time", SimpleNamespace(
            monotonic=time.monotonic, sleep=slept.append))
        try:
            with files.checkpoints_held() as held:
                assert not held
        finally:
            files.close()
        assert slept == []
