"""A data set in Implicit VR under an Explicit VR Little Endian label, both ways.

pynetdicom sends a file as it is (``STORE_SEND_CHUNKED_DATASET``) on the
context its File Meta Information names: a file whose meta says Explicit VR
Little Endian over an Implicit VR data set (pydicom writes such files when told
to) goes in Implicit VR on an Explicit VR context. dicomnet serve stored it
under an Explicit VR Little Endian meta, which DCMTK's dcmdump read as garbage;
now the stored file says Implicit VR Little Endian (PS3.5 A.1, A.2; PS3.10 7.1)
and dcmdump reads every value. And `store_paths` sent such a file as it is on an
Explicit VR context, into DCMTK's storescp (which fails on it); now it goes as
what it is, Implicit VR Little Endian, and storescp's file reads right.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME, store_paths
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.part10 import part10_header
from tests.aio.helpers import LOOPBACK, background_process, free_port, run
from tests.interop.conftest import Dcmtk, _missing, dicomnet_serve_plain
from tests.storage.dicomfiles import SECONDARY_CAPTURE, assert_same_dataset, make_image
from tests.storage.helpers import data_set_bytes

pytestmark = pytest.mark.interop


def mislabelled(path: Path, ds: Dataset, *, labelled: str = ExplicitVRLittleEndian,
                encoded: str = ImplicitVRLittleEndian) -> Path:
    """A Part 10 file whose meta says ``labelled`` (Explicit VR Little Endian), its
    data set in ``encoded`` (Implicit VR Little Endian)."""
    header = part10_header(sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
                           transfer_syntax_uid=labelled,
                           implementation_class_uid="1.2.3.4", implementation_version_name="W",
                           source_ae_title=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + data_set_bytes(ds, encoded))
    return path


def dcmdump(path: Path) -> str:
    """dcmdump's output for ``path``, which it must read without an error or a warning."""
    dcmdump = shutil.which("dcmdump")
    if dcmdump is None:
        _missing("DCMTK dcmdump")
    done = subprocess.run([str(dcmdump), "+L", str(path)], capture_output=True, text=True,
                          errors="replace", timeout=30, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert not [line for line in output.splitlines() if line.startswith(("W:", "E:", "F:"))], (
        output)
    return output


def _reads_right(output: str, ds: Dataset) -> None:
    assert "(0002,0010) UI =LittleEndianImplicit" in output, output
    assert "# Used TransferSyntax: Little Endian Implicit" in output, output
    assert f"(0010,0010) PN [{ds.PatientName}]" in output, output
    assert "(0020,9057) UL 16909060" in output, output  # In-Stack Position Number 0x01020304
    assert "(0018,9219) SS -1234" in output, output
    assert f"(0008,1155) UI [{ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID}]" in output


def pynetdicom_sends(pynetdicom: ModuleType, port: int, source: Path, syntax: str) -> int:
    """pynetdicom's status for ``source`` sent as it is on a context of ``syntax``."""
    ae = pynetdicom.AE(ae_title="WRONGTS")
    ae.add_requested_context(SECONDARY_CAPTURE, syntax)
    assoc = ae.associate(LOOPBACK, port)
    try:
        assert assoc.is_established, "pynetdicom could not associate"
        status = assoc.send_c_store(source)
        assoc.release()
    finally:
        ae.shutdown()
    return int(status.Status)


def test_pynetdicom_sends_it_on_an_explicit_context_and_dicomnet_serve_relabels_it(
        dcmtk: Dcmtk, pynetdicom: ModuleType, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ds = make_image(21)
    source = mislabelled(tmp_path / "in" / "mislabelled.dcm", ds)
    store = tmp_path / "store"
    # pynetdicom sends the file's bytes as they are, on the context its meta names.
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)
    with dicomnet_serve_plain(store) as (port, events, stderr):
        status = pynetdicom_sends(pynetdicom, port, source, ExplicitVRLittleEndian)
    assert status == 0x0000
    (stored,) = store.rglob(f"{ds.SOPInstanceUID}.dcm")
    _reads_right(dcmdump(stored), ds)
    assert_same_dataset(ds, stored)
    (event,) = [e for e in events if e["event"] == "stored"]
    assert event["transfer_syntax_uid"] == ImplicitVRLittleEndian
    with StorageIndex(store / INDEX_NAME) as index:
        row = index.get_instance(ds.SOPInstanceUID)
    assert row is not None and row.transfer_syntax_uid == ImplicitVRLittleEndian
    (line,) = [x for x in stderr[0].splitlines() if "WARNING" in x]
    assert ds.SOPInstanceUID in line and "WRONGTS@127.0.0.1:" in line
    assert "stored as Implicit VR Little Endian" in line


def test_store_paths_sends_it_to_storescp_as_implicit_vr_little_endian(
        dcmtk: Dcmtk, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = make_image(22)
    source = mislabelled(tmp_path / "in" / "mislabelled.dcm", ds)
    out = tmp_path / "out"
    out.mkdir()
    port = free_port()
    # +xe: storescp prefers Explicit VR Little Endian where both are proposed.
    with background_process(dcmtk.storescp, "-aet", "STORESCP", "+xe", "-od", out, str(port),
                            log_path=tmp_path / "storescp.log", port=port), \
            caplog.at_level(logging.WARNING, logger="dicomnet.storage"):
        results = run(store_paths(LOOPBACK, port, [source], called_ae_title="STORESCP"),
                      timeout=60)
    assert [(r.status, r.error) for r in results] == [(0x0000, None)]
    assert results[0].transfer_syntax_uid == ImplicitVRLittleEndian
    (stored,) = out.iterdir()
    _reads_right(dcmdump(stored), ds)
    assert_same_dataset(ds, stored)
    lines = [r.getMessage() for r in caplog.records if "Implicit VR" in r.getMessage()]
    assert len(lines) == 1 and str(source) in lines[0], lines
