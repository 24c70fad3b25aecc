"""A server refused its store's folder leaves the file system as it was.

StorageSCP made its ``--output`` folder (and the missing folders above it) before
taking the store's lock, so a refused start (the folder inside a study folder of
a store in use: storage.lock) left those folders behind, empty. They are now
removed on refusal; folders that were there stay.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomnet.services.storage import StorageSCP
from dicomnet.storage.files import StorageError
from tests.cli.helpers import error_line, run_cli
from tests.storage.helpers import tree

STUDY = "1.2.826.0.1.3680043.8.498.1.1"


@pytest.mark.parametrize("missing", [
    f"{STUDY}/new",  # the study folder, then the new one
    f"{STUDY}/new/deeper",
    "new",  # the study folder is there already: only "new" was made
])
def test_a_refused_scp_makes_no_folder(tmp_path: Path, missing: str) -> None:
    root = tmp_path / "store"
    held = StorageSCP(root)
    try:
        if missing == "new":
            (root / STUDY).mkdir()
            output = root / STUDY / missing
        else:
            output = root / missing
        before = tree(tmp_path)
        with pytest.raises(StorageError, match="a study folder of the store"):
            StorageSCP(output)
        assert tree(tmp_path) == before
    finally:
        held.close()


def test_serve_refused_leaves_no_folder(tmp_path: Path) -> None:
    root = tmp_path / "store"
    held = StorageSCP(root)
    try:
        before = tree(tmp_path)
        output = root / STUDY / "ct"
        result = run_cli("serve", "--port", 0, "--output", output, "--json")
        assert result.exit_code == 2, result.output
        assert error_line(result).startswith(f"error: cannot store into --output {output}: "
                                             f"inside {root / STUDY}, a study folder")
        assert tree(tmp_path) == before
    finally:
        held.close()


def test_a_refused_scp_keeps_a_folder_that_was_there(tmp_path: Path) -> None:
    root = tmp_path / "store"
    held = StorageSCP(root)
    try:
        (root / STUDY / "kept").mkdir(parents=True)
        with pytest.raises(StorageError):
            StorageSCP(root / STUDY / "kept")
        assert (root / STUDY / "kept").is_dir()
    finally:
        held.close()
