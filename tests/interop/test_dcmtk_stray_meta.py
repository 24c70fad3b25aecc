"""A file whose data set repeats group 0002 after its meta group: DCMTK 3.6.7's
storescu sends those elements in the data set (it reads them as data set
elements, with "Invalid Element (0002,0000) found in data set"); a dicomnet
StorageSCP stores the file with one meta group, its own, and the data set
without them (PS3.5 7.1; storage.stray_meta). And `dicomnet store` does not send
them to DCMTK's storescp: its file holds no group 0002 in its data set."""

from __future__ import annotations

import logging
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP, store_paths
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import (
    LOOPBACK,
    background_process,
    free_port,
    run,
    run_process,
    running_server,
)
from tests.interop.conftest import Dcmtk, _missing
from tests.storage.dicomfiles import assert_same_dataset, make_image
from tests.storage.helpers import data_set_bytes
from tests.storage.stray import meta_group_length, write_with_stray_meta

pytestmark = pytest.mark.interop

SERVER_AE = "DICOMNET-SCP"


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian],
                         ids=["explicit", "deflated"])
def test_storescu_sends_group_0002_and_the_scp_drops_it(dcmtk: Dcmtk, tmp_path: Path,
                                                        syntax: str) -> None:
    """Deflated (-xd: storescu deflates the data set it read, group 0002 and all):
    the elements are inside the deflate stream, and were stored so."""
    found = shutil.which("storescu")
    if found is None:
        _missing("DCMTK storescu")
    storescu = str(found)
    ds = make_image(5)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    source = write_with_stray_meta(tmp_path / "stray.dcm", ds, ExplicitVRLittleEndian, plain)
    root = tmp_path / "root"

    async def scenario() -> tuple[int, str]:
        scp = StorageSCP(root)
        try:
            async with running_server(ae_title=SERVER_AE,
                                      providers=[VerificationSCP(), scp]) as server:
                return await run_process(storescu, "-v", "-aec", SERVER_AE,
                                         "-xd" if syntax != ExplicitVRLittleEndian else "-xe",
                                         LOOPBACK,
                                         str(server.port), source, timeout=30)
        finally:
            scp.close()

    code, output = run(scenario(), timeout=60)
    assert code == 0, output
    assert "Invalid Element (0002,0000) found in data set" in output  # DCMTK reads them so
    assert "Received Store Response (Success)" in output, output
    stored = next(root.rglob(f"{ds.SOPInstanceUID}.dcm"))
    data = stored.read_bytes()[meta_group_length(stored.read_bytes()):]
    if syntax != ExplicitVRLittleEndian:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        data = inflater.decompress(data)
        assert inflater.eof
    assert data == plain
    assert dcmread(stored).file_meta.TransferSyntaxUID == syntax
    assert_same_dataset(ds, stored)
    dcmdump = shutil.which("dcmdump")
    if dcmdump is not None:  # DCMTK reads one meta group, and a data set without group 0002
        dump = subprocess.run([dcmdump, str(stored)], capture_output=True, text=True,
                              timeout=30, check=True)
        assert "Invalid Element" not in dump.stdout + dump.stderr, dump.stderr
        assert "(0002,0013)" not in dump.stdout.split("# Dicom-Data-Set")[1], dump.stdout


def test_dicomnet_store_does_not_send_it_to_storescp(
        dcmtk: Dcmtk, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = make_image(6)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    source = write_with_stray_meta(tmp_path / "in" / "stray.dcm", ds, ExplicitVRLittleEndian,
                                   plain)
    out = tmp_path / "out"
    out.mkdir()
    port = free_port()
    with background_process(dcmtk.storescp, "-aet", "STORESCP", "+xe", "+B", "-od", out,
                            str(port), log_path=tmp_path / "storescp.log", port=port), \
            caplog.at_level(logging.WARNING, logger="dicomnet.storage"):
        results = run(store_paths(LOOPBACK, port, [source], called_ae_title="STORESCP"),
                      timeout=60)
    assert [r.status for r in results] == [0x0000]
    assert any("passed over, not sent" in r.getMessage() for r in caplog.records)
    (stored,) = out.iterdir()
    data = stored.read_bytes()
    assert data[meta_group_length(data):] == plain
    assert_same_dataset(ds, stored)
