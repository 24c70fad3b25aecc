"""rm -rf of the store's folder while an object is on its way to its name, after
the store checked its folder (StorageSCP._follow_root) and before the name."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import run, running_server
from tests.storage.helpers import indexed_uids
from tests.storage.test_store_lock import _files, _objects, _store


def _removed_after_the_check(monkeypatch: pytest.MonkeyPatch, root: Path) -> list[bool]:
    """Arm (set the flag) to remove ``root`` right after the next folder check."""
    real = StorageSCP._follow_root
    armed = [False]

    def follow(self: StorageSCP) -> None:
        real(self)
        if armed[0]:
            armed[0] = False
            shutil.rmtree(root)

    monkeypatch.setattr(StorageSCP, "_follow_root", follow)
    return armed


def _scenario(root: Path, scp: StorageSCP, armed: list[bool], objects: list[Dataset],
              caplog: pytest.LogCaptureFixture) -> list[int]:
    first, second, third = objects

    async def scenario() -> list[int]:
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            statuses = await _store(server.port, [first])
            scp.flush_index()
            armed[0] = True
            with caplog.at_level(logging.WARNING, logger="dicomnet"):
                statuses += await _store(server.port, [second])
                scp.flush_index()
                statuses += await _store(server.port, [third])
                scp.flush_index()
            return statuses

    try:
        return run(scenario(), timeout=60)
    finally:
        scp.close()


def test_an_object_named_into_the_folder_made_again_gets_its_row(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Its name made the folder again (its parents are made as needed), without the
    lock and the new index the folder check gives: its row went to the removed
    index, dropped as "their objects gone with the folder" though its file was
    there. The store checks the folder again once the round's names are given."""
    root = tmp_path / "store"
    objects = _objects(3)
    statuses = _scenario(root, StorageSCP(root), _removed_after_the_check(monkeypatch, root),
                         objects, caplog)
    assert statuses == [0, 0, 0]
    kept = sorted(ds.SOPInstanceUID for ds in objects[1:])
    assert _files(root) == [f"{uid}.dcm" for uid in kept]
    assert indexed_uids(root / "index.sqlite") == kept
    said = [r.getMessage() for r in caplog.records]
    assert not [line for line in said if "gone with the folder" in line], said
    assert [line for line in said if "was removed while in use" in line], said


def test_a_spilled_object_whose_temporary_file_went_is_a_processing_failure(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Its temporary file (in the store's folder) removed with it: answered 0xC000
    ("data set cannot be parsed: [Errno 2] ..."), which tells the sender that the
    data set is at fault, not to send it again. Now 0x0110, the store's failure."""
    root = tmp_path / "store"
    objects = _objects(3, large=True)
    statuses = _scenario(root, StorageSCP(root), _removed_after_the_check(monkeypatch, root),
                         objects, caplog)
    assert statuses == [0, 0x0110, 0]
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("C-STORE")]
    assert len(said) == 1 and "refused, status 0x0110: cannot store: its temporary file is " \
        "gone (No such file or directory)" in said[0], said


def test_a_read_error_of_a_spilled_object_is_not_called_a_gone_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Any other OSError reading the spilled file (EIO, EMFILE) is the store's failure
    too (0x0110), but said as it is: the file is there."""
    import errno

    from dicomnet.services import store_disk
    from dicomnet.storage.header import read_header

    def failing(data: object, path: str | None, syntax: str) -> object:
        if path is not None:
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        return read_header(data, path, syntax)  # type: ignore[arg-type]

    monkeypatch.setattr(store_disk, "read_header", failing)
    root = tmp_path / "store"
    statuses = _scenario(root, StorageSCP(root), [False], _objects(3, large=True), caplog)
    assert statuses == [0x0110] * 3
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("C-STORE")]
    assert said and all("refused, status 0x0110: cannot store: its temporary file cannot "
                        "be read (Input/output error)" in s for s in said), said
