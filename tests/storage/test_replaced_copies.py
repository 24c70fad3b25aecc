"""Whether a stored object took the place of an earlier copy (``StoredInstance.replaced``,
``serve --json``'s ``replaced``): with ``overwrite`` nothing said so, the first copy
and a replacement alike reported as stored, and CommitOutcome.REPLACED was given
for every object stored under that policy, a first copy too."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP, StoredInstance, store_paths
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import make_image, uid, write_part10


def _image(tmp_path: Path, name: str, study: int = 1, rows: int = 32) -> Path:
    ds = make_image(1, rows=rows, columns=1000)
    ds.StudyInstanceUID = uid(1, study)
    return write_part10(tmp_path / f"{name}.dcm", ds, ExplicitVRLittleEndian)


def _told(root: Path, policy: str, rounds: list[list[Path]], *, index: bool = True
          ) -> list[tuple[bool, bool]]:
    """Each round on its own association; (replaced, duplicate) of every object."""
    told: list[tuple[bool, bool]] = []

    def on_stored(instance: StoredInstance) -> None:
        told.append((instance.replaced, instance.duplicate))

    async def main() -> None:
        scp = StorageSCP(root, duplicates=policy, index=index, on_stored=on_stored)
        try:
            async with running_server(providers=[scp]) as server:
                for paths in rounds:
                    results = await store_paths("127.0.0.1", server.port, paths)
                    assert [r.status for r in results] == [0] * len(paths)
        finally:
            scp.close()

    run(main(), timeout=60)
    return told


@pytest.mark.parametrize("rows", [32, 1100], ids=["in-memory", "spilled"])
@pytest.mark.parametrize("index", [True, False], ids=["indexed", "no-index"])
def test_overwrite_says_when_it_replaced_a_copy(tmp_path: Path, rows: int, index: bool,
                                                caplog: pytest.LogCaptureFixture) -> None:
    first = _image(tmp_path, "first", rows=rows)
    with caplog.at_level(logging.INFO, logger="dicomnet.services"):
        told = _told(tmp_path / "store", "overwrite", [[first], [first]], index=index)
    assert told == [(False, False), (True, False)]
    said = [r.getMessage() for r in caplog.records if "earlier copy" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"C-STORE {uid(9, 1)} from ")
    assert said[0].endswith(": an earlier copy replaced (duplicates policy overwrite)")


def test_a_copy_in_another_study_replaced(tmp_path: Path) -> None:
    """The same instance sent again under another study: stored at its new path,
    the copy at the old one removed, and said replaced."""
    root = tmp_path / "store"
    told = _told(root, "overwrite", [[_image(tmp_path, "a")], [_image(tmp_path, "b", 2)]])
    assert told == [(False, False), (True, False)]
    [stored] = root.rglob("*.dcm")
    assert dcmread(stored).StudyInstanceUID == uid(1, 2)


def test_keep_replaces_nothing(tmp_path: Path) -> None:
    first = _image(tmp_path, "first")
    assert _told(tmp_path / "store", "keep", [[first], [first]]) == [
        (False, False), (False, True)]
