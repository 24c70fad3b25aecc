"""Another program's checkpoint of the live index is not a copy over it.

The index stops writing once its file was overwritten in place (``cp`` of another
index over it: same inode, other contents), seen by the file's size and time
moving outside its own commits. Another program that checkpoints the live index
(``PRAGMA wal_checkpoint``: the sqlite3 shell, a backup tool) moves them too, by
writing this index's own log into it: it was taken for a copy, and the index was
written no more until reindex. A copy is still seen (its pages are not those of
the log), and what cannot be told apart still stops the writes, said so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import open_association
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
from dicomnet.services.storage import INDEX_NAME, StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.index import StorageIndex
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import make_image
from tests.storage.helpers import (
    SECONDARY_CAPTURE,
    copy_file,
    data_set_bytes,
    index_backup,
    index_rows,
    indexed_uids,
    make_dataset,
)

MODES = ["", "(PASSIVE)", "(FULL)", "(RESTART)", "(TRUNCATE)"]


def _uids(count: int) -> list[str]:
    return sorted(str(make_image(n).SOPInstanceUID) for n in range(1, count + 1))


def _state(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def _checkpoint(path: Path, mode: str) -> tuple[int, int, int]:
    """``PRAGMA wal_checkpoint<mode>`` by a connection of another program's: its
    answer (busy, frames in the log, frames checkpointed)."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        busy, log, done = other.execute(f"PRAGMA wal_checkpoint{mode}").fetchone()
    finally:
        other.close()
    return busy, log, done


@pytest.mark.parametrize("mode", MODES, ids=[m.strip("()") or "plain" for m in MODES])
def test_a_checkpoint_by_another_program_is_not_taken_for_a_copy(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str) -> None:
    rows = index_rows(tmp_path / "files", 12)
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[:3]) == 3
        before = _state(path)
        busy, _log, done = _checkpoint(path, mode)
        assert busy == 0 and (done != 0 or mode == "(TRUNCATE)"), (busy, done)
        after = _state(path)
        assert after[0] == before[0] and after != before  # what a copy over it shows too
        assert index.add_instances(rows[3:6]) == 3
        assert index.add_instances(rows[6:8]) == 2
        _checkpoint(path, mode)  # again, the log restarted by the rows since
        assert _state(path) != after
        assert index.add_instances(rows[8:]) == 4
        assert index.count()["instances"] == 12
    assert indexed_uids(path) == _uids(12)
    assert not caplog.records, caplog.text


def test_a_checkpoint_by_the_sqlite3_shell_under_a_running_server(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A running server's index checkpointed by the sqlite3 shell (another process)
    between two associations: the objects of the second are indexed too."""
    sqlite3_shell = shutil.which("sqlite3")
    if sqlite3_shell is None:
        pytest.skip("no sqlite3 shell")
    scp = StorageSCP(root)
    uids = [f"1.2.826.0.1.3680043.8.498.{n}" for n in range(1, 9)]
    data_sets = [(uid, data_set_bytes(make_dataset(sop_instance_uid=uid),
                                      str(ExplicitVRLittleEndian))) for uid in uids]
    path = root / INDEX_NAME
    checkpointed: list[str] = []

    def checkpoint() -> None:
        scp.flush_index()  # the first association's rows in the log
        before = _state(path)
        done = subprocess.run([sqlite3_shell, str(path), "PRAGMA wal_checkpoint;"],
                              capture_output=True, text=True, check=True, timeout=60)
        assert _state(path) != before, done.stdout
        checkpointed.append(done.stdout)

    async def main() -> list[int]:
        statuses = []
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            for part in (data_sets[:4], data_sets[4:]):
                assoc = await open_association(
                    "127.0.0.1", server.port,
                    contexts=[ContextRequest(SECONDARY_CAPTURE, (str(ExplicitVRLittleEndian),))])
                ctx = assoc.context_for(SECONDARY_CAPTURE).context_id
                for uid, data in part:
                    rq = CStoreRQ(message_id=assoc.dimse.next_message_id(),
                                  affected_sop_class_uid=SECONDARY_CAPTURE,
                                  affected_sop_instance_uid=uid)
                    rsp, _ = await assoc.request_one(rq, ctx, dataset=data)
                    assert isinstance(rsp, CStoreRSP)
                    statuses.append(rsp.status)
                await assoc.release()
                if not checkpointed:
                    await asyncio.to_thread(checkpoint)
            await asyncio.to_thread(scp.flush_index)
            assert scp.index is not None and scp.index.count()["instances"] == len(uids)
        return statuses

    try:
        with caplog.at_level(logging.INFO, logger="dicomnet"):
            assert run(main()) == [0] * len(uids)
    finally:
        scp.close()
    assert checkpointed and checkpointed[0].startswith("0|"), checkpointed
    assert indexed_uids(path) == sorted(uids)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def _said(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]


@pytest.mark.parametrize("when", ["after-its-checkpoint", "before-any-write"])
def test_a_copy_is_still_seen_whatever_its_log_holds(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, when: str) -> None:
    """cp of another index over the live one, its log fully checkpointed by itself
    just before (its pages then in the file: the copy's are compared with them),
    or empty (opened, nothing written yet): a copy still, not a checkpoint."""
    rows = index_rows(tmp_path / "files", 8)
    backup, wanted = index_backup(tmp_path, rows[:2])
    path = tmp_path / INDEX_NAME
    if when == "before-any-write":
        with StorageIndex(path) as index:
            assert index.add_instances(rows[2:4]) == 2
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        if when == "after-its-checkpoint":
            index._db.execute("PRAGMA wal_autocheckpoint=1")  # each commit checkpoints
            assert index.add_instances(rows[2:4]) == 2
        inode = path.stat().st_ino
        copy_file(backup, path)  # cp: written in place
        assert path.stat().st_ino == inode
        assert index.add_instances(rows[4:]) == 0
    assert indexed_uids(path) == wanted
    assert _said(caplog) == [
        (logging.ERROR, f"index {path} was overwritten while in use (the same file, other "
                        "contents: copied over?): this server writes it no more, and dropped "
                        "its own log of changes not yet in it, which would damage the new "
                        "contents; the rows of the objects stored since are not in it; with "
                        f"the server stopped, 'dicomnet reindex {tmp_path}' makes it describe "
                        "the folder's files"),
        (logging.ERROR, f"4 index row(s) were not written to {path}, overwritten while in "
                        f"use; with the server stopped, 'dicomnet reindex {tmp_path}' restores "
                        "them")]


@pytest.mark.parametrize("mode", MODES, ids=[m.strip("()") or "plain" for m in MODES])
def test_a_checkpoint_then_writes_by_another_program_keep_its_rows(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str) -> None:
    """Another program checkpoints the whole log, then writes (a colleague's DELETE
    in the sqlite3 shell), restarting the log: nothing of the log was left to
    compare the file with, the index said it could not tell this from a copy,
    dropped the log and wrote no more: the DELETE was lost. A restart, seen by the
    log's salts moving (fileformat2.html "WAL File Format"; SQLite restarts a log
    only once all of it is checkpointed), leaves none of this index's frames in
    the log: another program's checkpoint, its rows kept, the writes going on."""
    rows = index_rows(tmp_path / "files", 6)
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[:3]) == 3
        other = sqlite3.connect(path, isolation_level=None)
        try:
            assert other.execute(f"PRAGMA wal_checkpoint{mode}").fetchone()[0] == 0
            other.execute("DELETE FROM instance WHERE relative_path = '1.dcm'")
        finally:
            other.close()
        assert index.add_instances(rows[3:]) == 3
        assert index.count()["instances"] == 5
    assert indexed_uids(path) == sorted(str(make_image(n).SOPInstanceUID) for n in range(2, 7))
    assert not _said(caplog), caplog.text


def test_writes_by_another_program_then_a_copy_are_a_copy(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Another program wrote into the log (no checkpoint), then a copy over the file:
    the log's salts did not move, so nothing of it was checkpointed and only a copy
    changed the file (it was 'cannot be told apart')."""
    rows = index_rows(tmp_path / "files", 6)
    backup, wanted = index_backup(tmp_path, rows[:1])
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[1:3]) == 2
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("DELETE FROM instance WHERE relative_path = '2.dcm'")
        finally:
            other.close()
        copy_file(backup, path)  # cp: written in place
        assert index.add_instances(rows[3:]) == 0
    assert indexed_uids(path) == wanted
    said = _said(caplog)
    assert len(said) == 2 and said[0][1].startswith(
        f"index {path} was overwritten while in use"), said


def test_a_checkpoint_held_back_by_a_reader_is_not_taken_for_a_copy(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A reader of another program holds an old snapshot: the checkpoint copies only
    the pages whose latest frame that snapshot sees, and leaves the pages written
    again since as they were (frames 1 to 30 of 58 checkpointed, say)."""
    rows = index_rows(tmp_path / "files", 12)
    path = tmp_path / INDEX_NAME
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[:4]) == 4
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            assert reader.execute("SELECT COUNT(*) FROM instance").fetchone() == (4,)
            assert index.add_instances(rows[4:6]) == 2
            assert index.add_instances(rows[6:8]) == 2
            before = _state(path)
            busy, log, done = _checkpoint(path, "")
            assert busy == 0 and 0 < done < log, (busy, log, done)
            assert _state(path) != before
        finally:
            reader.close()
        assert index.add_instances(rows[8:]) == 4
    assert indexed_uids(path) == _uids(12)
    assert not caplog.records, caplog.text
