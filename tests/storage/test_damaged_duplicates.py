"""A duplicate is not discarded for a stored copy that is damaged.

With ``keep`` (the default) or ``reject``, a resend of an instance already
stored was discarded for the stored copy whatever had become of it: a file
overwritten by hand or truncated by a disk fault stayed, and the good copy the
sender offered was thrown away, the sender told Success. The stored copy is now
checked first (storage.damage): its size against its index row's (one stat),
or, with no row, that it is still a Part 10 file holding its whole File Meta
Information and more; a damaged one is replaced by the copy just received,
said at WARNING, its index row following.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME, StorageSCP, StoreResult, store_paths
from dicomnet.storage.index import StorageIndex
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import make_image, uid, write_part10

UID = uid(9, 1)


def _send(root: Path, paths: list[Path], policy: str = "keep", *,
          index: bool = True) -> list[StoreResult]:
    """``paths`` on one association, to a server started for them (and stopped)."""

    async def main() -> list[StoreResult]:
        scp = StorageSCP(root, duplicates=policy, index=index)
        async with running_server(providers=[scp]) as server:
            return await store_paths("127.0.0.1", server.port, paths,
                                     called_ae_title="DICOMNET-SCP")

    return run(main(), timeout=60)


def _image(tmp_path: Path, rows: int, study: int = 1) -> Path:
    ds = make_image(1, rows=rows, columns=1000)
    ds.StudyInstanceUID = uid(1, study)
    return write_part10(tmp_path / f"image-{rows}-{study}.dcm", ds, ExplicitVRLittleEndian)


def _row_size(root: Path) -> tuple[str, int]:
    with StorageIndex(root / INDEX_NAME) as index:
        row = index.get_instance(UID)
        assert row is not None
        return row.relative_path, row.size


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


#: How a stored copy gets damaged: overwritten with 8 bytes, truncated to half,
#: truncated inside its File Meta Information, cut right after it.
def _damage(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"garbage\n")
    elif how == "half":
        _truncate(path, path.stat().st_size // 2)
    elif how == "in-meta":
        _truncate(path, 150)
    else:
        assert how == "no-data-set"
        _truncate(path, 132 + 12 + int.from_bytes(path.read_bytes()[140:144], "little"))


#: Rows of an image received in memory (the store thread's path), and of one that
#: spills to a temporary file as it arrives (the executor's).
@pytest.mark.parametrize("rows", [32, 1100])
@pytest.mark.parametrize(("policy", "damage"), [
    ("keep", "garbage"), ("keep", "half"), ("reject", "garbage"), ("reject", "in-meta")])
def test_a_damaged_copy_is_replaced_by_the_resend(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, rows: int, policy: str,
        damage: str) -> None:
    root = tmp_path / "store"
    image = _image(tmp_path, rows)
    assert [r.status for r in _send(root, [image], policy)] == [0]
    [stored] = sorted(root.rglob("*.dcm"))
    good = stored.read_bytes()
    relative = stored.relative_to(root).as_posix()
    assert _row_size(root) == (relative, len(good))
    _damage(stored, damage)
    damaged_size = stored.stat().st_size
    with caplog.at_level(logging.INFO):
        # Success even under reject: the stored copy was not the instance any more.
        assert [r.status for r in _send(root, [image], policy)] == [0]
    assert stored.read_bytes() == good
    assert _row_size(root) == (relative, len(good))
    [said] = [r for r in caplog.records if "damaged" in r.getMessage()]
    assert said.levelno == logging.WARNING
    assert said.getMessage() == (
        f"{UID}: the stored copy {stored} is damaged ({damaged_size} bytes, {len(good)} "
        "recorded): replaced by the copy just received")
    assert not [r for r in caplog.records if "already stored" in r.getMessage()]
    assert sorted(root.rglob("*.dcm")) == [stored]


@pytest.mark.parametrize("rows", [32, 1100])
@pytest.mark.parametrize(("damage", "why"), [
    ("garbage", "8 bytes, no Part 10 preamble and DICM prefix"),
    ("in-meta", "150 bytes, its File Meta Information alone {meta} bytes: no data set "
                "after it"),
    ("no-data-set", "{meta} bytes, its File Meta Information alone {meta} bytes: no data "
                    "set after it"),
])
def test_without_an_index_a_copy_that_is_no_part10_file_is_replaced(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, rows: int, damage: str,
        why: str) -> None:
    root = tmp_path / "store"
    image = _image(tmp_path, rows)
    assert [r.status for r in _send(root, [image], "keep", index=False)] == [0]
    [stored] = sorted(root.rglob("*.dcm"))
    good = stored.read_bytes()
    meta = 132 + 12 + int.from_bytes(good[140:144], "little")
    _damage(stored, damage)
    with caplog.at_level(logging.INFO):
        assert [r.status for r in _send(root, [image], "reject", index=False)] == [0]
    assert stored.read_bytes() == good
    [said] = [r for r in caplog.records if "damaged" in r.getMessage()]
    assert said.levelno == logging.WARNING
    assert said.getMessage() == (f"the stored copy {stored} is damaged ({why.format(meta=meta)}):"
                                 " replaced by the copy just received")


@pytest.mark.parametrize("rows", [32, 1100])
@pytest.mark.parametrize("index", [True, False])
def test_a_sound_copy_is_still_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                    rows: int, index: bool) -> None:
    root = tmp_path / "store"
    image = _image(tmp_path, rows)
    _send(root, [image], index=index)
    [stored] = sorted(root.rglob("*.dcm"))
    before = stored.stat()
    ds = dcmread(image)
    ds.PatientName = "Corrected^Name"
    corrected = write_part10(tmp_path / "corrected.dcm", ds, ExplicitVRLittleEndian)
    with caplog.at_level(logging.INFO):
        assert [r.status for r in _send(root, [corrected], "reject", index=index)] == [0x0111]
    after = stored.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino, before.st_mtime_ns, before.st_size)
    assert str(dcmread(stored).PatientName) == "Test^Patient1"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_damaged_copy_in_another_study_gives_way(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Found by the index under another path: the resend is stored at its own, and
    the damaged copy removed once the new one is indexed (as overwrite does)."""
    root = tmp_path / "store"
    _send(root, [_image(tmp_path, 32)])
    [old] = sorted(root.rglob("*.dcm"))
    recorded = old.stat().st_size
    old.write_bytes(b"garbage\n")
    moved = _image(tmp_path, 32, study=777)
    with caplog.at_level(logging.WARNING):
        assert [r.status for r in _send(root, [moved])] == [0]
    [new] = sorted(root.rglob("*.dcm"))
    assert dcmread(new).StudyInstanceUID == uid(1, 777)
    assert _row_size(root) == (new.relative_to(root).as_posix(), new.stat().st_size)
    assert [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()] == [
        f"{UID}: the stored copy {old} is damaged (8 bytes, {recorded} recorded): "
        "replaced by the copy just received"]
