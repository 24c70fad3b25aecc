"""A file whose top-level Pixel Data contradicts its Transfer Syntax UID is not sent.

In an encapsulated syntax (RLE Lossless, the JPEG family...) top-level Pixel
Data has an undefined length and holds fragments; in Implicit, Explicit or Big
Endian it has a defined length (PS3.5 A.4). A file labelled one way and holding
the other was sent as it is, and refused 0xC000 by a dicomnet server and by
DCMTK's storescp. The SCU's walk of each file before it goes
(storage.completeness) now checks that too: the file fails alone, unsent, with
why, and the files after it go on the same association. Also for a data set
longer than one PDU (walked in the file) and for one to be converted."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from dicomnet.storage.part10 import part10_header
from tests.storage.dicomfiles import make_image, write_part10
from tests.storage.helpers import data_set_bytes, send_files

NATIVE = ("not sent: malformed data set: native (7FE0,0010) in an encapsulated syntax: a "
          "defined length ({} bytes), where it must have an undefined length and hold "
          "fragments (PS3.5 A.4)")
FRAGMENTS = ("not sent: malformed data set: encapsulated (7FE0,0010) in a native syntax: an "
             "undefined length, which only an encapsulated transfer syntax allows (PS3.5 A.4)")


def _file(path: Path, ds: Dataset, label: str, data_set: bytes) -> Path:
    """A Part 10 file whose meta says ``label`` and whose data set is ``data_set``."""
    path.write_bytes(part10_header(
        sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
        transfer_syntax_uid=label, implementation_class_uid="1.2.3.4",
        implementation_version_name="WRITER", source_ae_title=None) + data_set)
    return path


def _with_fragments(ds: Dataset, syntax: str, fragment: int) -> bytes:
    """``ds`` without its Pixel Data in ``syntax``, then a top-level Pixel Data of
    an undefined length: an empty offset table, one fragment, the delimiter."""
    del ds.PixelData
    order = ">" if syntax == ExplicitVRBigEndian else "<"
    if syntax == ImplicitVRLittleEndian:
        header = struct.pack("<HHL", 0x7FE0, 0x0010, 0xFFFFFFFF)
    else:
        header = struct.pack(f"{order}HH2sHL", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF)
    return (data_set_bytes(ds, syntax) + header
            + struct.pack(f"{order}HHL", 0xFFFE, 0xE000, 0)
            + struct.pack(f"{order}HHL", 0xFFFE, 0xE000, fragment) + b"\x01" * fragment
            + struct.pack(f"{order}HHL", 0xFFFE, 0xE0DD, 0))


def _send(tmp_path: Path, bad: Path, accepted: list[str], error: str) -> None:
    good = write_part10(tmp_path / "in" / "later.dcm", make_image(8, rows=8, columns=8),
                        accepted[-1])
    results = send_files(tmp_path / "store", [bad, good], accepted)
    assert [(r.path, r.status, r.ok, r.sent, r.error, r.retryable, r.association_failed)
            for r in results] == [
        (bad, None, False, False, error, False, False),  # was sent, refused 0xC000
        (good, 0, True, True, None, False, False)]
    assert len(list((tmp_path / "store").rglob("*.dcm"))) == 1


@pytest.mark.parametrize("label", [RLELossless, JPEGBaseline8Bit], ids=["rle", "jpeg"])
@pytest.mark.parametrize("rows", [32, 1100], ids=["one-pdu", "longer"])
def test_native_pixels_labelled_encapsulated_are_not_sent(
        tmp_path: Path, label: str, rows: int) -> None:
    (tmp_path / "in").mkdir()
    ds = make_image(1, rows=rows, columns=1000)
    bad = _file(tmp_path / "in" / "bad.dcm", ds, label,
                data_set_bytes(ds, ExplicitVRLittleEndian))
    _send(tmp_path, bad, [label, ExplicitVRLittleEndian], NATIVE.format(rows * 1000))


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian,
                                    ExplicitVRBigEndian], ids=["implicit", "explicit", "big"])
@pytest.mark.parametrize("fragment", [4, 1100 * 1000], ids=["one-pdu", "longer"])
def test_fragments_labelled_native_are_not_sent(
        tmp_path: Path, syntax: str, fragment: int) -> None:
    (tmp_path / "in").mkdir()
    ds = make_image(3)
    bad = _file(tmp_path / "in" / "bad.dcm", ds, syntax, _with_fragments(ds, syntax, fragment))
    _send(tmp_path, bad, [syntax, ExplicitVRLittleEndian], FRAGMENTS)


def test_fragments_labelled_native_are_not_converted(tmp_path: Path) -> None:
    """Walked before a conversion too: pydicom would carry the fragments over."""
    (tmp_path / "in").mkdir()
    ds = make_image(4)
    bad = _file(tmp_path / "in" / "bad.dcm", ds, ExplicitVRLittleEndian,
                _with_fragments(ds, ExplicitVRLittleEndian, 4))
    _send(tmp_path, bad, [ImplicitVRLittleEndian], FRAGMENTS)
