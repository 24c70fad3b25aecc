"""``dicomnet reindex`` says how far it is on a terminal: a store of many thousand
files takes minutes, which must not pass in silence (nor in --json's stdout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage.index import ReindexProgress, StorageIndex
from dicomnet.storage.rows import row_from_file

from .helpers import json_out, run_cli
from .test_reindex import _store


def _store_of(tmp_path: Path) -> Path:
    """Three objects without rows, and the row of a fourth whose file is gone."""
    root = tmp_path / "store"
    paths = _store(root, 1, 2, 3, 4)
    with StorageIndex(root / INDEX_NAME) as index:
        index.add_instances([row_from_file(root, paths[4])])
    (root / paths[4]).unlink()
    return root


def test_reindex_reports_each_file_read_and_each_row_removed(tmp_path: Path) -> None:
    root = _store_of(tmp_path)
    heard: list[ReindexProgress] = []
    with StorageIndex(root / INDEX_NAME) as index:
        result = index.reindex(root, on_progress=heard.append)
    assert (result.added, result.removed) == (3, 1)
    assert heard == [ReindexProgress(0, 0, 0), ReindexProgress(1, 1, 0),
                     ReindexProgress(2, 2, 0), ReindexProgress(3, 3, 0, 1)]


def test_reindex_on_a_terminal_shows_its_progress_on_stderr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _store_of(tmp_path)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: a terminal
    result = run_cli("reindex", root)
    assert result.exit_code == 0, result.stderr
    assert "3 file(s) read: 3 row(s) added, 0 skipped; 1 row(s) of files gone removed" \
        in result.stderr
    assert result.stdout == (f"{root}: 3 row(s) added, 1 removed, 0 file(s) skipped; "
                             "3 instance(s) indexed\n")


def test_reindex_json_shows_no_progress(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = _store_of(tmp_path)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: a terminal
    result = run_cli("reindex", root, "--json")
    assert result.exit_code == 0, result.stderr
    assert "read" not in result.stderr
    assert json_out(result)["added"] == 3
