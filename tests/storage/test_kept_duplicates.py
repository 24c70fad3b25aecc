"""A duplicate the SCP keeps the first copy of (PS3.4 B.2.3: the policy is the
SCP's): the server says so, as the sender only hears Success."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP, StoreResult, store_paths
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
    assert [r.getMessage() for r in caplog.records
            if r.levelno == logging.INFO and "already stored" in r.getMessage()] == [
        f"C-STORE {uid(9, 1)} from MODALITY: already stored at {relative}, "
        "kept (duplicates policy keep)"]
