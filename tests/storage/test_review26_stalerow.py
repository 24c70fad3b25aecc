"""A sound copy under a stale index row is kept, and its row made to say what it is.

A server killed between renaming a new copy over an old one and writing its row
keeps the old copy's row (size, transfer syntax); an operator may replace a file
by hand with a sound copy of another size. The running server compared the next
duplicate's stored copy with that row only (storage.damage: its size), took the
intact file for damaged and replaced it, said at WARNING: ``keep`` broken, a
sound copy (another transfer syntax) lost. Now a size that differs is confirmed
with a Part 10 look at the file (whole, and the instance's): a sound copy is
kept per the policy and its row read back from it; a damaged one is still
replaced.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME, StorageSCP, StoredInstance, store_paths
from dicomnet.storage.index import StorageIndex
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import make_image, uid, write_part10

UID = uid(9, 1)


def _image(tmp_path: Path, rows: int, syntax: str = ExplicitVRLittleEndian,
           number: int = 1) -> Path:
    ds = make_image(number, rows=rows, columns=1000)
    ds.StudyInstanceUID = uid(1, 1)
    return write_part10(tmp_path / f"image-{rows}-{number}-{syntax}.dcm", ds, syntax)


def _send(root: Path, path: Path, policy: str) -> tuple[int, StoredInstance | None]:
    """``path`` on one association to a server started for it; its status and what
    the server told of it."""
    told: list[StoredInstance] = []

    async def main() -> int:
        scp = StorageSCP(root, duplicates=policy, on_stored=told.append)
        try:
            async with running_server(providers=[scp]) as server:
                [result] = await store_paths("127.0.0.1", server.port, [path],
                                             called_ae_title="DICOMNET-SCP")
                assert result.status is not None
                return result.status
        finally:
            scp.close()

    status = run(main(), timeout=60)
    return status, (told[0] if told else None)


def _row(root: Path) -> tuple[str, int, str]:
    with StorageIndex(root / INDEX_NAME) as index:
        row = index.get_instance(UID)
        assert row is not None
        return row.relative_path, row.size, row.transfer_syntax_uid


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stored(tmp_path: Path, rows: int) -> tuple[Path, Path, Path]:
    """The store's root, the image sent, and its stored copy."""
    root = tmp_path / "store"
    image = _image(tmp_path, rows)
    assert _send(root, image, "keep")[0] == 0
    [stored] = sorted(root.rglob("*.dcm"))
    return root, image, stored


@pytest.mark.parametrize("rows", [32, 1100], ids=["in-memory", "spilled"])
@pytest.mark.parametrize(("policy", "status"), [("keep", 0), ("reject", 0x0111)])
def test_a_sound_copy_in_another_syntax_is_kept_and_its_row_updated(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, rows: int, policy: str,
        status: int) -> None:
    """The stored copy replaced by a sound one in Implicit VR (another size) while
    the row still says Explicit VR: a crash between rename and row, or by hand."""
    root, image, stored = _stored(tmp_path, rows)
    relative = stored.relative_to(root).as_posix()
    explicit_size = stored.stat().st_size
    stored.write_bytes(_image(tmp_path, rows, ImplicitVRLittleEndian).read_bytes())
    implicit = _digest(stored)
    implicit_size = stored.stat().st_size
    assert implicit_size != explicit_size
    assert _row(root) == (relative, explicit_size, ExplicitVRLittleEndian)
    with caplog.at_level(logging.INFO):
        answered, told = _send(root, image, policy)
    assert answered == status
    assert _digest(stored) == implicit  # kept: before, the Explicit VR copy replaced it
    if policy == "keep":
        assert told is not None and (told.duplicate, told.replaced) == (True, False)
    else:  # refused (0111H): not stored, so not told
        assert told is None
    assert _row(root) == (relative, implicit_size, ImplicitVRLittleEndian)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    [said] = [r for r in caplog.records if "not the size" in r.getMessage()]
    assert said.getMessage() == (
        f"{UID}: the stored copy {stored} is not the size its index row records "
        f"({implicit_size} bytes, {explicit_size} recorded) but a whole Part 10 file "
        "of the instance: kept, its row read back from it")


def test_a_row_whose_size_is_wrong_is_corrected_and_the_copy_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A row written by hand (or left by a crash) with another size."""
    root, image, stored = _stored(tmp_path, 32)
    good = _digest(stored)
    relative, size, syntax = _row(root)
    with sqlite3.connect(root / INDEX_NAME) as db:
        db.execute("UPDATE instance SET size = ? WHERE sop_instance_uid = ?",
                   (size + 100, UID))
    db.close()
    assert _row(root) == (relative, size + 100, syntax)
    with caplog.at_level(logging.INFO):
        answered, told = _send(root, image, "keep")
    assert answered == 0
    assert _digest(stored) == good
    assert told is not None and (told.duplicate, told.replaced) == (True, False)
    assert _row(root) == (relative, size, syntax)
    assert not [r for r in caplog.records if "damaged" in r.getMessage()]


@pytest.mark.parametrize("rows", [32, 1100], ids=["in-memory", "spilled"])
@pytest.mark.parametrize("how", ["truncated", "another-instance"])
def test_a_damaged_or_foreign_copy_is_still_replaced(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, rows: int, how: str) -> None:
    """A Part 10 file cut short, or a whole one of another instance (of another
    size), is no copy of the instance: the resend takes its place."""
    root, image, stored = _stored(tmp_path, rows)
    good = _digest(stored)
    relative, size, syntax = _row(root)
    if how == "truncated":
        with open(stored, "r+b") as f:
            f.truncate(size - 10)
    else:
        other = _image(tmp_path, rows + 2, number=2)
        stored.write_bytes(other.read_bytes())
    wrong = stored.stat().st_size
    with caplog.at_level(logging.INFO):
        answered, told = _send(root, image, "keep")
    assert answered == 0
    assert _digest(stored) == good
    assert told is not None and (told.duplicate, told.replaced) == (False, True)
    assert _row(root) == (relative, size, syntax)
    [said] = [r for r in caplog.records if "damaged" in r.getMessage()]
    assert said.levelno == logging.WARNING
    assert said.getMessage() == (
        f"{UID}: the stored copy {stored} is damaged ({wrong} bytes, {size} recorded): "
        "replaced by the copy just received")


def test_a_duplicate_of_the_recorded_size_is_not_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Part 10 look is for a size that differs only: the usual duplicate costs
    one ``stat``, as before."""
    root, image, _ = _stored(tmp_path, 32)
    looked: list[Path] = []

    def instance_damage(path: Path, sop_instance_uid: str) -> tuple[None, str]:
        looked.append(path)
        return None, "looked"

    monkeypatch.setattr("dicomnet.storage.instances.instance_damage", instance_damage)
    answered, told = _send(root, image, "keep")
    assert answered == 0
    assert told is not None and (told.duplicate, told.replaced) == (True, False)
    assert looked == []
