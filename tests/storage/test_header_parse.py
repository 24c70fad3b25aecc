"""The SCP's fast header parse (raw elements from a prefix of the data set) agrees
with pydicom's full read, including when a large element pushes the study and
series UIDs past the prefix."""

from __future__ import annotations

import pytest
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.storage.header import HEADER_PREFIX, read_header
from tests.storage.dicomfiles import make_image
from tests.storage.helpers import received


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian,
                                    ExplicitVRBigEndian])
def test_fast_parse_finds_the_uids(syntax: str) -> None:
    ds = make_image(5)
    got = read_header(received(ds, syntax), None, syntax)
    assert got.text("SOPInstanceUID") == ds.SOPInstanceUID
    assert got.text("StudyInstanceUID") == ds.StudyInstanceUID
    assert got.text("SeriesInstanceUID") == ds.SeriesInstanceUID
    assert got.text("PatientID") == str(ds.PatientID)
    assert got.text("PatientName") == str(ds.PatientName)
    assert got.dataset.SOPInstanceUID == ds.SOPInstanceUID


def test_uids_beyond_the_prefix_are_still_found() -> None:
    ds = make_image(6)
    ds.add_new(0x00091010, "OB", b"\x00" * (2 * HEADER_PREFIX))  # before group 0020
    ds.add_new(0x00090010, "LO", "BIG PRIVATE")
    got = read_header(received(ds, ExplicitVRLittleEndian), None, ExplicitVRLittleEndian)
    assert got.text("StudyInstanceUID") == ds.StudyInstanceUID
    assert got.text("SeriesInstanceUID") == ds.SeriesInstanceUID
