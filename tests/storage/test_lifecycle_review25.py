"""A store's folder over its life, as an operator runs it: servers started in
the wrong place, indexes that are not this version's, what a kill -9 left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dicomnet.services.storage import StorageSCP
from dicomnet.storage.files import StorageError
from tests.cli.helpers import error_line, run_cli
from tests.storage.dicomfiles import uid

STUDY, SERIES = uid(25, 1), uid(25, 2)


def test_a_server_in_a_study_folder_of_a_store_in_use_is_refused(tmp_path: Path) -> None:
    """``dicomnet serve -o archive/<study>`` while archive's server runs: the new
    server's index in the study folder made it a store of its own, which
    archive's reindex then skipped, dropping the rows of every object in that
    study (they were still there, stored by archive's server)."""
    outer = tmp_path / "archive"
    study = outer / STUDY / SERIES
    study.mkdir(parents=True)
    running = StorageSCP(outer)
    try:
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
