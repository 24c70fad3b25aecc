"""A data set of odd length received by the SCP: stored as it came, answered
Success, and said. PS3.5 7.1.1 makes every value length even, so every data
set in an uncompressed syntax has an even length; a peer that sends an odd
one (an odd-length UN value) gets it stored, but dicomnet's own SCU refuses to
send that file on (services.store_prepare), and DCMTK and Orthanc abort the
association on it. The server used to say nothing at receipt: one warning
now names the sender, the object and the consequence."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.services.store_sink import SPILL_THRESHOLD
from dicomnet.storage.part10 import read_part10
from tests.aio.helpers import run

from .dicomfiles import make_image
from .helpers import data_set_bytes, raw_stores

_UN = 0x7FE11001  # after Pixel Data, so the data set's tags still ascend


def _odd_element(syntax: str, value: bytes) -> bytes:
    """(7FE1,1001) UN holding ``value`` as it is (odd length included)."""
    group, element = _UN >> 16, _UN & 0xFFFF
    if syntax == ImplicitVRLittleEndian:
        return struct.pack("<HHI", group, element, len(value)) + value
    if syntax == ExplicitVRBigEndian:
        return struct.pack(">HH2sHI", group, element, b"UN", 0, len(value)) + value
    return struct.pack("<HH2sHI", group, element, b"UN", 0, len(value)) + value


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                    ExplicitVRBigEndian],
                         ids=["explicit-le", "implicit-le", "explicit-be"])
@pytest.mark.parametrize("rows", [32, 1100], ids=["in-memory", "spilled"])
def test_an_odd_length_data_set_is_stored_as_it_came_and_said(
        root: Path, caplog: pytest.LogCaptureFixture, syntax: str, rows: int) -> None:
    odd_ds, even_ds = make_image(1, rows=rows, columns=1000), make_image(2)
    odd = data_set_bytes(odd_ds, syntax) + _odd_element(syntax, b"abc")
    even = data_set_bytes(even_ds, syntax) + _odd_element(syntax, b"abcd")
    assert len(odd) % 2 == 1 and (len(odd) > SPILL_THRESHOLD) == (rows == 1100)
    with caplog.at_level(logging.WARNING, logger="dicomnet"):
        answers = run(raw_stores(root, syntax, [(odd_ds.SOPInstanceUID, odd),
                                                (even_ds.SOPInstanceUID, even)]), timeout=60)
    assert answers == [(0x0000, ""), (0x0000, "")]
    # Stored byte for byte as it came: nothing padded, nothing dropped.
    stored = {p.name: read_part10(p) for p in root.rglob("*.dcm")}
    info = stored[f"{odd_ds.SOPInstanceUID}.dcm"]
    assert info.dataset_length == len(odd)
    assert info.path.read_bytes()[info.dataset_offset:] == odd
    lines = [r for r in caplog.records if "odd length" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert lines[0].levelno == logging.WARNING
    line = lines[0].getMessage()
    assert f"C-STORE {odd_ds.SOPInstanceUID} from RAWSCU@127.0.0.1:" in line
    assert "its data set has an odd length" in line and "PS3.5 7.1.1" in line
    assert "cannot be sent on as it is" in line and "DCMTK" in line and "Orthanc" in line
