"""reindex holds one folder's rows at a time, not the store's: it once kept every
indexed path with its size, and every path it walked, in Python memory (about
500 bytes a file: half a gigabyte for a million objects). What it must still do
across folders (rows of folders gone or not entered removed, the row of a file
moved to another folder following it) is checked here too."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage import reindex as reindex_module
from dicomnet.storage.files import Layout, StorageError
from dicomnet.storage.index import ReindexProgress, StorageIndex
from dicomnet.storage.index_tables import SCHEMA
from tests.storage.dicomfiles import make_image, uid, write_part10

PER_SERIES = 8


def _series_store(root: Path, series: int) -> list[str]:
    """``series`` series folders of PER_SERIES objects each, in one study, laid out
    as the SCP lays them out; their relative paths."""
    study = uid(77, 1)
    paths = []
    for number in range(1, series * PER_SERIES + 1):
        ds = make_image(number, rows=2, columns=2, study=study,
                        series=uid(77, 2, (number - 1) // PER_SERIES))
        path = Layout.HIERARCHICAL.destination(
            root, sop_instance_uid=ds.SOPInstanceUID, study_instance_uid=study,
            series_instance_uid=ds.SeriesInstanceUID)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_part10(path, ds, ExplicitVRLittleEndian)
        paths.append(path.relative_to(root).as_posix())
    return paths


def _indexed_paths(root: Path) -> list[str]:
    with sqlite3.connect(root / INDEX_NAME) as db:
        return sorted(p for (p,) in db.execute("SELECT relative_path FROM instance"))


def _reindex(root: Path) -> None:
    with StorageIndex(root / INDEX_NAME) as index:
        index.reindex(root)


#: Run in a process of its own: tracemalloc counts every thread's allocations, and
#: a thread another test left finishing its work (a server's index writer, a
#: sweep) once added 3.8 MB to a peak here.
_TRACED = """
import sys, tracemalloc
from pathlib import Path
from dicomnet.storage import reindex
from dicomnet.storage.index import StorageIndex
root, warm, batch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
reindex.BATCH_ROWS = batch
with StorageIndex(warm / "index.sqlite") as index:
    index.reindex(warm)  # imports and caches out of the figure
with StorageIndex(root / "index.sqlite") as index:
    tracemalloc.start()
    index.reindex(root)
    print(tracemalloc.get_traced_memory()[1])
"""


def _traced_peak(root: Path, warm: Path, batch_rows: int) -> int:
    """The peak of Python allocations of a reindex of ``root`` in a fresh process,
    after one of ``warm`` (the index open before: the connection's own
    allocations are not the walk's)."""
    assert INDEX_NAME == "index.sqlite"
    done = subprocess.run([sys.executable, "-c", _TRACED, str(root), str(warm),
                           str(batch_rows)],
                          check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.parametrize("change", ["none", "half gone"])
def test_a_store_four_times_larger_takes_no_more_memory(
        tmp_path: Path, change: str) -> None:
    """Stores of 25 and of 100 series folders (200 and 800 indexed objects), in
    one study: their reindex peaks within a margin that the old hold of every
    path (some 500 bytes each, 300 KB over the 600 more files) exceeds many
    times. Those whose files half went are pruned in batches, not a list of
    every path gone."""
    roots = {series: tmp_path / f"store{series}" for series in (3, 25, 100)}
    for series, root in roots.items():  # 3: a first run's caches (imports, say) out
        paths = _series_store(root, series)
        _reindex(root)
        if change == "half gone":
            for relative in paths[::2]:
                (root / relative).unlink()
    # Rows pruned 20 at a time (BATCH_ROWS), as a large store's would be.
    peaks = [_traced_peak(root, roots[3], 20) for root in (roots[25], roots[100])]
    half = 400 if change == "half gone" else 800
    assert len(_indexed_paths(roots[100])) == half
    # The study folder's listing grows (75 names more, some 16 KB): a folder's own.
    assert peaks[1] - peaks[0] < 64 * 1024, peaks


def test_rows_of_folders_not_walked_are_removed(tmp_path: Path) -> None:
    """A series folder removed, one hidden (the walk does not enter it), one whose
    only file left is hidden: the rows of each are removed, the others kept."""
    root = tmp_path / "store"
    paths = _series_store(root, 4)
    _reindex(root)
    folders = sorted({(root / p).parent for p in paths})
    for path in folders[0].iterdir():
        path.unlink()
    folders[0].rmdir()
    folders[1].rename(folders[1].with_name("." + folders[1].name))
    for path in sorted(folders[2].iterdir())[1:]:
        path.unlink()
    first = sorted(folders[2].iterdir())[0]
    first.rename(first.with_name("." + first.name))
    with StorageIndex(root / INDEX_NAME) as index:
        result = index.reindex(root)
    assert (result.added, result.removed, result.skipped) == (0, 3 * PER_SERIES, 0)
    assert _indexed_paths(root) == sorted(p for p in paths
                                          if (root / p).parent == folders[3])


def test_folders_whose_names_share_a_prefix_keep_their_own_rows(tmp_path: Path) -> None:
    """Rows are looked up by folder (a range of paths): ``x``, ``x0`` and ``x.y``,
    ``x/y`` below ``x``, and the root's own files are each their own."""
    root = tmp_path / "store"
    names = ["a.dcm", "x/b.dcm", "x/y/c.dcm", "x0/d.dcm", "x.y/e.dcm", "x/f.dcm"]
    for number, name in enumerate(names, 1):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_part10(root / name, make_image(number, rows=2, columns=2),
                     ExplicitVRLittleEndian)
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.reindex(root).added == len(names)
    (root / "x/b.dcm").unlink()
    (root / "x/y/c.dcm").unlink()
    (root / "x/f.dcm").write_bytes((root / "x/f.dcm").read_bytes() + b"\0\0")  # resized
    with StorageIndex(root / INDEX_NAME) as index:
        result = index.reindex(root)
    assert (result.added, result.removed, result.updated, result.skipped) == (0, 2, 1, 0)
    assert _indexed_paths(root) == sorted(["a.dcm", "x0/d.dcm", "x.y/e.dcm", "x/f.dcm"])


def test_a_file_moved_to_a_folder_walked_before_its_own_keeps_its_row(
        tmp_path: Path) -> None:
    """The moved file read first, in a folder walked before its old one: the row
    follows it (counted removed and added, as a move always was), and its old
    folder's walk, later, removes nothing more."""
    root = tmp_path / "store"
    paths = _series_store(root, 2)
    _reindex(root)
    last = root / paths[-1]
    early = root / "0-early"  # walked before the study folder (sorted names)
    early.mkdir()
    last.rename(early / last.name)
    heard: list[ReindexProgress] = []
    with StorageIndex(root / INDEX_NAME) as index:
        result = index.reindex(root, on_progress=heard.append)
    assert (result.added, result.removed, result.skipped) == (1, 1, 0)
    assert f"0-early/{last.name}" in _indexed_paths(root)
    assert len(_indexed_paths(root)) == len(paths)
    assert heard[-1].files == len(paths) - 1  # the progress before the last file


def test_no_scratch_table_is_left_and_none_made_without_pruning(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _series_store(root, 2)
    with StorageIndex(root / INDEX_NAME) as index:
        said: list[str] = []
        index._db.set_trace_callback(said.append)
        index.reindex(root, prune=False)
        assert not any("TEMP" in s.upper() for s in said)
        index.reindex(root)
        assert index._db.execute("SELECT name FROM temp.sqlite_master").fetchall() == []


def test_the_queries_of_a_folder_and_of_rows_gone_search_the_path_index() -> None:
    """A folder's rows are one range of the relative_path index (not a scan of
    the store's rows per folder); the rows gone are found walking it once."""
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    reindex_module.make_scratch(db)
    folder = {"after": "a/x", "end": "a0", "cut": 3, "limit": 5}
    plans = [" ".join(str(r[3]) for r in db.execute("EXPLAIN QUERY PLAN " + sql, params))
             for sql, params in (
                 (reindex_module.FOLDER_ROWS_SQL.format(reindex_module._IN_FOLDER), folder),
                 (reindex_module.GONE_ROWS_SQL, ("", 5)))]
    assert plans[0].startswith("SEARCH instance USING INDEX"), plans
    assert "(relative_path>? AND relative_path<?)" in plans[0], plans
    assert plans[1].startswith("SEARCH instance USING COVERING INDEX"), plans
    assert "SCAN" not in " ".join(plans)


def test_a_failing_temporary_table_is_a_storage_error_and_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's temporary folder full, say: the run stops with StorageError (the
    CLI's "cannot reindex"), not sqlite3's own, and leaves no table behind."""
    root = tmp_path / "store"
    _series_store(root, 1)
    monkeypatch.setattr(reindex_module, "_SCRATCH",
                        ("reindex_folder (folder TEXT PRIMARY KEY, more TEXT NOT NULL)",
                         "reindex_gone (relative_path TEXT PRIMARY KEY)"))
    with StorageIndex(root / INDEX_NAME) as index:
        with pytest.raises(StorageError, match="reindex's temporary tables failed"):
            index.reindex(root)
        assert index._db.execute("SELECT name FROM temp.sqlite_master").fetchall() == []


def _flat_store(root: Path, count: int) -> list[str]:
    """``count`` objects in the root itself (``--layout flat``); their names."""
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for number in range(1, count + 1):
        ds = make_image(number, rows=2, columns=2, study=uid(78, 1), series=uid(78, 2))
        path = Layout.FLAT.destination(
            root, sop_instance_uid=ds.SOPInstanceUID, study_instance_uid=uid(78, 1),
            series_instance_uid=uid(78, 2))
        write_part10(path, ds, ExplicitVRLittleEndian)
        names.append(path.name)
    return names


@pytest.mark.parametrize("change", ["none", "half gone"])
def test_a_flat_store_four_times_larger_holds_no_more_rows(tmp_path: Path, change: str) -> None:
    """Flat stores (every file in the root) of 300 and 1200 objects: their reindex
    peaks differ by the root's listing only (names of some 60 characters, about
    120 bytes each with the list's pointers: 108 KB for the 900 more), not by its
    rows too (the old snapshot of the folder's paths and sizes, and the set of
    its paths walked, some 300 bytes a file more: 270 KB)."""
    roots = {count: tmp_path / f"flat{count}" for count in (30, 300, 1200)}
    for count, root in roots.items():
        names = _flat_store(root, count)
        _reindex(root)
        if change == "half gone":
            for name in names[::2]:
                (root / name).unlink()
    peaks = [_traced_peak(root, roots[30], 20) for root in (roots[300], roots[1200])]
    assert len(_indexed_paths(roots[1200])) == (600 if change == "half gone" else 1200)
    assert peaks[1] - peaks[0] < 160 * 1024, peaks
