"""Converting a data set between Little and Big Endian keeps the values of OW (and
OF, OL, OD, OV) elements, which pydicom holds as bytes: 16-bit Pixel Data came out
scrambled, answered Success (found by an interop review against DCMTK and
Orthanc). And a file is converted to Little Endian when the peer takes it, never
to Big Endian because the batch held a Big Endian file too."""

from __future__ import annotations

import array
import warnings
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from .dicomfiles import make_image, uid, write_part10
from .helpers import send_files
from .test_store_dataset import store_in_memory

VALUES = list(range(0, 65536, 97))[:256]  # 16 x 16, high and low bytes all different


def _sixteen_bit(number: int, *, big_endian: bool = False) -> Dataset:
    """A 16-bit image whose OW values are in the byte order of the syntax it will be
    written in (pydicom writes OW bytes as they are, in either order)."""
    ds = make_image(number, rows=16, columns=16)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    words = array.array("H", VALUES)
    if big_endian:
        words.byteswap()
    ds.PixelData = words.tobytes()
    ds["PixelData"].VR = "OW"
    # An OW value inside a sequence item must be swapped too.
    item = ds.ReferencedImageSequence[0]
    item.add(DataElement(0x00090010, "LO", "DICOMNET TEST"))
    item.add(DataElement(0x00091001, "OW", b"\x02\x01\x04\x03" if big_endian
                         else b"\x01\x02\x03\x04"))
    return ds


def _words(data: bytes, *, big_endian: bool) -> list[int]:
    words = array.array("H")
    words.frombytes(data)
    if big_endian:
        words.byteswap()
    return list(words)


def _stored(root: Path, number: int) -> Dataset:
    return dcmread(root / uid(1, number) / uid(2, number) / f"{uid(9, number)}.dcm")



def test_a_big_endian_file_converted_to_little_endian_keeps_its_values(tmp_path: Path) -> None:
    big = write_part10(tmp_path / "be.dcm", _sixteen_bit(1, big_endian=True),
                       ExplicitVRBigEndian)
    [result] = send_files(tmp_path / "root", [big], [ExplicitVRLittleEndian])
    assert (result.ok, result.converted_to) == (True, ExplicitVRLittleEndian)
    stored = _stored(tmp_path / "root", 1)
    assert _words(stored.PixelData, big_endian=False) == VALUES
    assert stored.ReferencedImageSequence[0][0x00091001].value == b"\x01\x02\x03\x04"
    assert stored.PatientID == "PID0001"  # what pydicom decodes comes across as before


def test_a_file_is_converted_to_little_endian_when_both_orders_are_accepted(
        tmp_path: Path) -> None:
    files = [write_part10(tmp_path / "be.dcm", _sixteen_bit(3, big_endian=True),
                          ExplicitVRBigEndian),
             write_part10(tmp_path / "deflated.dcm", _sixteen_bit(4),
                          DeflatedExplicitVRLittleEndian)]
    results = send_files(tmp_path / "root", files, [ExplicitVRBigEndian, ExplicitVRLittleEndian])
    assert [(r.ok, r.converted_to) for r in results] == [
        (True, None), (True, ExplicitVRLittleEndian)]
    assert _words(_stored(tmp_path / "root", 4).PixelData, big_endian=False) == VALUES


def _store_in(root: Path, ds: Dataset, syntax: str) -> int:
    return int(store_in_memory(root, (syntax,), [ds])[0])


def test_data_sets_in_memory_change_byte_order_with_their_values_kept(tmp_path: Path) -> None:
    read_in_be = dcmread(write_part10(tmp_path / "be.dcm", _sixteen_bit(5, big_endian=True),
                                      ExplicitVRBigEndian))
    before = bytes(read_in_be.PixelData)
    assert _store_in(tmp_path / "le", read_in_be, ExplicitVRLittleEndian) == 0
    assert _words(_stored(tmp_path / "le", 5).PixelData, big_endian=False) == VALUES
    assert read_in_be.PixelData == before  # swapped for the encoding, and back
    made = _sixteen_bit(6)  # no File Meta: in memory, Little Endian
    assert _store_in(tmp_path / "be", made, ExplicitVRBigEndian) == 0
    stored = _stored(tmp_path / "be", 6)
    assert _words(stored.PixelData, big_endian=True) == VALUES
    assert stored.ReferencedImageSequence[0][0x00091001].value == b"\x02\x01\x04\x03"


def test_the_data_set_given_is_never_changed_not_even_while_it_is_encoded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sends of one data set at once (to two peers, each in a worker thread)
    saw each other's swapping: one peer got scrambled words (a code review found
    it). The swapped values now live in a copy."""
    from dicomnet.services import store_dataset

    ds = _sixteen_bit(7)
    before = bytes(ds.PixelData)
    seen: list[bytes] = []
    from pydicom.filewriter import write_dataset as write

    def watching(buffer: object, encoded: Dataset) -> None:
        seen.append(bytes(ds.PixelData))  # the caller's, mid-encoding
        write(buffer, encoded)  # type: ignore[arg-type]

    monkeypatch.setattr(store_dataset, "write_dataset", watching)
    raw = store_dataset.encode_dataset(ds, ExplicitVRBigEndian)
    assert seen == [before]
    assert ds.PixelData == before
    swapped = array.array("H", VALUES)  # written in Big Endian
    swapped.byteswap()
    assert swapped.tobytes() in raw


def test_a_conversion_pydicom_refuses_fails_alone_with_a_one_line_reason(
        tmp_path: Path) -> None:
    """Under pytest's filterwarnings = error pydicom's warning about a value too
    long for its VR is an exception inside its writer, which wraps it with the
    whole traceback: the result says which element, in one line."""
    ds = make_image(3, rows=4, columns=4)
    with warnings.catch_warnings():  # the file as a device wrote it
        warnings.simplefilter("ignore")
        ds.add(DataElement(0x00181020, "LO", "x" * 80))  # Software Versions: LO is 64 at most
        bad = write_part10(tmp_path / "long.dcm", ds, ExplicitVRLittleEndian)
    good = write_part10(tmp_path / "ok.dcm", make_image(4, rows=4, columns=4),
                        ExplicitVRLittleEndian)
    results = send_files(tmp_path / "root", [bad, good], [ImplicitVRLittleEndian])
    by_name = {Path(r.path).name: r for r in results}
    failed, sent = by_name["long.dcm"], by_name["ok.dcm"]
    assert (failed.ok, failed.status) == (False, None)
    assert failed.error is not None and "\n" not in failed.error
    assert failed.error.startswith(f"cannot convert to Implicit VR Little Endian "
                                   f"({ImplicitVRLittleEndian}): (0018,1020): ")
    assert "exceeds the maximum length of 64" in failed.error
    assert (sent.ok, sent.converted_to) == (True, ImplicitVRLittleEndian)
