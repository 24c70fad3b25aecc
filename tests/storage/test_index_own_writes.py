"""The index's own writes outside the row batches (``remove_instance``,
``add_instance``, reindex's rows) look at the file first, as the batches do.

Each such commit noted the file's size and time afterwards as its own, without
asking first whether another program had changed the file: a copy over the
index (a backup restored) made before a ``remove_instance`` (a retention job)
was taken for that commit's own write, no later batch saw it, and the server's
write-ahead log, checkpointed at its close, wrote its pages into the copy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage import reindex as reindex_module
from dicomnet.storage.files import StorageError
from dicomnet.storage.index import StorageIndex
from tests.storage.dicomfiles import make_image
from tests.storage.helpers import copy_file, index_backup, index_rows, indexed_uids


def _uid(n: int) -> str:
    return str(make_image(n).SOPInstanceUID)


@pytest.mark.parametrize("write", ["remove_instance", "add_instance"])
@pytest.mark.parametrize("how", ["copied-over", "replaced"])
def test_a_copy_over_the_index_before_a_single_write_is_seen(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, write: str, how: str) -> None:
    rows = index_rows(tmp_path / "files", 10)
    backup, wanted = index_backup(tmp_path, rows[:2])
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[2:8]) == 6
        inode = path.stat().st_ino
        if how == "copied-over":
            copy_file(backup, path)  # cp: written in place
            assert path.stat().st_ino == inode
        else:
            os.replace(backup, path)
        with pytest.raises(StorageError, match="not written"):
            if write == "remove_instance":
                index.remove_instance(_uid(5))  # a retention job's
            else:
                row = rows[8]
                index.add_instance(row.ds, relative_path=row.relative_path,
                                   transfer_syntax_uid=row.transfer_syntax_uid,
                                   size=row.size, calling_ae=row.calling_ae,
                                   peer_fingerprint=row.peer_fingerprint)
        assert index.add_instances(rows[9:]) == 0
        assert indexed_uids(path) == wanted  # while the server runs
    assert indexed_uids(path) == wanted  # once it has stopped
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    fate = "overwritten" if how == "copied-over" else "replaced"
    assert errors and f"index {path} was {fate} while in use" in errors[0], errors


def test_a_copy_over_the_index_during_reindex_stops_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """reindex writes its rows in batches (storage.reindex), each looking at the
    file first: a copy over the index while it runs is seen at the next batch,
    which it no longer takes for a file to skip: reindex stops with the reason,
    the copy left as it was."""
    monkeypatch.setattr(reindex_module, "BATCH_ROWS", 2)
    monkeypatch.setattr(reindex_module, "BATCH_SECONDS", 3600.0)
    root = tmp_path / "store"
    index_rows(root, 6)
    backup, wanted = index_backup(tmp_path, index_rows(tmp_path / "other", 2, 101))
    path = root / INDEX_NAME
    with StorageIndex(path) as index:
        index._db.execute("PRAGMA wal_autocheckpoint=1")  # each commit checkpoints
        write = index._write
        batches = 0

        @contextlib.contextmanager
        def write_then_copy() -> Iterator[sqlite3.Connection]:
            nonlocal batches
            with write() as db:
                yield db
            batches += 1
            if batches == 2:  # rows 3.dcm and 4.dcm committed
                copy_file(backup, path)  # cp: written in place

        index._write = write_then_copy  # type: ignore[method-assign]
        with pytest.raises(StorageError, match="overwritten"):
            index.reindex(root)
    assert batches == 2
    assert indexed_uids(path) == wanted
    with StorageIndex(path) as index:  # what an operator runs next
        result = index.reindex(root)
        # The copy's rows name files of another store: pruned.
        assert (result.added, result.removed) == (6, 2)
    assert indexed_uids(path) == sorted(_uid(n) for n in range(1, 7))
