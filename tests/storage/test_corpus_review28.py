"""Session 28, by use: pydicom's bundled test files read as an SCU reads them.

Each test names the pydicom file (shipped with pydicom, in its package folder)
whose quirk it pins down.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP, StoreResult, store_paths
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage import read_part10
from tests.aio.helpers import LOOPBACK, run, running_server
from tests.storage.dicomfiles import assert_same_dataset

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def test_big_endian_data_set_names_its_own_sop_instance_uid(
        caplog: pytest.LogCaptureFixture) -> None:
    """rtdose_expb.dcm: Explicit VR Big Endian, its File Meta Information naming
    SOP Instance UID 1.2.999...516, its data set 1.9.999...516. The C-STORE must
    name the data set's (PS3.4 B.2.3: an SCP answers A900 otherwise; dicomnet
    serve did), as it does for the same object in Little Endian (rtdose.dcm) and
    as storescu does. Before, a Big Endian data set was never looked at: the
    meta's UID went, and the object was refused."""
    caplog.set_level(logging.WARNING)
    source = PYDICOM_FILES / "rtdose_expb.dcm"
    info = read_part10(source)
    dataset = pydicom.dcmread(source, stop_before_pixels=True)
    assert info.sop_instance_uid == dataset.SOPInstanceUID == (
        "1.9.999.999.99.9.9999.9999.20030818153516")
    assert info.sop_class_uid == dataset.SOPClassUID
    assert any("its File Meta Information names SOP Instance UID 1.2.999.999.99.9.9999."
               "9999.20030818153516, its data set 1.9.999" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "SC_rgb_small_odd_big_endian.dcm",
                                  "ExplVR_BigEnd.dcm", "liver_expb_1frame.dcm"])
def test_big_endian_files_whose_uids_agree_read_as_before(
        name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    info = read_part10(PYDICOM_FILES / name)
    dataset = pydicom.dcmread(PYDICOM_FILES / name, stop_before_pixels=True)
    assert (info.sop_class_uid, info.sop_instance_uid) == (
        dataset.SOPClassUID, dataset.SOPInstanceUID)
    assert not caplog.records


def test_implicit_vr_data_set_labelled_jpeg_is_not_sent(tmp_path: Path) -> None:
    """SC_rgb_jpeg.dcm: labelled JPEG Baseline (Explicit VR, PS3.5 A.4) but its
    data set is in Implicit VR. Sent as it is, storescp (+xa, not +B) aborted the
    association on it ("dset->read() Failed (Invalid stream)"), taking the 143
    objects after it down; dicomnet serve refused it (C000). Now it fails alone,
    unsent, saying why, and the file after it is stored; storescu refuses it too
    (it cannot parse it)."""
    bad, good = PYDICOM_FILES / "SC_rgb_jpeg.dcm", PYDICOM_FILES / "CT_small.dcm"
    scp = StorageSCP(tmp_path / "store")

    async def send() -> list[StoreResult]:
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return await store_paths(LOOPBACK, server.port, [bad, good])
        finally:
            scp.close()

    first, second = run(send(), timeout=60)
    assert (first.ok, first.status, first.sent) == (False, None, False)
    assert first.error == (
        "not sent: its data set is in Implicit VR, but its transfer syntax, JPEG Baseline "
        "(Process 1) (1.2.840.10008.1.2.4.50), is Explicit VR (PS3.5 A.4, PS3.10 7.1): a "
        "peer cannot read it (DCMTK's storescp aborts the association)")
    assert (second.ok, second.status) == (True, 0)
    assert [p.name for p in (tmp_path / "store").rglob("*.dcm")] == [
        f"{pydicom.dcmread(good, stop_before_pixels=True).SOPInstanceUID}.dcm"]


def test_deflated_stream_of_odd_length_goes_padded(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """image_dfl.dcm: Deflated Explicit VR Little Endian, its deflate stream 4303
    bytes, without the NUL byte PS3.5 A.5 pads an odd one with. It was not sent
    ("an odd length ..., which no DICOM encoding gives (PS3.5 7.1.1)": that
    holds for element values, not for a deflate stream); storescu sends it. Now
    it goes deflated again, padded to an even length, and is stored with every
    element equal to the source's."""
    caplog.set_level(logging.WARNING)
    source = PYDICOM_FILES / "image_dfl.dcm"
    assert (source.stat().st_size - read_part10(source).dataset_offset) % 2 == 1
    scp = StorageSCP(tmp_path / "store")

    async def send() -> list[StoreResult]:
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return await store_paths(LOOPBACK, server.port, [source])
        finally:
            scp.close()

    (result,) = run(send(), timeout=60)
    assert (result.ok, result.status, result.error, result.converted_to) == (True, 0, None, None)
    (stored,) = (tmp_path / "store").rglob("*.dcm")
    assert pydicom.dcmread(stored).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert_same_dataset(source, stored)
    assert any("image_dfl.dcm: its deflated data set's stream has an odd length (4303 bytes), "
               "without the NUL byte that pads it (PS3.5 A.5): deflated again, padded"
               in r.getMessage() for r in caplog.records)
