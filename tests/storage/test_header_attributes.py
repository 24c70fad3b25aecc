"""HeaderAttributes.text(): the SCP's raw header attributes read as pydicom reads them.

Each check compares with what pydicom's full reader makes of the same bytes, in
each transfer syntax: the values are read raw (scanned, walked, or inflated and
walked for Deflated Explicit VR Little Endian) and decoded without pydicom, in
plain character sets and others (code extensions too), text and binary.
"""

from __future__ import annotations

import io
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomnet.storage.header import HEADER_PREFIX, HeaderAttributes, read_header
from dicomnet.storage.rows import ROW_KEYWORDS
from tests.storage.dicomfiles import make_image, uid
from tests.storage.helpers import received

RAW_SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian]
ALL_SYNTAXES = [*RAW_SYNTAXES, DeflatedExplicitVRLittleEndian]
SYNTAX_IDS = {ImplicitVRLittleEndian: "implicit-le", ExplicitVRLittleEndian: "explicit-le",
              ExplicitVRBigEndian: "explicit-be", DeflatedExplicitVRLittleEndian: "deflated"}

#: Elements of make_image() before group 0028 whose VR is binary (US, SS, UL, FD, FL).
BINARY_KEYWORDS = {
    "AcquisitionMatrix": "0\\32\\24\\0",  # US, 4 values
    "TagAngleSecondAxis": "-1234",  # SS
    "InStackPositionNumber": "16909060",  # UL 0x01020304
    "DiffusionBValue": "1000.5",  # FD
    "DiffusionGradientOrientation": "0.25\\-1.5\\3.125",  # FD, 3 values
    "LocalizingCursorPosition": "1.5\\-2.25",  # FL, 2 values
}


def pydicom_reads(buffer: bytearray) -> Dataset:
    """The reference: pydicom's full reader on the same bytes."""
    return pydicom.dcmread(io.BytesIO(bytes(buffer)))


def pydicom_text(ds: Dataset, keyword: str) -> str:
    value = ds[keyword].value
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)


def is_raw(got: HeaderAttributes) -> bool:
    """Whether the fast path (raw elements) produced ``got``, not the full reader."""
    return got._raw is not None


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=SYNTAX_IDS.get)
def test_multi_valued_text_is_joined_by_backslash(syntax: str) -> None:
    ds = make_image(3)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]  # CS
    ds.AdmittingDiagnosesDescription = ["Headache", "Fever"]  # LO 1-n
    buffer = received(ds, syntax)
    got = read_header(buffer, None, syntax)
    assert is_raw(got)
    assert got.text("ImageType") == "ORIGINAL\\PRIMARY\\AXIAL"
    assert got.text("AdmittingDiagnosesDescription") == "Headache\\Fever"
    reference = pydicom_reads(buffer)
    assert got.text("ImageType") == pydicom_text(reference, "ImageType")


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=SYNTAX_IDS.get)
def test_padding_is_stripped(syntax: str) -> None:
    sop_uid = uid(9, 5)
    assert len(sop_uid) % 2 == 1  # pydicom pads it with a NUL
    ds = make_image(5, sop_instance_uid=sop_uid)
    ds.PatientID = "ABC"  # odd: padded with a space
    ds.add(DataElement(0x00080050, "SH", b"A1    "))  # Accession Number, extra spaces
    buffer = received(ds, syntax)
    if syntax != DeflatedExplicitVRLittleEndian:  # the padding is really on the wire
        assert sop_uid.encode() + b"\0" in buffer
        assert b"ABC " in buffer
    got = read_header(buffer, None, syntax)
    assert got.text("SOPInstanceUID") == sop_uid
    assert got.text("PatientID") == "ABC"
    assert got.text("AccessionNumber") == "A1"


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=SYNTAX_IDS.get)
def test_empty_and_absent_attributes_are_none(syntax: str) -> None:
    ds = make_image(4)
    assert ds.ReferringPhysicianName == ""
    assert "StudyDescription" not in ds
    got = read_header(received(ds, syntax), None, syntax)
    assert got.text("ReferringPhysicianName") is None
    assert "ReferringPhysicianName" in got
    assert got.text("StudyDescription") is None
    assert "StudyDescription" not in got
    assert "StudyInstanceUID" in got


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=SYNTAX_IDS.get)
def test_binary_values_are_text_as_pydicom_reads_them(syntax: str) -> None:
    buffer = received(make_image(8), syntax)
    got = read_header(buffer, None, syntax)
    reference = pydicom_reads(buffer)
    for keyword, expected in BINARY_KEYWORDS.items():
        assert got.text(keyword) == expected, keyword
        assert pydicom_text(reference, keyword) == expected, keyword
    # IS and DS are text: straight from the bytes.
    assert got.text("InstanceNumber") == "8"
    assert got.text("SeriesNumber") == "1"
    assert got.dataset.AcquisitionMatrix == [0, 32, 24, 0]


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=SYNTAX_IDS.get)
@pytest.mark.parametrize(("charset", "codec", "name"), [
    ("ISO_IR 100", "latin-1", "Müller^Jürgen"),
    ("ISO_IR 192", "utf-8", "Müller^Zoë=山田^太郎"),
    # Ivanov^Pyotr in Cyrillic; not a plain character set: pydicom decodes it.
    ("ISO_IR 144", "iso8859_5", "\u0418\u0432\u0430\u043d\u043e\u0432^\u041f\u0451\u0442\u0440"),
], ids=["latin1", "utf8", "cyrillic"])
def test_names_decode_in_their_character_set(syntax: str, charset: str, codec: str,
                                             name: str) -> None:
    ds = make_image(9)
    ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.StudyDescription = name.replace("^", " ")  # LO
    buffer = received(ds, syntax)
    if syntax != DeflatedExplicitVRLittleEndian:
        assert name.encode(codec) in buffer  # written in the declared character set
    got = read_header(buffer, None, syntax)
    reference = pydicom_reads(buffer)
    assert str(reference.PatientName) == name
    assert got.text("PatientName") == name
    assert got.text("StudyDescription") == name.replace("^", " ")
    assert got.text("SpecificCharacterSet") == charset
    assert got.text("StudyInstanceUID") == ds.StudyInstanceUID
    assert str(got.dataset.PatientName) == name


@pytest.mark.parametrize("syntax", RAW_SYNTAXES, ids=SYNTAX_IDS.get)
def test_the_dataset_view_has_the_values(syntax: str) -> None:
    ds = make_image(10)
    got = read_header(received(ds, syntax), None, syntax)
    view = got.dataset
    assert view is got.dataset  # made once
    assert view.SOPInstanceUID == ds.SOPInstanceUID
    assert view.PatientName == ds.PatientName
    assert view.TagAngleSecondAxis == -1234
    assert view.InStackPositionNumber == 0x01020304
    assert view.DiffusionBValue == 1000.5


def test_a_deflated_data_set_is_inflated_and_read_raw() -> None:
    ds = make_image(11)
    buffer = received(ds, DeflatedExplicitVRLittleEndian)
    # Deflated for real: the UIDs are not readable in the received bytes.
    assert ds.StudyInstanceUID.encode() not in buffer
    got = read_header(buffer, None, DeflatedExplicitVRLittleEndian)
    assert is_raw(got)
    assert got.text("SOPInstanceUID") == ds.SOPInstanceUID
    assert got.text("StudyInstanceUID") == ds.StudyInstanceUID
    assert got.text("SeriesInstanceUID") == ds.SeriesInstanceUID
    assert got.text("PatientName") == "Test^Patient11"
    assert got.text("AcquisitionMatrix") == "0\\32\\24\\0"


@pytest.mark.parametrize("garbage", [
    b"",
    b"not a DICOM object at all " * 20,
    bytes(128) + b"DICX" + bytes(200),  # a preamble, then the wrong magic
], ids=["empty", "text", "bad-magic"])
@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=SYNTAX_IDS.get)
def test_a_buffer_without_our_header_raises(garbage: bytes, syntax: str) -> None:
    with pytest.raises(InvalidDicomError):
        read_header(bytearray(garbage), None, syntax)


def test_a_file_without_our_header_raises(tmp_path: Path) -> None:
    path = tmp_path / "garbage.dcm"
    path.write_bytes(b"\x00\x01" * 300)
    with pytest.raises(InvalidDicomError):
        read_header(None, str(path), ExplicitVRLittleEndian)


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=SYNTAX_IDS.get)
def test_reading_from_a_path_gives_what_the_buffer_gives(tmp_path: Path, syntax: str) -> None:
    ds = make_image(12)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Ærøskøbing^Åse"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    buffer = received(ds, syntax)
    path = tmp_path / "received.dcm"
    path.write_bytes(buffer)
    from_buffer = read_header(buffer, None, syntax)
    from_file = read_header(None, str(path), syntax)
    keywords = ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID",
                "PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyTime",
                "AccessionNumber", "Modality", "SeriesNumber", "InstanceNumber", "ImageType",
                "ReferringPhysicianName", "StudyDescription", *BINARY_KEYWORDS]
    assert {k: from_file.text(k) for k in keywords} == {k: from_buffer.text(k) for k in keywords}
    assert from_file.text("PatientName") == "Ærøskøbing^Åse"
    assert from_file.text("ImageType") == "DERIVED\\SECONDARY"
    assert from_file.text("StudyDescription") is None


def test_a_path_is_read_whole_even_beyond_the_prefix(tmp_path: Path) -> None:
    ds = make_image(13)
    ds.add_new(0x00091010, "OB", b"\x00" * (HEADER_PREFIX + 10))  # before group 0020
    ds.add_new(0x00090010, "LO", "BIG PRIVATE")
    path = tmp_path / "big.dcm"
    path.write_bytes(received(ds, ExplicitVRLittleEndian))
    got = read_header(None, str(path), ExplicitVRLittleEndian)
    assert is_raw(got)
    assert got.text("StudyInstanceUID") == ds.StudyInstanceUID
    assert got.text("SeriesInstanceUID") == ds.SeriesInstanceUID


def test_from_dataset_gives_the_same_text() -> None:
    ds = make_image(14)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    wrapped = HeaderAttributes.from_dataset(ds)
    assert wrapped.dataset is ds
    assert wrapped.text("ImageType") == "ORIGINAL\\PRIMARY"
    assert wrapped.text("PatientName") == "Test^Patient14"
    assert wrapped.text("AcquisitionMatrix") == "0\\32\\24\\0"
    assert wrapped.text("ReferringPhysicianName") is None
    assert wrapped.text("StudyDescription") is None
    assert "PatientID" in wrapped
    assert "StudyDescription" not in wrapped


@pytest.mark.parametrize("syntax", RAW_SYNTAXES, ids=SYNTAX_IDS.get)
def test_an_undefined_length_sequence_before_group_0028(syntax: str) -> None:
    ds = make_image(15)
    ds["ReferencedImageSequence"].is_undefined_length = True  # (0008,1140)
    buffer = received(ds, syntax)
    got = read_header(buffer, None, syntax)
    assert got.text("SOPInstanceUID") == ds.SOPInstanceUID
    assert got.text("StudyInstanceUID") == ds.StudyInstanceUID
    assert got.text("SeriesInstanceUID") == ds.SeriesInstanceUID
    assert got.text("PatientName") == "Test^Patient15"
    for keyword, expected in BINARY_KEYWORDS.items():
        assert got.text(keyword) == expected, keyword


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=SYNTAX_IDS.get)
def test_a_data_set_that_ends_before_group_0028(syntax: str) -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = uid(9, 16)
    ds.StudyInstanceUID = uid(1, 16)
    ds.SeriesInstanceUID = uid(2, 16)
    ds.PatientID = "P16"
    ds.InstanceNumber = 16
    got = read_header(received(ds, syntax), None, syntax)
    assert got.text("SOPInstanceUID") == uid(9, 16)
    assert got.text("StudyInstanceUID") == uid(1, 16)
    assert got.text("SeriesInstanceUID") == uid(2, 16)
    assert got.text("PatientID") == "P16"
    assert got.text("InstanceNumber") == "16"
    assert got.text("PatientName") is None


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=SYNTAX_IDS.get)
def test_long_length_elements_before_group_0028(syntax: str) -> None:
    """OB and UR have a 4-byte length in Explicit VR (PS3.5 7.1.2); UR is text."""
    url = "https://pacs.example.org/wado/studies/" + uid(1, 17)  # odd length: padded
    ds = make_image(17)
    ds.add_new(0x00090010, "LO", "DICOMNET TEST")
    ds.add_new(0x00091001, "OB", b"\x01\x02\x03\x04" * 25)
    ds.RetrieveURL = url  # (0008,1190) UR
    got = read_header(received(ds, syntax), None, syntax)
    assert got.text("RetrieveURL") == url
    assert got.text("SOPInstanceUID") == ds.SOPInstanceUID
    assert got.text("StudyInstanceUID") == ds.StudyInstanceUID
    assert got.text("SeriesInstanceUID") == ds.SeriesInstanceUID
    assert got.text("PatientID") == "PID0017"
    assert got.text("AcquisitionMatrix") == "0\\32\\24\\0"


def test_the_dataset_view_keeps_sequence_items() -> None:
    """The Dataset view of a data set read raw (Big Endian: walked) still has the
    items of a sequence of defined length before group 0028."""
    ds = make_image(16)
    buffer = received(ds, ExplicitVRBigEndian)
    got = read_header(buffer, None, ExplicitVRBigEndian)
    expected = pydicom_reads(buffer).ReferencedImageSequence
    assert len(expected) >= 1
    items = got.dataset.ReferencedImageSequence
    assert len(items) == len(expected)
    assert items[0].ReferencedSOPInstanceUID == expected[0].ReferencedSOPInstanceUID


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=SYNTAX_IDS.get)
def test_bytes_beyond_ascii_without_a_character_set_read_as_pydicom_reads_them(
        syntax: str) -> None:
    ds = make_image(17)
    ds.add(DataElement(0x00100010, "PN", "Müller^Jürgen".encode("latin-1") + b" "))
    assert "SpecificCharacterSet" not in ds
    buffer = received(ds, syntax)
    got = read_header(buffer, None, syntax)
    assert got.text("PatientName") == "Müller^Jürgen"


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=SYNTAX_IDS.get)
@pytest.mark.parametrize("charset", ["", "ISO_IR 192", "ISO_IR 144"],
                         ids=["default", "utf8", "cyrillic"])
def test_texts_is_text_of_each_keyword(syntax: str, charset: str) -> None:
    """texts() (an index row's eighteen in one call) answers what text() answers,
    for text, binary, multi-valued, padded, empty and absent attributes, on the
    fast path and on both fallbacks (another character set, the full reader)."""
    ds = make_image(6)
    if charset:
        ds.SpecificCharacterSet = charset
        ds.PatientName = "\u0418\u0432\u0430\u043d\u043e\u0432^Zoe"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.add(DataElement(0x00080050, "SH", b"A1    "))
    keywords = ["SOPInstanceUID", "PatientName", "ImageType", "AccessionNumber",
                "ReferringPhysicianName", "StudyDescription", *BINARY_KEYWORDS,
                "InstanceNumber", "PatientID"]
    got = read_header(received(ds, syntax), None, syntax)
    expected = [got.text(keyword) for keyword in keywords]
    assert got.texts(keywords) == expected
    assert expected[keywords.index("StudyDescription")] is None  # absent
    assert expected[keywords.index("ReferringPhysicianName")] is None  # empty
    assert expected[keywords.index("AccessionNumber")] == "A1"
    assert got.texts([]) == []
    # A keyword twice, and the same keywords again as a tuple (its plan kept).
    assert got.texts([*keywords, "PatientID"]) == [*expected, expected[-1]]
    assert got.texts(tuple(keywords)) == expected
    # An unknown keyword is a KeyError on every path (the fallbacks answered None).
    with pytest.raises(KeyError, match="NoSuchKeyword"):
        got.text("NoSuchKeyword")
    with pytest.raises(KeyError, match="NoSuchKeyword"):
        got.texts(["SOPInstanceUID", "NoSuchKeyword"])


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=SYNTAX_IDS.get)
@pytest.mark.parametrize(("charset", "name", "description"), [
    # PS3.5 H.3.1 and I.2: code extensions (ISO 2022), escape sequences in the values.
    (["", "ISO 2022 IR 87"],
     "Yamada^Tarou=\u5c71\u7530^\u592a\u90ce=\u3084\u307e\u3060^\u305f\u308d\u3046",
     "\u80f8\u90e8 CT"),
    (["", "ISO 2022 IR 149"], "Hong^Gildong=\u6d2a^\u5409\u6d1e=\ud64d^\uae38\ub3d9",
     "\ud749\ubd80"),
    # Standalone multi-byte character sets: no escapes.
    ("GB18030", "Wang^XiaoDong=\u738b^\u5c0f\u6771", "\u80f8\u90e8"),
    ("GBK", "Wang^XiaoDong=\u738b^\u5c0f\u4e1c", "\u80f8\u90e8"),
], ids=["japanese", "korean", "gb18030", "gbk"])
def test_code_extensions_decode_as_pydicom_decodes_them(
        syntax: str, charset: str | list[str], name: str, description: str) -> None:
    """Character sets other than the plain ones are decoded here too, not by
    pydicom's value conversion (see storage.header): as pydicom decodes them."""
    ds = make_image(18)
    ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.StudyDescription = description
    buffer = received(ds, syntax)
    got = read_header(buffer, None, syntax)
    reference = pydicom_reads(buffer)
    assert is_raw(got)
    assert got.text("PatientName") == str(reference.PatientName) == name
    assert got.text("StudyDescription") == reference.StudyDescription == description
    assert got.texts(["PatientName", "StudyDescription"]) == [name, description]


@pytest.mark.parametrize("value", [
    b"\x1b$B\xff\xfe\x1b(B^Tar",  # JIS X 0208 (listed), bytes it has no character for
    b"\x1b$)C\xb0\xa1^Tarou",  # KS X 1001 (ISO 2022 IR 149): not listed
], ids=["undecodable", "unlisted-escape"])
def test_what_no_character_set_decodes_reads_as_pydicom_reads_it_without_a_warning(
        value: bytes) -> None:
    """Bytes the character set they are in cannot decode, or an escape sequence
    to a character set Specific Character Set does not list: what pydicom gives
    after its warning (replacement characters; value 1's character set), and no
    warning (they are errors here, as under python -W error)."""
    ds = make_image(19)
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou"
    assert len(value) == len("Yamada^Tarou")  # the element's length stays right
    buffer = bytearray(bytes(received(ds, ExplicitVRLittleEndian)).replace(
        b"Yamada^Tarou", value))
    got = read_header(buffer, None, ExplicitVRLittleEndian).text("PatientName")
    with pytest.warns(UserWarning):  # pydicom's own reading warns
        expected = str(pydicom_reads(buffer).PatientName)
    assert got == expected


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ExplicitVRBigEndian],
                         ids=["explicit-le", "explicit-be"])
def test_a_text_attribute_labelled_un_is_read_by_its_dictionary_vr(syntax: str) -> None:
    """A writer that did not know an attribute labels it UN (PS3.5 6.2.2): its
    value is still the text the dictionary says, as pydicom reads it."""
    ds = make_image(20)
    ds.add(DataElement(0x00081030, "UN", b"Head CT "))  # Study Description, LO
    buffer = received(ds, syntax)
    got = read_header(buffer, None, syntax)
    assert got.text("StudyDescription") == "Head CT" == pydicom_reads(buffer).StudyDescription


def _decodes(run: Callable[[], object]) -> int:
    """How many ``bytes.decode`` calls ``run()`` makes (counted, not timed)."""
    count = 0

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event == "c_call" and getattr(arg, "__name__", None) == "decode":
            count += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return count


@pytest.mark.parametrize("syntax", RAW_SYNTAXES, ids=SYNTAX_IDS.get)
def test_texts_decodes_each_value_once_per_header(syntax: str) -> None:
    """The store thread reads the four placing attributes, the index thread the
    eighteen of a row, from the same header: the four are not decoded again,
    and every text is what a fresh header gives."""
    buffer = received(make_image(6), syntax)
    placing = ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID")
    got = read_header(buffer, None, syntax)
    first = got.texts(placing)
    assert None not in first
    fresh = read_header(buffer, None, syntax)
    all_row = _decodes(lambda: fresh.texts(ROW_KEYWORDS))
    row: list[str | None] = []
    assert _decodes(lambda: row.extend(got.texts(ROW_KEYWORDS))) == all_row - len(placing)
    assert row == fresh.texts(ROW_KEYWORDS)
    assert got.texts(placing) == first
    assert _decodes(lambda: got.texts(ROW_KEYWORDS)) == 0
