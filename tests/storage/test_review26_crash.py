"""Review 26, crash consistency of a store: what a server killed at the wrong moment
leaves, and what ``dicomnet reindex`` makes of it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.rows import row_from_file
from tests.cli.helpers import json_out, run_cli
from tests.cli.test_reindex import _store
from tests.storage.dicomfiles import make_image, write_part10


def _rows(root: Path) -> dict[str, int]:
    with sqlite3.connect(root / INDEX_NAME) as db:
        return dict(db.execute("SELECT relative_path, size FROM instance").fetchall())


def _replaced_after_its_row(root: Path) -> tuple[str, int]:
    """Object 1 stored and indexed, then a larger copy of it (same SOP Instance
    UID, more rows of pixels) renamed over its file and the server killed before
    its row followed: what ``dicomnet serve --duplicates overwrite`` (or a
    damaged copy replaced under any policy) leaves when SIGKILL lands between
    AtomicWriter.commit's rename and the index's background write. Its path
    and the new size."""
    relative = _store(root, 1)[1]
    with StorageIndex(root / INDEX_NAME) as index:
        index.add_instances([row_from_file(root, relative)])
    path = root / relative
    write_part10(path.with_name(".new"), make_image(1, rows=64), ExplicitVRLittleEndian)
    os.replace(path.with_name(".new"), path)
    return relative, path.stat().st_size


def test_reindex_updates_the_row_of_a_file_replaced_after_it(tmp_path: Path) -> None:
    root = tmp_path / "store"
    relative, size = _replaced_after_its_row(root)
    assert _rows(root)[relative] != size  # the killed server's row: the old copy's size

    result = run_cli("reindex", "--json", root)

    assert result.exit_code == 0, result.output
    doc = json_out(result)
    assert (doc["added"], doc["removed"], doc["updated"]) == (0, 0, 1)
    assert _rows(root) == {relative: size}
    again = json_out(run_cli("reindex", "--json", root))
    assert (again["added"], again["removed"], again["updated"]) == (0, 0, 0)


def test_reindex_says_the_rows_it_updated(tmp_path: Path) -> None:
    root = tmp_path / "store"
    relative, size = _replaced_after_its_row(root)

    result = run_cli("reindex", root)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        f"{root}: 0 row(s) added, 0 removed, 1 updated (a file changed since its row "
        f"was written); 0 file(s) skipped; 1 instance(s) indexed")
    assert _rows(root) == {relative: size}
