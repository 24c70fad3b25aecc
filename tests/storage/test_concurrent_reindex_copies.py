"""Two whole copies of one instance under different paths, as ``dicomnet serve
--duplicates overwrite`` killed (kill -9) while concurrent senders overwrote an
instance under another study or series leaves them: the new copy named (and
perhaps answered Success), its row not yet written and the copy it replaced not
yet removed (storage.instances removes it only once the index names the new
one). Seen in the s27 concurrency review: 9 senders, 300 shared SOP Instance
UIDs, a kill mid-burst left 1 to 5 instances with 2 or 3 files each.

reindex used to count the unindexed copy as skipped and say nothing, at any
verbosity: the operator never learnt that a store held an instance twice, one
copy unindexed (a file without row, forever: a resend does not find it). It now
says so at WARNING, naming both paths; which copy to keep is the operator's
call (reindex changes no file of the archive unless asked to)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage.files import Layout
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.rows import row_from_file
from tests.cli.helpers import run_cli
from tests.storage.dicomfiles import make_image, uid, write_part10


def _copy(root: Path, series: str, comment: str) -> str:
    """Instance 1 stored under ``series`` (its own data set: another comment)."""
    ds = make_image(1)
    ds.SeriesInstanceUID = series
    ds.ImageComments = comment
    path = Layout.HIERARCHICAL.destination(
        root, sop_instance_uid=ds.SOPInstanceUID, study_instance_uid=ds.StudyInstanceUID,
        series_instance_uid=series)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_part10(path, ds, ExplicitVRLittleEndian)
    return path.relative_to(root).as_posix()


def _rows(root: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(root / INDEX_NAME) as db:
        return sorted(db.execute("SELECT sop_instance_uid, relative_path FROM instance"))


@pytest.fixture
def killed_overwrite(tmp_path: Path) -> tuple[Path, str, str]:
    """The indexed copy (the one replaced) and the unindexed one that replaced it."""
    root = tmp_path / "store"
    old = _copy(root, uid(3, 1), "first sender")
    with StorageIndex(root / INDEX_NAME) as index:
        index.add_instances([row_from_file(root, old)])
    new = _copy(root, uid(3, 2), "second sender, answered Success")
    return root, old, new


def test_reindex_names_an_unindexed_second_copy_of_an_indexed_instance(
        killed_overwrite: tuple[Path, str, str], caplog: pytest.LogCaptureFixture) -> None:
    root, old, new = killed_overwrite
    with caplog.at_level(logging.WARNING, logger="dicomnet.storage"), \
            StorageIndex(root / INDEX_NAME) as index:
        result = index.reindex(root)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [line for line in said if old in line and new in line and uid(9, 1) in line], said
    # Nothing else changes: the indexed copy keeps its row, no file is removed.
    assert (result.added, result.removed, result.updated, result.skipped) == (0, 0, 0, 1)
    assert _rows(root) == [(uid(9, 1), old)]
    assert (root / old).is_file() and (root / new).is_file()


def test_reindex_names_two_unindexed_copies_of_one_instance(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Both rows lost (killed before either was written): the copy read first is
    indexed, the other one named."""
    root = tmp_path / "store"
    first, second = _copy(root, uid(3, 1), "one"), _copy(root, uid(3, 2), "two")
    with caplog.at_level(logging.WARNING, logger="dicomnet.storage"), \
            StorageIndex(root / INDEX_NAME) as index:
        result = index.reindex(root)
    assert (result.added, result.skipped) == (1, 1)
    (indexed,) = [path for _, path in _rows(root)]
    other = second if indexed == first else first
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [line for line in said if indexed in line and other in line], said


def test_cli_reindex_says_it_on_stderr(killed_overwrite: tuple[Path, str, str]) -> None:
    root, old, new = killed_overwrite
    result = run_cli("reindex", root)
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if old in line and new in line], \
        result.stderr
