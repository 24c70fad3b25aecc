"""A server started after one that did not close indexes, while it serves, the
objects that one answered but never indexed (storage.recovery).

The stores are made as a killed server leaves them: Part 10 files where a
C-STORE SCP names them, an index holding the rows of some, and in it the record a
started server writes and only a clean close replaces (``StopRecord``, never
closed). ``test_recovery_kill`` kills a real server instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import open_association
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
from dicomnet.services.storage import INDEX_NAME, StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage import index as index_module
from dicomnet.storage import recovery
from dicomnet.storage.files import Layout
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.index_tables import row_values
from dicomnet.storage.lock import walk_store
from dicomnet.storage.recovery import (
    CHECK_STOPPED,
    CLOSED,
    NOT_CLOSED,
    ROWS_LOST,
    RowRecovery,
    StopRecord,
)
from dicomnet.storage.rows import row_from_file
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import make_image, uid, write_part10
from tests.storage.helpers import SECONDARY_CAPTURE, data_set_bytes, store_data_sets

STUDY, SERIES = uid(1), uid(2)
SYNTAX = str(ExplicitVRLittleEndian)
START = ("the previous server of {} {}: checking {} folder(s) for objects without "
         "index rows")
END = ("the check of {} for objects without index rows {}: {} row(s) added, {} copy(ies) "
       "left without a row, {} file(s) unreadable")


def store_files(root: Path, *numbers: int, series: str = SERIES) -> dict[int, str]:
    """Objects ``numbers`` (study STUDY) where a C-STORE SCP names them; their
    relative paths."""
    relative = {}
    for n in numbers:
        ds = make_image(n, study=STUDY, series=series)
        path = Layout.HIERARCHICAL.destination(
            root, sop_instance_uid=ds.SOPInstanceUID, study_instance_uid=STUDY,
            series_instance_uid=series)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_part10(path, ds, ExplicitVRLittleEndian)
        relative[n] = path.relative_to(root).as_posix()
    return relative


def killed_store(root: Path, stored: tuple[int, ...], indexed: tuple[int, ...],
                 ) -> dict[int, str]:
    """What a server killed before writing the rows of ``stored`` less ``indexed``
    leaves: the files, the rows of ``indexed``, and its record of a start."""
    paths = store_files(root, *stored)
    with StorageIndex(root / INDEX_NAME) as index:
        index.add_instances([row_from_file(root, paths[n]) for n in indexed])
        StopRecord(index)  # started, never closed
    return paths


def table(root: Path, name: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(root / INDEX_NAME) as db:
        return db.execute(f"SELECT * FROM {name} ORDER BY 1").fetchall()


def rows_by_path(root: Path) -> dict[str, tuple[Any, ...]]:
    return {row[5]: row for row in table(root, "instance")}


def said(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == "dicomnet.storage" and r.levelno >= logging.INFO]


async def send(port: int, number: int, *, series: str = SERIES, **changed: str) -> int:
    """C-STORE object ``number`` (as tests.storage.dicomfiles makes it, with
    ``changed`` values), calling AE SENDER; its status."""
    ds = make_image(number, study=STUDY, series=series)
    for keyword, value in changed.items():
        setattr(ds, keyword, value)
    assoc = await open_association("127.0.0.1", port, calling_ae_title="SENDER",
                                   contexts=[ContextRequest(SECONDARY_CAPTURE, (SYNTAX,))])
    rsp, _ = await assoc.request_one(
        CStoreRQ(message_id=1, affected_sop_class_uid=SECONDARY_CAPTURE,
                 affected_sop_instance_uid=ds.SOPInstanceUID),
        assoc.context_for(SECONDARY_CAPTURE).context_id, dataset=data_set_bytes(ds, SYNTAX))
    await assoc.release()
    assert isinstance(rsp, CStoreRSP)
    return rsp.status


def record(root: Path) -> int:
    """The index's record of how its last server stopped (storage.recovery)."""
    with sqlite3.connect(root / INDEX_NAME) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def start_and_wait(root: Path, **kwargs: Any) -> StorageSCP:
    """A StorageSCP on ``root`` whose check (if any) has ended, closed."""
    scp = StorageSCP(root, **kwargs)
    try:
        assert scp.recovery.wait(30)
    finally:
        scp.close()
    return scp


def test_the_rows_a_killed_server_did_not_write_are_added_at_the_next_start(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = killed_store(root, (1, 2, 3, 4, 5), indexed=(1, 2))
    before = rows_by_path(root)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = start_and_wait(root)
    assert scp.recovery.needed and scp.recovery.complete
    assert (scp.recovery.added, scp.recovery.left, scp.recovery.unreadable) == (3, 0, 0)
    after = rows_by_path(root)
    assert sorted(after) == sorted(paths.values())
    for path, row in before.items():  # rows that were there: untouched
        assert after[path] == row
    for n in (3, 4, 5):  # as reindex reads them: no sender, the file's time
        assert after[paths[n]] == row_values(row_from_file(root, paths[n])).instance
    assert table(root, "series") == [(SERIES, STUDY, "OT", "1", None)]
    assert said(caplog) == [
        (logging.INFO, START.format(root, "stopped without closing", 3)),
        (logging.INFO, END.format(root, "ended", 3, 0, 0)),
    ]
    assert record(root) == CLOSED


def test_a_clean_stop_and_start_checks_nothing(root: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    ds = make_image(1, study=STUDY, series=SERIES)
    syntax = str(ExplicitVRLittleEndian)
    answers = run(store_data_sets(StorageSCP(root), syntax,
                                  [(ds.SOPInstanceUID, data_set_bytes(ds, syntax))]))
    assert [rsp.status for rsp in answers] == [0]
    assert record(root) == CLOSED
    store_files(root, 2)  # no row, and no check to find it: the record says closed
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = StorageSCP(root)
        try:
            assert not scp.recovery.needed and scp.recovery.wait(0)
            assert record(root) == NOT_CLOSED  # while it serves
        finally:
            scp.close()
    assert scp.recovery.added is None
    assert [row[0] for row in table(root, "instance")] == [ds.SOPInstanceUID]
    assert said(caplog) == []
    assert record(root) == CLOSED


def test_copies_unreadable_files_and_other_files_are_said_or_passed_over(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = killed_store(root, (1, 2, 6), indexed=(1, 6))
    # A second copy of indexed object 1, under another series: left, said.
    copy = store_files(root / "elsewhere", 1, series=uid(3))[1]
    (root / copy).parent.mkdir(parents=True)
    shutil.move(root / "elsewhere" / copy, root / copy)
    shutil.rmtree(root / "elsewhere")
    # Object 6's row names a file gone: its file elsewhere is left for reindex.
    moved = store_files(root / "elsewhere", 6, series=uid(4))[6]
    (root / moved).parent.mkdir(parents=True)
    shutil.move(root / "elsewhere" / moved, root / moved)
    shutil.rmtree(root / "elsewhere")
    (root / paths[6]).unlink()
    garbage = root / STUDY / SERIES / f"{uid(9, 99)}.dcm"
    garbage.write_bytes(b"not DICOM at all")
    (root / "notes.txt").write_text("the operator's")
    (root / STUDY / SERIES / ".hidden.dcm").write_bytes(b"not ours")
    before = rows_by_path(root)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = start_and_wait(root)
    assert (scp.recovery.added, scp.recovery.left, scp.recovery.unreadable) == (1, 2, 1)
    after = rows_by_path(root)
    assert sorted(after) == sorted([paths[1], paths[2], paths[6]])
    assert all(after[path] == row for path, row in before.items())
    lines = said(caplog)
    assert lines[0] == (logging.INFO, START.format(root, "stopped without closing", 5))
    assert lines[-1] == (logging.INFO, END.format(root, "ended", 1, 2, 1))
    warnings = sorted(text for level, text in lines if level == logging.WARNING)
    assert len(warnings) == 3
    assert warnings[0].startswith(f"{copy} holds {uid(9, 1)}, which the index finds at "
                                  f"{paths[1]}: a second copy, left without a row")
    assert warnings[1].startswith(f"{moved} holds {uid(9, 6)}, whose row names {paths[6]}, "
                                  "which is not there: left as it is")
    assert warnings[2].startswith(f"cannot read {garbage} for its index row, left without "
                                  "one: ")
    assert (root / copy).is_file() and (root / moved).is_file() and garbage.is_file()


def test_a_store_of_an_earlier_version_is_checked_once(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = store_files(root, 1, 2)
    with StorageIndex(root / INDEX_NAME) as index:
        index.add_instances([row_from_file(root, paths[1])])
    assert record(root) == 0  # no version before this one wrote one
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = start_and_wait(root)
        assert not start_and_wait(root).recovery.needed  # the second: recorded closed
    assert scp.recovery.added == 1
    assert sorted(rows_by_path(root)) == sorted(paths.values())
    assert said(caplog) == [
        (logging.INFO, START.format(root, "left no record of how it stopped (an earlier "
                                          "version?)", 3)),
        (logging.INFO, END.format(root, "ended", 1, 0, 0)),
    ]


def test_a_new_index_is_not_checked_but_pointed_at_reindex(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    store_files(root, 1)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = start_and_wait(root)
    assert not scp.recovery.needed
    assert table(root, "instance") == []
    assert [level for level, _ in said(caplog)] == [logging.WARNING]
    assert "had no index" in said(caplog)[0][1]


def test_rows_the_index_did_not_take_have_the_next_start_check(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start_and_wait(root)
    ds = make_image(1, study=STUDY, series=SERIES)
    syntax = str(ExplicitVRLittleEndian)
    with monkeypatch.context() as patched:  # the index full, say: it logs and drops them
        patched.setattr(StorageIndex, "add_instances", lambda self, rows: 0)
        run(store_data_sets(StorageSCP(root), syntax,
                            [(ds.SOPInstanceUID, data_set_bytes(ds, syntax))]))
    assert record(root) == ROWS_LOST
    assert table(root, "instance") == []
    assert start_and_wait(root).recovery.added == 1
    assert [row[0] for row in table(root, "instance")] == [ds.SOPInstanceUID]


def test_a_check_stopped_by_the_close_is_done_again_at_the_next_start(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    paths = killed_store(root, (1, 2), indexed=())
    store_files(root, 3, series=uid(3))
    checked: list[str] = []
    check = RowRecovery._check

    def one_folder_then_close(self: RowRecovery, folder: str) -> None:
        check(self, folder)
        if os.listdir(folder) and not checked:  # the server closes meanwhile
            checked.append(folder)
            self._stop.set()

    with monkeypatch.context() as patched:
        patched.setattr(RowRecovery, "_check", one_folder_then_close)
        first = start_and_wait(root)
    assert not first.recovery.complete
    assert record(root) == CHECK_STOPPED
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        second = start_and_wait(root)
    assert first.recovery.added is not None and second.recovery.added is not None
    assert first.recovery.added + second.recovery.added == 3
    assert len(rows_by_path(root)) == 3 and paths[1] in rows_by_path(root)
    assert said(caplog)[0] == (logging.INFO, START.format(
        root, "closed before its check for objects without index rows had ended", 4))
    assert record(root) == CLOSED


class Held:
    """Holds the check's listing of the store (storage.lock.walk_store, as
    storage.recovery calls it) until ``go`` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached, self.go = threading.Event(), threading.Event()

        def walk(root: Path | str, index_name: str,
                 nested: list[str] | None = None) -> Iterator[tuple[str, list[str], list[str]]]:
            self.reached.set()
            assert self.go.wait(30), "the check was never let go on"
            yield from walk_store(root, index_name, nested)

        monkeypatch.setattr(recovery, "walk_store", walk)


def test_the_server_serves_while_the_check_has_not_listed_anything(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The start does not wait for the check: held before its walk, the server
    answers and indexes a new object all the same."""
    paths = killed_store(root, (1,), indexed=())
    held = Held(monkeypatch)
    scp = StorageSCP(root)  # returns: the check waits in its own thread
    try:
        assert held.reached.wait(30) and not scp.recovery.wait(0)
        async def scenario() -> int:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                status = await send(server.port, 2)
                scp.flush_index()
                assert [row[0] for row in table(root, "instance")] == [uid(9, 2)]
                held.go.set()  # before the server closes: its close stops the check
                assert await asyncio.to_thread(scp.recovery.wait, 30)
                return status

        assert run(scenario()) == 0
    finally:
        held.go.set()
        scp.close()
    assert scp.recovery.added == 1
    assert sorted(rows_by_path(root)) == sorted([paths[1], f"{STUDY}/{SERIES}/{uid(9, 2)}.dcm"])


def test_a_record_that_cannot_be_written_is_said_and_the_start_goes_on(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Another program holds the index's write lock through the start: the record
    cannot be written, which is said; the server starts all the same."""
    start_and_wait(root)
    monkeypatch.setattr(index_module, "BUSY_WAIT_S", 0.2)  # not 30 s
    other = sqlite3.connect(root / INDEX_NAME, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        try:
            scp = StorageSCP(root)
        finally:
            other.execute("ROLLBACK")
            other.close()
        scp.close()
    lines = said(caplog)
    assert len(lines) == 1 and lines[0][0] == logging.WARNING
    assert lines[0][1].startswith(f"cannot record how this server stops in {root / INDEX_NAME}"
                                  " (index transaction failed: database is locked")
    assert record(root) == CLOSED  # its close could


def test_a_store_folder_made_again_under_its_server_records_its_start_there(
        tmp_path: Path) -> None:
    """rm -rf of the folder, and another server started and closed cleanly on the
    new one: the first server then takes it (storage.lock) and stores there; its
    start is recorded there first, so that a kill now is not taken for the
    other's clean close."""
    root = tmp_path / "store"
    scp = StorageSCP(root)

    async def scenario() -> None:
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            assert await send(server.port, 1) == 0
            # Its row written first: one still queued when the folder goes is a row
            # lost (the close then records ROWS_LOST), as on a loaded machine.
            await asyncio.to_thread(scp.flush_index)
            shutil.rmtree(root)
            StorageSCP(root).close()
            assert record(root) == CLOSED
            assert await send(server.port, 2) == 0
            assert record(root) == NOT_CLOSED

    try:
        run(scenario(), timeout=60)
    finally:
        scp.close()
    assert record(root) == CLOSED


def resize_two(root: Path, paths: dict[int, str]) -> None:
    """Object 2's file replaced in place by a longer copy that reads whole, object
    3's truncated: two files whose size is no longer their row's."""
    rewritten = make_image(2, study=STUDY, series=SERIES)
    rewritten.PatientName = "Corrected^Name^Longer^Than^The^First"
    write_part10(root / paths[2], rewritten, ExplicitVRLittleEndian)
    with open(root / paths[3], "r+b") as cut:
        cut.truncate(400)


def test_rows_whose_size_is_not_their_files_are_said_with_the_command_that_fixes_them(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A copy overwritten in place by a server killed before its row (or a file
    changed while no server ran): its row, and the file, are left as they are,
    and the WARNING names them and what updates the rows; reindex then does."""
    paths = killed_store(root, (1, 2, 3, 4), indexed=(1, 2, 3))
    resize_two(root, paths)
    before = rows_by_path(root)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = start_and_wait(root)
    assert (scp.recovery.added, scp.recovery.left, scp.recovery.unreadable) == (1, 0, 0)
    assert scp.recovery.resized == sorted([paths[2], paths[3]])
    after = rows_by_path(root)
    assert all(after[path] == row for path, row in before.items())
    assert (root / paths[3]).stat().st_size == 400
    warnings = [text for level, text in said(caplog) if level == logging.WARNING]
    assert warnings == [
        f"2 index row(s) of {root} do not record their file's size: "
        f"{', '.join(sorted([paths[2], paths[3]]))} (a copy replaced in place by a server "
        f"killed before its row, or a file changed while no server ran): left as they "
        f"are; with the server stopped, 'dicomnet reindex {root}' reads those files again "
        f"and updates their rows, and names those it cannot read: damaged, their objects "
        f"stored again replace them"]
    with caplog.at_level(logging.INFO, logger="dicomnet"), \
            StorageIndex(root / INDEX_NAME) as index:
        result = index.reindex(root)
    assert (result.updated, result.skipped) == (1, 1)
    assert rows_by_path(root)[paths[2]][6] == (root / paths[2]).stat().st_size
    assert rows_by_path(root)[paths[3]] == before[paths[3]]
    assert any(level == logging.WARNING and text.startswith(
        f"reindex: {root / paths[3]} is not the size its row records and cannot be read (")
        for level, text in said(caplog))
    # Sent again, the damaged copy is replaced (storage.damage) and its row follows.
    scp = StorageSCP(root, duplicates="keep")

    async def resend() -> int:
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            return await send(server.port, 3)

    try:
        assert run(resend()) == 0
    finally:
        scp.close()
    assert rows_by_path(root)[paths[3]][6] == (root / paths[3]).stat().st_size > 400


def test_a_server_without_an_index_leaves_nothing_to_recover_but_its_temporaries(
        root: Path) -> None:
    """index=False: no record, no check, no index made; what a kill leaves (the
    temporary file of a transfer under way) is removed by the start-up sweep,
    which runs with or without an index; stored objects are whole files."""
    paths = store_files(root, 1)
    stale = root / STUDY / SERIES / ".killed.dicomnet-part"
    stale.write_bytes(b"half an object")
    scp = StorageSCP(root, index=False)
    try:
        assert scp.sweep.wait(30)
        assert not scp.recovery.needed and scp.recovery.wait(0)
    finally:
        scp.close()
    assert not stale.exists()
    assert not (root / INDEX_NAME).exists()
    assert (root / paths[1]).is_file()


def test_a_server_without_an_index_on_an_indexed_store_has_the_next_one_check(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """index=False on a folder whose index an indexed server left: it records so
    there (storage.recovery.UNINDEXED), and the next indexed server adds the rows
    of what was stored meanwhile; a clean stop of the indexed server alone would
    have meant no check, and those objects unknown to every query."""
    paths = store_files(root, 1)
    with StorageIndex(root / INDEX_NAME) as index:
        index.add_instances([row_from_file(root, paths[1])])
        StopRecord(index).close(None)
    assert record(root) == CLOSED
    scp = StorageSCP(root, index=False)
    try:
        assert record(root) == recovery.UNINDEXED
        paths |= store_files(root, 2)  # what that server stored
    finally:
        scp.close()
    assert record(root) == recovery.UNINDEXED  # its close records nothing
    caplog.set_level(logging.INFO, "dicomnet.storage")
    scp = start_and_wait(root)
    try:
        assert sorted(rows_by_path(root)) == sorted(paths.values())
    finally:
        scp.close()
    assert record(root) == CLOSED
    assert said(caplog) == [
        (logging.INFO, START.format(root, recovery.REASONS[recovery.UNINDEXED], 3)),
        (logging.INFO, END.format(root, "ended", 1, 0, 0))]


def test_under_overwrite_a_copy_replaced_in_place_gets_its_row_updated(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """--duplicates overwrite, killed between an in-place overwrite's answer and its
    row (seen in a stress run: the row kept the old copy's size and syntax): the
    copy reads whole and is the row's instance, so its row is updated from it; a
    truncated file is still only said (its row may be the only true record)."""
    paths = killed_store(root, (1, 2, 3), indexed=(1, 2, 3))
    resize_two(root, paths)
    before = rows_by_path(root)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = start_and_wait(root, duplicates="overwrite")
    assert (scp.recovery.updated, scp.recovery.resized) == (1, [paths[3]])
    after = rows_by_path(root)
    assert after[paths[2]][6] == (root / paths[2]).stat().st_size != before[paths[2]][6]
    assert after[paths[3]] == before[paths[3]] and after[paths[1]] == before[paths[1]]
    with sqlite3.connect(root / INDEX_NAME) as db:
        assert db.execute("SELECT patient_name FROM patient").fetchall() == [
            ("Corrected^Name^Longer^Than^The^First",)]
    texts = [text for _, text in said(caplog)]
    assert (f"the index row of {paths[2]} updated from its file, a copy replaced in place "
            "(--duplicates overwrite) by a server stopped before its row") in texts
    assert any(text.startswith(f"1 index row(s) of {root} do not record their file's size: "
                               f"{paths[3]} (") for text in texts)
