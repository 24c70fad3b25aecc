"""A duplicate the SCP keeps the first copy of (PS3.4 B.2.3: the policy is the
SCP's): the server says so, as the sender only hears Success; and should the
index have lost that copy's row (a server killed between a name and its row, an
index deleted), the resend restores it, read from the copy kept."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME, StorageSCP, StoreResult, store_paths
from dicomnet.storage.index import StorageIndex
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import make_image, uid, write_part10


def _send(root: Path, paths: list[Path], policy: str = "keep",
          aet: str = "SENDER") -> list[StoreResult]:
    """``paths`` from one association, to a server started for them (and stopped)."""

    async def main() -> list[StoreResult]:
        scp = StorageSCP(root, duplicates=policy)
        async with running_server(providers=[scp]) as server:
            return await store_paths("127.0.0.1", server.port, paths, calling_ae_title=aet,
                                     called_ae_title="DICOMNET-SCP")

    return run(main(), timeout=60)


#: Rows of an image received in memory, and of one that spills to a temporary file
#: as it arrives (over SPILL_THRESHOLD): the store thread's path, and the executor's.
SIZES = [32, 1100]


@pytest.mark.parametrize("rows", SIZES)
def test_a_corrected_resend_that_is_kept_is_logged_at_info(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, rows: int) -> None:
    root = tmp_path / "store"
    first = write_part10(tmp_path / "first.dcm", make_image(1, rows=rows, columns=1000),
                         ExplicitVRLittleEndian)
    ds = make_image(1, rows=rows, columns=1000)
    ds.PatientName = "Corrected^Name"
    corrected = write_part10(tmp_path / "corrected.dcm", ds, ExplicitVRLittleEndian)
    [r1] = _send(root, [first])
    with caplog.at_level(logging.INFO, logger="dicomnet.services"):
        [r2] = _send(root, [corrected], aet="MODALITY")
    assert (r1.status, r2.status) == (0, 0)  # the answer is the policy's: unchanged
    [stored] = sorted(root.rglob("*.dcm"))
    assert str(dcmread(stored).PatientName) == "Test^Patient1"
    relative = stored.relative_to(root).as_posix()
    [said] = [r.getMessage() for r in caplog.records
              if r.levelno == logging.INFO and "already stored" in r.getMessage()]
    # Named as the other C-STORE lines name the sender: AE title @ address:port.
    assert re.fullmatch(
        rf"C-STORE {re.escape(uid(9, 1))} from MODALITY@127\.0\.0\.1:\d+: already stored at "
        rf"{re.escape(relative)}, kept \(duplicates policy keep\)", said), said


N = 5


def _originals(tmp_path: Path, name: str = "") -> list[Path]:
    """N images, the last one spilling as it arrives; ``name``: another PatientName."""
    paths = []
    for n in range(N):
        ds = make_image(n, rows=SIZES[n == N - 1], columns=1000)
        if name:
            ds.PatientName = name
        paths.append(write_part10(tmp_path / f"{name or 'original'}-{n}.dcm", ds,
                                  ExplicitVRLittleEndian))
    return paths


def _files(root: Path) -> dict[str, tuple[str, int, int]]:
    """Each stored file: its digest, inode and modification time."""
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                             p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*.dcm"))}


def _rows(root: Path) -> dict[str, tuple[str, int, str, str]]:
    """Each indexed instance: its path, size, calling AE title and Patient's Name."""
    with StorageIndex(root / INDEX_NAME) as index:
        found = index.find("IMAGE", {"SOPInstanceUID": "", "PatientName": ""})
        rows = {}
        for match in found:
            row = index.get_instance(match["SOPInstanceUID"])
            assert row is not None
            rows[row.sop_instance_uid] = (row.relative_path, row.size, row.calling_ae,
                                          match["PatientName"])
        return rows


@pytest.mark.parametrize(("policy", "status"), [("keep", 0x0000), ("reject", 0x0111)])
def test_a_resend_after_the_index_was_deleted_restores_its_rows(
        tmp_path: Path, policy: str, status: int) -> None:
    root = tmp_path / "store"
    paths = _originals(tmp_path)
    assert [r.status for r in _send(root, paths, policy)] == [0] * N
    files = _files(root)
    for path in root.glob(INDEX_NAME + "*"):
        path.unlink()
    # A server started again on the same folder: a new, empty index.
    assert [r.status for r in _send(root, paths, policy)] == [status] * N
    assert _files(root) == files  # not written again
    assert _rows(root) == {  # <study>/<series>/<SOP Instance UID>.dcm, the UID's last part n
        Path(relative).stem: (relative, (root / relative).stat().st_size, "",
                              "Test^Patient" + Path(relative).stem.rsplit(".", 1)[1])
        for relative in files}
    assert len(files) == N


def test_rows_lost_in_a_crash_come_back_from_the_kept_copies_on_a_corrected_resend(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """As after a SIGKILL between the names and the index's commit: some rows are
    missing. The resend carries another Patient's Name; the rows restored are the
    kept files', and the rows that were there are left as they were."""
    root = tmp_path / "store"
    assert [r.status for r in _send(root, _originals(tmp_path))] == [0] * N
    files, rows = _files(root), _rows(root)
    lost = [uid(9, 1), uid(9, N - 1)]
    with StorageIndex(root / INDEX_NAME) as index:
        for sop_instance_uid in lost:
            assert index.remove_instance(sop_instance_uid)
    with caplog.at_level(logging.INFO, logger="dicomnet.services"):
        resent = _send(root, _originals(tmp_path, "Corrected^Name"), aet="RESENDER")
    assert [r.status for r in resent] == [0] * N
    assert _files(root) == files
    assert _rows(root) == {sop_instance_uid: (path, size, "" if sop_instance_uid in lost
                                              else "SENDER", name)
                           for sop_instance_uid, (path, size, _, name) in rows.items()}
    restored = sorted(r.getMessage().split()[1] for r in caplog.records
                      if r.getMessage().endswith("; its lost index row restored"))
    assert restored == sorted(lost)


def test_a_server_started_without_the_index_of_its_objects_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The index deleted (or moved aside when damaged) and the server started again:
    it made a new, empty one without a word, and the objects already stored were
    not found by any query. A new store, and a store with its index, say nothing."""
    root = tmp_path / "store"
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        assert [r.status for r in _send(root, _originals(tmp_path))] == [0] * N
        assert [r.status for r in _send(root, _originals(tmp_path))] == [0] * N
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    for path in root.glob(INDEX_NAME + "*"):
        path.unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        StorageSCP(root).close()
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == [(logging.WARNING,
                     f"{root} had no index: the objects already stored there have no rows "
                     f"until, with the server stopped, 'dicomnet reindex {root}' restores them")]
