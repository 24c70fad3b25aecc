"""Another program's checkpoint at the moment the index drops its log.

When the index finds its file copied over (storage.index_file), it drops its
write-ahead log unread, under its write lock. A PASSIVE checkpoint needs no
write lock: another program's, starting between the look at the file and the
drop, copied this index's frames into the copy, damaging it. The index now holds
SQLite's checkpoint lock (sqlite.org walformat.html, "WAL-Index Locks",
WAL_CKPT_LOCK) from the look to the drop: such a checkpoint answers busy and
writes nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.index_file import IndexFiles
from tests.storage.helpers import index_rows, indexed_uids

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
        subprocess.run(["cp", str(backup), str(path)], check=True, timeout=60)
        assert index.add_instances(rows[4:]) == 0
    assert answers == ["(1, -1, -1)"]  # SQLITE_BUSY: the checkpoint lock is held
    assert path.read_bytes() == copied
    assert indexed_uids(path) == wanted
