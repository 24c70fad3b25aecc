"""A folder's rows are read a chunk at a time, in the order of its files' names
(storage.reindex.FolderRows), not held at once: a flat store's root holds every
row. Reindex and the check after an unclean stop (storage.recovery) merge the
two orders; each case here crosses chunks of three rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage import reindex as reindex_module
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.recovery import RowRecovery
from dicomnet.storage.reindex import FolderRows
from dicomnet.storage.rows import row_from_file
from tests.storage.dicomfiles import make_image, write_part10

#: Root files, and files of folders whose paths sort among theirs ("b.dcm" <
#: "b/..." < "b0.dcm"; "b.x/" before "b/"): read past in the root's chunks.
NAMES = ["a.dcm", "b.dcm", "b.x/c.dcm", "b/d.dcm", "b/e.dcm", "b0.dcm", "c.dcm", "d.dcm",
         "e.dcm", "f.dcm", "g.dcm", "h.dcm", "i.dcm", "j.dcm", "k.dcm", "l.dcm", "é.dcm"]


@pytest.fixture(autouse=True)
def chunks_of_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reindex_module, "BATCH_ROWS", 3)
    monkeypatch.setattr(reindex_module, "BATCH_SECONDS", 3600.0)


def _write(root: Path, names: list[str], first: int = 1) -> None:
    for number, name in enumerate(names, first):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_part10(root / name, make_image(number, rows=2, columns=2),
                     ExplicitVRLittleEndian)


def _paths(root: Path) -> list[str]:
    with sqlite3.connect(root / INDEX_NAME) as db:
        return sorted(p for (p,) in db.execute("SELECT relative_path FROM instance"))


def test_rows_of_a_flat_root_are_compared_a_chunk_at_a_time(tmp_path: Path) -> None:
    """Rows gone before, between and after the files left, in the root and in
    folders whose paths sort among the root's; files added between them; one
    resized: each counted once, every other row kept."""
    root = tmp_path / "store"
    _write(root, NAMES)
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.reindex(root).added == len(NAMES)
    # Past the last file (f.dcm) more rows than a chunk: removed by SQL.
    gone = ["a.dcm", "b/d.dcm", "c.dcm", "d.dcm", "e.dcm", "g.dcm", "h.dcm", "i.dcm", "j.dcm",
            "k.dcm", "l.dcm", "é.dcm"]
    for name in gone:
        (root / name).unlink()
    added = ["b1.dcm", "d0.dcm", "ee.dcm"]
    _write(root, added, first=100)
    (root / "f.dcm").write_bytes((root / "f.dcm").read_bytes() + b"\0\0")
    with StorageIndex(root / INDEX_NAME) as index:
        said: list[str] = []
        index._db.set_trace_callback(said.append)
        result = index.reindex(root)
    assert (result.added, result.removed, result.updated, result.skipped) == (3, 12, 1, 0)
    assert _paths(root) == sorted(set(NAMES) - set(gone) | set(added))
    # The root's rows were read in chunks ("LIMIT 3"), not all at once.
    assert sum("relative_path > '" in s and "LIMIT 3" in s for s in said) >= 3, said


def test_folder_rows_hold_a_chunk_and_pass_over_rows_without_files(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _write(root, NAMES)
    with StorageIndex(root / INDEX_NAME) as index:
        index.reindex(root)
        rows = FolderRows(index, "", chunk=2)
        passed: list[str] = []
        size = (root / "f.dcm").stat().st_size
        assert rows.size("a0.dcm", passed.append) is None
        assert rows.size("f.dcm", passed.append) == size
        assert len(rows._rows) <= 2
        assert rows.size("zz.dcm", passed.append) is None
        assert passed == ["a.dcm", "b.dcm", "b0.dcm", "c.dcm", "d.dcm", "e.dcm", "g.dcm",
                          "h.dcm", "i.dcm", "j.dcm", "k.dcm", "l.dcm"]
        assert FolderRows(index, "b/", chunk=1).size("b/e.dcm") == (
            root / "b/e.dcm").stat().st_size


def test_the_check_after_an_unclean_stop_finds_a_flat_roots_missing_rows(
        tmp_path: Path) -> None:
    root = tmp_path / "store"
    _write(root, NAMES)
    missing = ["a.dcm", "b0.dcm", "e.dcm", "h.dcm", "é.dcm"]
    with StorageIndex(root / INDEX_NAME) as index:
        index.add_instances([row_from_file(root, name) for name in NAMES
                             if name not in missing])
        check = RowRecovery(root, index, "stopped without closing")
        assert check.wait(30)
        assert (check.added, check.left, check.unreadable) == (len(missing), 0, 0)
    assert _paths(root) == sorted(NAMES)
