"""Native Pixel Data on an encapsulated transfer syntax's context: refused.

In an encapsulated syntax (RLE, the JPEG family...) Pixel Data has an undefined
length and holds fragments (PS3.5 A.4). Odil 0.12 sends an uncompressed image's
data set as it is on an RLE Lossless context (review 29): dicomnet answered
Success and stored a Part 10 file labelled RLE Lossless with native pixels,
which DCMTK cannot read ("Pixel data in top level dataset in compressed
Transfer Syntax uses explicit length") and no decoder can decode. DCMTK's
storescp refuses such a data set; so does dicomnet now, 0xC000, storing nothing.
A sequence item's Pixel Data (an icon image) is native in every syntax: kept.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from dicomnet.storage.part10 import read_part10
from tests.aio.helpers import run

from .dicomfiles import make_image, write_part10
from .helpers import data_set_bytes, raw_stores


def _rle_bytes(ds: Dataset, folder: Path) -> bytes:
    path = write_part10(folder / "rle.dcm", ds, RLELossless)
    return path.read_bytes()[read_part10(path).dataset_offset:]


@pytest.mark.parametrize("syntax", [RLELossless, JPEGBaseline8Bit], ids=["rle", "jpeg"])
@pytest.mark.parametrize("rows", [32, 1100], ids=["in-memory", "spilled"])
def test_native_pixel_data_on_an_encapsulated_context_is_refused(
        root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, syntax: str,
        rows: int) -> None:
    native = make_image(1, rows=rows, columns=1000)
    icon = make_image(2)
    item = Dataset()
    item.Rows, item.Columns, item.PixelData = 2, 2, b"\x01\x02\x03\x04"
    item["PixelData"].VR = "OB"
    icon.IconImageSequence = Sequence([item])  # nested Pixel Data: native, allowed
    encapsulated = _rle_bytes(icon, tmp_path)
    with caplog.at_level(logging.WARNING, logger="dicomnet"):
        answers = run(raw_stores(root, syntax, [
            (native.SOPInstanceUID, data_set_bytes(native, ExplicitVRLittleEndian)),
            (icon.SOPInstanceUID, encapsulated)]), timeout=60)
    # The Error Comment (LO) holds 64 characters: the log line has the whole reason.
    assert answers[0] == (
        0xC000, "malformed data set: native (7FE0,0010) in an encapsulated syntax")
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and native.SOPInstanceUID in refusals[0]
    assert (f"malformed data set: native (7FE0,0010) in an encapsulated syntax: a defined "
            f"length ({rows * 1000} bytes), where it must have an undefined length and hold "
            "fragments (PS3.5 A.4)") in refusals[0]
    assert answers[1] == (0x0000, "")
    assert sorted(p.name for p in root.rglob("*.dcm")) == [f"{icon.SOPInstanceUID}.dcm"]


def _fragments_after(ds: Dataset, syntax: str) -> bytes:
    """``ds`` (no Pixel Data) in ``syntax``, then a top-level Pixel Data of an
    undefined length holding an empty offset table and one fragment, as an
    encapsulated syntax would have it (PS3.5 A.4)."""
    del ds.PixelData
    big = syntax == ExplicitVRBigEndian
    order = ">" if big else "<"
    if syntax == ImplicitVRLittleEndian:
        header = struct.pack("<HHL", 0x7FE0, 0x0010, 0xFFFFFFFF)
    else:
        header = struct.pack(f"{order}HH2sHL", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF)
    items = (struct.pack(f"{order}HHL", 0xFFFE, 0xE000, 0)
             + struct.pack(f"{order}HHL", 0xFFFE, 0xE000, 4) + b"\x01\x02\x03\x04"
             + struct.pack(f"{order}HHL", 0xFFFE, 0xE0DD, 0))
    return data_set_bytes(ds, syntax) + header + items


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian,
                                    ExplicitVRBigEndian], ids=["implicit", "explicit", "big"])
def test_fragments_on_a_native_context_are_refused(
        root: Path, caplog: pytest.LogCaptureFixture, syntax: str) -> None:
    """The other way round: fragments (an undefined length) as top-level Pixel
    Data on a native syntax's context (PS3.5 A.4 keeps them to encapsulated
    syntaxes; 7.1.2 allows undefined lengths to OB there only). It was stored:
    a file of a native syntax that readers cannot decode. Refused 0xC000, and
    the same image with native pixels is stored."""
    mislabelled, native = make_image(3), make_image(4)
    with caplog.at_level(logging.WARNING, logger="dicomnet"):
        answers = run(raw_stores(root, syntax, [
            (mislabelled.SOPInstanceUID, _fragments_after(mislabelled, syntax)),
            (native.SOPInstanceUID, data_set_bytes(native, syntax))]), timeout=60)
    assert answers == [
        (0xC000, "malformed data set: encapsulated (7FE0,0010) in a native syntax"),
        (0x0000, "")]
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and mislabelled.SOPInstanceUID in refusals[0]
    assert ("encapsulated (7FE0,0010) in a native syntax: an undefined length, which only "
            "an encapsulated transfer syntax allows (PS3.5 A.4)") in refusals[0]
    assert sorted(p.name for p in root.rglob("*.dcm")) == [f"{native.SOPInstanceUID}.dcm"]
