"""reindex writes its rows in batches (a commit per row made 20,000 objects take
8.5 s), and an interruption (Ctrl-C, SIGTERM) leaves only rows of files that are
there, which a second run completes."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomnet.cli.exits import Terminated
from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage import reindex as reindex_module
from dicomnet.storage.files import StorageError
from dicomnet.storage.index import ReindexProgress, StorageIndex
from dicomnet.storage.index_tables import RowValues, insert_row
from dicomnet.storage.part10 import read_part10
from dicomnet.storage.rows import row_from_file
from tests.cli.helpers import error_line, json_out, run_cli
from tests.cli.test_reindex import _store
from tests.storage.dicomfiles import make_image, uid, write_part10

FILES = 10


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """FILES stored objects, none indexed."""
    root = tmp_path / "store"
    _store(root, *range(1, FILES + 1))
    return root


@pytest.fixture
def batches_of_3(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of three rows, never cut by time (however slow the machine)."""
    monkeypatch.setattr(reindex_module, "BATCH_ROWS", 3)
    monkeypatch.setattr(reindex_module, "BATCH_SECONDS", 3600.0)


def _statements(index: StorageIndex) -> list[str]:
    """Every SQL statement the index's connection runs from now on."""
    said: list[str] = []
    index._db.set_trace_callback(said.append)
    return said


def _commits(statements: list[str]) -> int:
    return sum(1 for s in statements if s.strip().upper() == "COMMIT")


def _indexed_paths(root: Path) -> list[str]:
    with sqlite3.connect(root / INDEX_NAME) as db:
        return sorted(p for (p,) in db.execute("SELECT relative_path FROM instance"))


def test_rows_are_written_a_batch_per_transaction(root: Path, batches_of_3: None) -> None:
    with StorageIndex(root / INDEX_NAME) as index:
        said = _statements(index)
        result = index.reindex(root)
        inserted = sum(1 for s in said if s.startswith("INSERT INTO instance"))
        assert (result.added, index.count()["instances"]) == (FILES, FILES)
    assert inserted == FILES
    assert _commits(said) == 4  # 3 + 3 + 3 + 1, not one per row


def test_a_batch_is_written_once_its_oldest_row_waited_batch_seconds(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files read slowly (over a network, say) are not held back for BATCH_ROWS:
    with no time to wait, each row is its own batch."""
    monkeypatch.setattr(reindex_module, "BATCH_SECONDS", 0.0)
    with StorageIndex(root / INDEX_NAME) as index:
        said = _statements(index)
        assert index.reindex(root).added == FILES
    assert _commits(said) == FILES


def test_the_default_batches_write_a_small_store_in_one_transaction(root: Path) -> None:
    with StorageIndex(root / INDEX_NAME) as index:
        said = _statements(index)
        assert index.reindex(root).added == FILES
    # One, or two should the machine stall past BATCH_SECONDS (0.25 s) midway.
    assert 1 <= _commits(said) <= 2


def test_rows_of_files_gone_are_removed_in_batches(root: Path, batches_of_3: None) -> None:
    with StorageIndex(root / INDEX_NAME) as index:
        index.reindex(root)
    for path in sorted(root.rglob("*.dcm"))[:7]:
        path.unlink()
    heard: list[ReindexProgress] = []
    with StorageIndex(root / INDEX_NAME) as index:
        said = _statements(index)
        result = index.reindex(root, on_progress=heard.append)
        assert (result.added, result.removed, index.count()["instances"]) == (0, 7, FILES - 7)
        assert index.count()["patients"] == FILES - 7  # each object its own patient
    assert _commits(said) == 3  # 3 + 3 + 1
    assert [p.removed for p in heard if p.removed] == [3, 6, 7]


def _interrupt_at(files: int, exc: type[KeyboardInterrupt] = KeyboardInterrupt,
                  ) -> tuple[list[ReindexProgress], object]:
    heard: list[ReindexProgress] = []

    def hear(progress: ReindexProgress) -> None:
        heard.append(progress)
        if progress.files == files:
            raise exc

    return heard, hear


def test_an_interruption_between_batches_keeps_the_committed_rows_only(
        root: Path, batches_of_3: None) -> None:
    heard, hear = _interrupt_at(7)  # rows 1-6 committed, the 7th's batch not yet
    with StorageIndex(root / INDEX_NAME) as index, pytest.raises(KeyboardInterrupt):
        index.reindex(root, on_progress=hear)  # type: ignore[arg-type]
    assert heard[-1] == ReindexProgress(7, 7, 0)  # read: seven, written: six
    indexed = _indexed_paths(root)
    assert len(indexed) == 6
    assert all((root / relative).is_file() for relative in indexed)
    with StorageIndex(root / INDEX_NAME) as index:  # the next run does the rest
        result = index.reindex(root)
        assert (result.added, result.removed, result.skipped) == (FILES - 6, 0, 0)
    assert _indexed_paths(root) == sorted(p.relative_to(root).as_posix()
                                          for p in root.rglob("*.dcm"))


def test_an_interruption_inside_a_batch_rolls_it_back_whole(
        root: Path, batches_of_3: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM (Terminated, as Ctrl-C) while the second batch's rows are being
    written: none of them is, the first batch's are."""
    inserted: list[RowValues] = []

    def insert_then_stop(db: sqlite3.Connection, values: RowValues,
                         previous: RowValues | None = None) -> None:
        insert_row(db, values, previous)
        inserted.append(values)
        if len(inserted) == 5:
            raise Terminated

    monkeypatch.setattr(reindex_module, "insert_row", insert_then_stop)
    with StorageIndex(root / INDEX_NAME) as index:
        with pytest.raises(Terminated):
            index.reindex(root)
        assert not index._db.in_transaction
    assert _indexed_paths(root) == sorted(v.instance[5] for v in inserted[:3])  # type: ignore[type-var]
    monkeypatch.undo()
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.reindex(root).added == FILES - 3
        assert index.count()["instances"] == FILES


def test_duplicates_within_a_batch_and_across_batches_keep_the_first(
        tmp_path: Path, batches_of_3: None) -> None:
    """Copies of one object under other names: the first read is indexed, the
    others skipped, whether its row is committed yet or still in the batch."""
    root = tmp_path / "store"
    ds = make_image(1)
    for name in ("a.dcm", "b.dcm", "c.dcm", "d.dcm", "e.dcm"):  # a, b, c: one batch
        write_part10(root / name, ds, "1.2.840.10008.1.2.1")
    write_part10(root / "f.dcm", make_image(2), "1.2.840.10008.1.2.1")
    with StorageIndex(root / INDEX_NAME) as index:
        result = index.reindex(root)
        assert (result.added, result.skipped) == (2, 4)
        assert index.locate(uid(9, 1)) == "a.dcm"
        assert index.locate(uid(9, 2)) == "f.dcm"


def test_damaged_files_are_skipped_and_the_batch_still_written(
        root: Path, batches_of_3: None, caplog: pytest.LogCaptureFixture) -> None:
    (root / "notes.txt").write_text("not DICOM")
    victim = sorted(root.rglob("*.dcm"))[4]
    victim.write_bytes(victim.read_bytes()[:200])  # cut inside its data set
    with StorageIndex(root / INDEX_NAME) as index, caplog.at_level(logging.INFO, "dicomnet"):
        result = index.reindex(root)
        assert (result.added, result.skipped) == (FILES - 1, 2)
        assert index.count()["instances"] == FILES - 1
    assert f"reindex: skipping {root / 'notes.txt'}" in caplog.text


def test_a_row_that_fails_alone_is_skipped_its_batch_written_row_by_row(
        root: Path, batches_of_3: None, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """An SQL error of one row (not the disk's) costs that file only, as it did
    when each row had its own transaction."""
    bad = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.dcm"))[4]

    def refuse_one(db: sqlite3.Connection, values: RowValues,
                   previous: RowValues | None = None) -> None:
        if values.instance[5] == bad:
            db.execute("SELECT no_such_column FROM instance")  # an error of this row
        insert_row(db, values, previous)

    monkeypatch.setattr(reindex_module, "insert_row", refuse_one)
    with StorageIndex(root / INDEX_NAME) as index, \
            caplog.at_level(logging.INFO, "dicomnet"):
        said = _statements(index)
        result = index.reindex(root)
    assert (result.added, result.skipped) == (FILES - 1, 1)
    assert bad not in _indexed_paths(root) and len(_indexed_paths(root)) == FILES - 1
    assert "reindex: a batch of 3 rows failed" in caplog.text
    assert f"reindex: skipping {root / bad}: index update failed" in caplog.text
    assert _commits(said) == 3 + 2  # batches 1, 3, 4 whole; batch 2 row by row


def test_a_lock_held_past_the_wait_stops_the_run_keeping_the_batches_written(
        root: Path, batches_of_3: None) -> None:
    """A write that no row escapes (another program's write lock held past the
    busy wait here; a full disk alike) stops reindex with the reason, where each
    file was skipped in turn, after a wait of its own."""
    holder = sqlite3.connect(root / INDEX_NAME, isolation_level=None)
    with StorageIndex(root / INDEX_NAME) as index:
        write = index._write
        batches = 0

        @contextlib.contextmanager
        def locked_from_the_second_batch() -> Iterator[sqlite3.Connection]:
            nonlocal batches
            batches += 1
            if batches == 2:
                index._db.execute("PRAGMA busy_timeout=0")  # no 30 s wait in a test
                holder.execute("BEGIN IMMEDIATE")
            with write() as db:
                yield db

        index._write = locked_from_the_second_batch  # type: ignore[method-assign]
        with pytest.raises(StorageError, match="database is locked"):
            index.reindex(root)
    holder.execute("ROLLBACK")
    holder.close()
    assert batches == 2
    assert len(_indexed_paths(root)) == 3


def test_the_cli_says_what_an_interrupted_reindex_kept(
        root: Path, batches_of_3: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def read_until_the_eighth(path: Path) -> object:
        calls.append(path)
        if len(calls) == 8:  # rows 1-6 written, the 7th in its batch
            raise KeyboardInterrupt
        return read_part10(path)

    monkeypatch.setattr(reindex_module, "read_part10", read_until_the_eighth)
    result = run_cli("reindex", "--create", root)
    assert result.exit_code == 130, result.output
    assert error_line(result) == (
        f"error: interrupted: the rows written so far are kept, each of a file read (the "
        f"index holds 6 instance(s), 0 before this run); 'dicomnet reindex {root}' again "
        "does the rest")
    assert result.stdout == ""
    monkeypatch.setattr(reindex_module, "read_part10", read_part10)
    again = run_cli("reindex", root)
    assert again.exit_code == 0, again.output
    assert again.stdout == (f"{root}: 4 row(s) added, 0 removed, 0 file(s) skipped; "
                            f"{FILES} instance(s) indexed\n")


def test_the_cli_says_so_on_sigterm_too_and_in_its_json(
        root: Path, batches_of_3: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with StorageIndex(root / INDEX_NAME) as index:
        index.add_instances([row_from_file(root, p.relative_to(root).as_posix())
                             for p in sorted(root.rglob("*.dcm"))[:2]])
    calls = []

    def read_until_the_sixth(path: Path) -> object:
        calls.append(path)
        if len(calls) == 6:  # one batch of three written, two rows lost
            raise Terminated
        return read_part10(path)

    monkeypatch.setattr(reindex_module, "read_part10", read_until_the_sixth)
    result = run_cli("reindex", root, "--json")
    assert result.exit_code == 143, result.output
    assert json_out(result) == {
        "error": "terminated (SIGTERM): the rows written so far are kept, each of a file "
                 "read (the index holds 5 instance(s), 2 before this run); "
                 f"'dicomnet reindex {root}' again does the rest",
        "exit_code": 143, "interrupted": True}


def test_a_file_moved_to_another_name_is_indexed_at_its_new_name_in_one_run(
        tmp_path: Path) -> None:
    """A file moved (its old name gone, its SOP Instance UID the indexed one's):
    its row follows it. Before, it was skipped as a duplicate of its own old row,
    which was then removed as a file gone: unindexed until a second run."""
    root = tmp_path / "store"
    paths = _store(root, 1, 2)
    with StorageIndex(root / INDEX_NAME) as index:
        index.add_instances([row_from_file(root, paths[1]), row_from_file(root, paths[2])])
    moved = root / "elsewhere" / "one.dcm"
    moved.parent.mkdir()
    (root / paths[1]).rename(moved)
    with StorageIndex(root / INDEX_NAME) as index:
        result = index.reindex(root)
    assert (result.added, result.removed, result.skipped) == (1, 1, 0)
    assert _indexed_paths(root) == sorted([paths[2], "elsewhere/one.dcm"])


def test_a_second_copy_of_an_indexed_file_is_still_a_duplicate(tmp_path: Path) -> None:
    """The indexed file still there: a copy under another name is skipped, and
    the row stays where it was."""
    root = tmp_path / "store"
    paths = _store(root, 1)
    with StorageIndex(root / INDEX_NAME) as index:
        index.add_instances([row_from_file(root, paths[1])])
    copy = root / "copy.dcm"
    copy.write_bytes((root / paths[1]).read_bytes())
    with StorageIndex(root / INDEX_NAME) as index:
        result = index.reindex(root)
    assert (result.added, result.removed, result.skipped) == (0, 0, 1)
    assert _indexed_paths(root) == [paths[1]]
