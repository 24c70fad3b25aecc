"""A store's folder over its life, as an operator runs it: servers started in
the wrong place, indexes that are not this version's, what a kill -9 left."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dicomnet.services.storage import StorageSCP
from dicomnet.storage.files import TEMP_SUFFIX, StorageError
from tests.cli.helpers import error_line, json_out, run_cli
from tests.storage.dicomfiles import uid

STUDY, SERIES = uid(25, 1), uid(25, 2)


def test_a_server_in_a_study_folder_of_a_store_in_use_is_refused(tmp_path: Path) -> None:
    """``dicomnet serve -o archive/<study>`` while archive's server runs: the new
    server's index in the study folder made it a store of its own, which
    archive's reindex then skipped, dropping the rows of every object in that
    study (they were still there, stored by archive's server)."""
    outer = tmp_path / "archive"
    study = outer / STUDY / SERIES
    running = StorageSCP(outer)
    try:
        # Made once it runs: its start-up cleanup removes empty study folders (and
        # a refused server no longer makes them again).
        study.mkdir(parents=True)
        for inner in (outer / STUDY, study):
            with pytest.raises(StorageError) as caught:
                StorageSCP(inner)
            assert str(caught.value) == (
                f"{inner}: inside {outer / STUDY}, a study folder of the store {outer}, in "
                f"use by another StorageSCP of this process (process {os.getpid()}; close "
                f"it first): its server stores there; give a folder outside it")
        assert sorted(p.name for p in (outer / STUDY).iterdir()) == [SERIES]
        assert list(study.iterdir()) == []
        # The CLI says it in one line, exit 2; reindex --create makes no index there.
        result = run_cli("serve", "--port", 0, "--output", outer / STUDY)
        assert result.exit_code == 2, result.output
        assert error_line(result).startswith(
            f"error: cannot store into --output {outer / STUDY}: inside {outer / STUDY}, "
            f"a study folder of the store {outer}, in use by")
        result = run_cli("reindex", "--create", study)
        assert result.exit_code == 2, result.output
        assert error_line(result).startswith(f"error: cannot reindex {study}: inside")
        assert list(study.iterdir()) == []
        # A store of its own beside the studies (one per modality, say) is still one.
        StorageSCP(outer / "ct").close()
    finally:
        running.close()
    # Nobody serves the archive now: its folders are anyone's.
    StorageSCP(outer / STUDY).close()


def test_a_study_folder_of_a_store_another_process_serves_names_it(tmp_path: Path) -> None:
    outer = tmp_path / "archive"
    (outer / STUDY).mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from dicomnet.storage.lock import StoreLock; "
         f"lock = StoreLock({str(outer)!r}); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StorageError) as caught:
            StorageSCP(outer / STUDY)
        assert str(caught.value) == (
            f"{outer / STUDY}: inside {outer / STUDY}, a study folder of the store {outer}, "
            f"in use by another dicomnet process (process {holder.pid}): its server stores "
            f"there; give a folder outside it")
    finally:
        holder.communicate("", timeout=30)


def _index_with(folder: Path, *statements: str) -> Path:
    """A store's folder whose index.sqlite is made by these SQL statements."""
    folder.mkdir()
    db = sqlite3.connect(folder / "index.sqlite")
    try:
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()
    return folder


@pytest.mark.parametrize(("statements", "said"), [
    # A newer dicomnet's index: use that one (or build one this version reads).
    (("CREATE TABLE schema_version (version INTEGER NOT NULL)",
      "INSERT INTO schema_version VALUES (2)"),
     "has schema version 2, of a newer dicomnet (this one reads version 1): use that one, "
     "or move it aside"),
    # Its version row gone: it said 'schema version None, expected 1'.
    (("CREATE TABLE schema_version (version INTEGER NOT NULL)",),
     "has no schema version, not 1, which this dicomnet reads: move it aside"),
    # Tables but no version table: it said 'table patient already exists'.
    (("CREATE TABLE patient (patient_id TEXT PRIMARY KEY)",
      "CREATE TABLE study (study_uid TEXT PRIMARY KEY)"),
     "is not a dicomnet index (it has no schema version; its tables: patient, study): "
     "move it aside"),
    # Another program's database under that name: dicomnet's tables were added to it.
    (("CREATE TABLE settings (key TEXT, value TEXT)",),
     "is not a dicomnet index (it has no schema version; its tables: settings): "
     "move it aside"),
])
def test_an_index_this_version_does_not_read_says_what_to_do(
        tmp_path: Path, statements: tuple[str, ...], said: str) -> None:
    folder = _index_with(tmp_path / "store", *statements)
    index = folder / "index.sqlite"
    before = index.read_bytes()
    aside = (f"{said}, then 'dicomnet reindex --create {folder}' builds a new one from "
             "the files")
    with pytest.raises(StorageError) as caught:
        StorageSCP(folder)
    assert str(caught.value) == f"index {index} {aside}"
    for result, command in ((run_cli("serve", "--port", 0, "--output", folder), "serve"),
                            (run_cli("reindex", folder), "reindex")):
        assert result.exit_code == 2, result.output
        assert error_line(result).endswith(f"index {index} {aside}"), command
        assert "Traceback" not in result.stderr
    db = sqlite3.connect(index)
    try:
        tables = [name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    finally:
        db.close()
    assert "instance" not in tables
    assert index.read_bytes() == before  # not even made WAL


def test_reindex_removes_and_counts_what_interrupted_stores_left(tmp_path: Path) -> None:
    """After a kill -9 during two transfers, reindex (the server stopped) said
    nothing of their temporary files, 64 MiB each here, left hidden until a
    server started there again."""
    root = tmp_path / "store"
    StorageSCP(root).close()
    series = root / STUDY / SERIES
    series.mkdir(parents=True)
    parts = [root / f".0123456789abcdef{TEMP_SUFFIX}", series / f".fedcba9876543210{TEMP_SUFFIX}"]
    for part in parts:
        part.write_bytes(b"half a data set")
    kept = root / "notes.txt"
    kept.write_text("not a temporary file")
    result = run_cli("reindex", root, "--json")
    assert result.exit_code == 0, result.output
    document = json_out(result)
    assert (document["temporaries_removed"], document["skipped"]) == (2, 1)
    assert not any(part.exists() for part in parts)
    assert not (root / STUDY).exists()  # emptied: removed, as the server's start does
    assert kept.read_text() == "not a temporary file"
    parts[0].write_bytes(b"half a data set")
    result = run_cli("reindex", root)
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"{root}: 0 row(s) added, 0 removed, 1 file(s) skipped; "
                             "0 instance(s) indexed; 1 stale temporary file(s) removed\n")
    assert not parts[0].exists()
