"""The duplicate policy is about the SOP Instance, wherever its file is.

The same instance sent again under another study or series (after a study was
corrected, split or merged) gets another path. Before storage.instances, the
policy only saw a file at the same path: "reject" answered Success, "keep"
stored the second copy, and either way two files held one instance, the index
knowing only the last. And two associations storing the same instance at once
could leave the index pointing at the copy that was replaced.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services import store_disk
from dicomnet.services.storage import INDEX_NAME, StorageSCP, StoreResult, store_paths
from dicomnet.storage.cleanup import cleanup_stale
from dicomnet.storage.files import StorageError, sync_folder
from dicomnet.storage.index import StorageIndex
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import make_image, uid, write_part10

SENDERS = 4
OBJECTS = 24
SAME = uid(9, 5)


def _send(root: Path, batches: dict[str, list[Path]], policy: str, *,
          index: bool = True) -> dict[str, list[StoreResult]]:
    """Each batch from its own association (calling AE title = its key), all at once."""

    async def main() -> dict[str, list[StoreResult]]:
        scp = StorageSCP(root, duplicates=policy, index=index)
        async with running_server(providers=[scp]) as server:
            results = await asyncio.gather(*(
                store_paths("127.0.0.1", server.port, paths, calling_ae_title=aet,
                            called_ae_title="DICOMNET-SCP", max_async_operations=4)
                for aet, paths in batches.items()))
        return dict(zip(batches, results, strict=True))

    return run(main(), timeout=120)


def _stored(root: Path) -> list[Path]:
    return sorted(root.rglob("*.dcm"))


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.suffix != ".dcm"
            and not p.name.startswith(INDEX_NAME)]


@pytest.fixture
def moved(tmp_path: Path) -> tuple[Path, Path]:
    """One instance, then the same SOP Instance UID in another study (and pixels)."""
    first = write_part10(tmp_path / "first.dcm", make_image(5, seed=1), ExplicitVRLittleEndian)
    ds = make_image(5, seed=2)
    ds.StudyInstanceUID = uid(1, 777)
    second = write_part10(tmp_path / "second.dcm", ds, ExplicitVRLittleEndian)
    return first, second


@pytest.mark.parametrize(("policy", "second_status", "kept"), [
    ("keep", 0x0000, "first"), ("reject", 0x0111, "first"), ("overwrite", 0x0000, "second"),
])
def test_the_same_instance_in_another_study(
    tmp_path: Path, moved: tuple[Path, Path], policy: str, second_status: int, kept: str,
) -> None:
    root = tmp_path / "store"
    first, second = moved
    [r1] = _send(root, {"FIRST": [first]}, policy)["FIRST"]
    [r2] = _send(root, {"SECOND": [second]}, policy)["SECOND"]
    assert (r1.status, r2.status) == (0, second_status)
    [stored] = _stored(root)  # one file for one instance, whatever the policy
    source = first if kept == "first" else second
    assert dcmread(stored).PixelData == dcmread(source).PixelData
    with StorageIndex(root / INDEX_NAME) as index:
        row = index.get_instance(SAME)
        assert row is not None
        assert root / row.relative_path == stored
        assert row.calling_ae == kept.upper()
        assert index.count()["instances"] == 1
    assert _leftovers(root) == []
    if policy == "overwrite":  # the first study's folders went with its copy
        assert _empty_folders(root) == []
    else:  # the second study's folder, made for a file that was discarded...
        assert len(_empty_folders(root)) == 1
    cleanup_stale(root)  # ...goes when the server starts next
    assert _empty_folders(root) == []


def _empty_folders(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_dir() and not any(p.iterdir()))


def test_a_file_removed_by_hand_is_no_duplicate(tmp_path: Path,
                                                moved: tuple[Path, Path]) -> None:
    """The index still names a file an operator deleted: the instance is stored again."""
    root = tmp_path / "store"
    first, second = moved
    _send(root, {"FIRST": [first]}, "reject")
    _stored(root)[0].unlink()
    [r2] = _send(root, {"SECOND": [second]}, "reject")["SECOND"]
    assert r2.status == 0
    [stored] = _stored(root)
    assert dcmread(stored).StudyInstanceUID == uid(1, 777)


def _versions(tmp_path: Path) -> dict[str, list[Path]]:
    """SENDER1..4's versions of the same 24 instances: other pixels, sizes and
    patient names; a few big enough to spill to a temporary file as they arrive,
    and every fourth in a study of the sender's own (another path)."""
    out: dict[str, list[Path]] = {}
    for k in range(1, SENDERS + 1):
        paths = []
        for n in range(1, OBJECTS + 1):
            big = n % 6 == 0
            ds = make_image(n, seed=1000 * k + n, rows=512 if big else 16,
                            columns=512 if big else 16, frames=5 if big else k)
            ds.PatientName = f"Sender^{k}"
            if n % 4 == 0:
                ds.StudyInstanceUID = uid(1, n, k)
            paths.append(write_part10(tmp_path / f"s{k}" / f"{n}.dcm", ds,
                                      ExplicitVRLittleEndian))
        out[f"SENDER{k}"] = paths
    return out


@pytest.mark.parametrize("policy", ["keep", "overwrite", "reject"])
def test_same_instances_from_four_associations_at_once(tmp_path: Path, policy: str) -> None:
    """Each instance ends as one file, one sender's whole version, and its index
    row names that file, that sender, that size and digest. With "reject",
    exactly one sender gets Success per instance, and it is the one kept."""
    root = tmp_path / "store"
    versions = _versions(tmp_path)
    results = _send(root, versions, policy)
    assert _leftovers(root) == []
    assert len(_stored(root)) == OBJECTS
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.count()["instances"] == OBJECTS
        for n in range(1, OBJECTS + 1):
            row = index.get_instance(uid(9, n))
            assert row is not None
            stored = root / row.relative_path
            data = stored.read_bytes()
            aet = f"SENDER{str(dcmread(stored).PatientName).split('^')[1]}"
            assert dcmread(stored).PixelData == dcmread(versions[aet][n - 1]).PixelData
            assert (n, row.calling_ae) == (n, aet)
            assert (n, row.size) == (n, len(data))
            if row.sha256 is not None:
                assert row.sha256 == hashlib.sha256(data).hexdigest()
            statuses = {a: -1 if (status := results[a][n - 1].status) is None else status
                        for a in results}  # -1: no answer
            if policy == "reject":
                assert sorted(statuses.values()) == [0] + [0x0111] * (SENDERS - 1), statuses
                assert statuses[aet] == 0
            else:
                assert set(statuses.values()) == {0}, statuses


def _failing_folder_sync(monkeypatch: pytest.MonkeyPatch, part: str) -> None:
    """The C-STORE SCP's folder fsync fails (EIO) for folders whose path holds ``part``."""
    real = sync_folder

    def sync(folder: Path) -> None:
        if part in str(folder):
            raise StorageError(f"cannot sync folder {folder}: Input/output error")
        real(folder)

    monkeypatch.setattr(store_disk, "sync_folder", sync)


def test_an_overwrite_whose_folder_cannot_be_synced(
    tmp_path: Path, moved: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The new study's folder cannot be synced: failure is answered, the copy in
    the first study is not removed, and the index describes what is on disk (the
    new name stands: taking it back could remove what another association relied
    on meanwhile). Sent again once the disk is well: one file, in the new study."""
    root = tmp_path / "store"
    first, second = moved
    _send(root, {"FIRST": [first]}, "overwrite")
    [old] = _stored(root)

    async def main() -> tuple[StoreResult, list[Path], str | None, StoreResult]:
        # One server throughout: what the failed name replaced is known to it.
        scp = StorageSCP(root, duplicates="overwrite")
        async with running_server(providers=[scp]) as server:
            async def send() -> StoreResult:
                [result] = await store_paths("127.0.0.1", server.port, [second],
                                             called_ae_title="DICOMNET-SCP")
                return result
            with monkeypatch.context() as patched:
                _failing_folder_sync(patched, uid(1, 777))
                failed = await send()
            scp.flush_index()
            files, located = _stored(root), scp.index.locate(SAME) if scp.index else None
            return failed, files, located, await send()

    failed, files, located, again = run(main(), timeout=60)
    assert failed.status is not None and failed.status != 0
    [new] = [path for path in files if path != old]
    assert old in files  # not removed for a name that is not durable
    assert located == new.relative_to(root).as_posix()  # the name stands, with its row
    assert again.status == 0
    assert _stored(root) == [new]  # settled now: the old copy removed
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.locate(SAME) == new.relative_to(root).as_posix()


def test_a_new_object_whose_folder_cannot_be_synced_is_indexed_all_the_same(
    tmp_path: Path, moved: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Failure answered, the file under its name: it has its row, so the sender's
    retry meets an indexed duplicate (it met an unindexed one before)."""
    root = tmp_path / "store"
    first, _ = moved
    with monkeypatch.context() as patched:
        _failing_folder_sync(patched, uid(2, 5))
        [failed] = _send(root, {"FIRST": [first]}, "keep")["FIRST"]
    assert failed.status is not None and failed.status != 0
    [stored] = _stored(root)
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.locate(SAME) == stored.relative_to(root).as_posix()
    [again] = _send(root, {"FIRST": [first]}, "keep")["FIRST"]
    assert again.status == 0
    assert _stored(root) == [stored]


def test_a_duplicate_in_a_folder_that_cannot_be_synced_changes_no_row(
    tmp_path: Path, moved: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A same-path duplicate ('keep') in a store round whose folder sync fails (for
    a new object of the same series): its answer is that failure, and the first
    copy's row stays as it was."""
    root = tmp_path / "store"
    first, _ = moved
    neighbour = write_part10(tmp_path / "neighbour.dcm",
                             make_image(6, study=uid(1, 5), series=uid(2, 5)),
                             ExplicitVRLittleEndian)

    async def main() -> StoreResult:
        scp = StorageSCP(root, duplicates="keep")
        async with running_server(providers=[scp]) as server:
            await store_paths("127.0.0.1", server.port, [first], calling_ae_title="FIRST",
                              called_ae_title="DICOMNET-SCP")
            with monkeypatch.context() as patched:
                _failing_folder_sync(patched, uid(2, 5))
                results = await store_paths("127.0.0.1", server.port, [neighbour, first],
                                            calling_ae_title="SECOND",
                                            called_ae_title="DICOMNET-SCP")
            return results[1]

    duplicate = run(main(), timeout=60)
    assert duplicate.status is not None and duplicate.status != 0  # the round's failure
    with StorageIndex(root / INDEX_NAME) as index:
        row = index.get_instance(SAME)
        assert row is not None and row.calling_ae == "FIRST"


def test_an_overwrite_the_index_cannot_record_keeps_the_copy_the_index_names(
    tmp_path: Path, moved: tuple[Path, Path],
) -> None:
    """The same instance in another study ("overwrite") while another process holds
    the index's write lock: its row cannot be written, so the index still names
    the first copy, which must stay (no index row without its file). It was
    removed all the same: the index's failure, logged and not raised, counted
    as written."""
    root = tmp_path / "store"
    first, second = moved
    _send(root, {"FIRST": [first]}, "overwrite")
    [old] = _stored(root)

    async def main() -> StoreResult:
        scp = StorageSCP(root, duplicates="overwrite")
        assert scp.index is not None
        scp.index._db.execute("PRAGMA busy_timeout = 0")  # fail at once, not in 30 s
        other = sqlite3.connect(root / INDEX_NAME, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            async with running_server(providers=[scp]) as server:
                [result] = await store_paths("127.0.0.1", server.port, [second],
                                             called_ae_title="DICOMNET-SCP")
                scp.flush_index()
        finally:
            other.execute("ROLLBACK")
            other.close()
        return result

    result = run(main(), timeout=60)
    assert result.status == 0
    with StorageIndex(root / INDEX_NAME) as index:
        located = index.locate(SAME)
    assert located == old.relative_to(root).as_posix()
    assert old.is_file()
    assert len(_stored(root)) == 2  # the new copy too: reindex or a resend settles it
