"""A Part 10 file whose File Meta Information says Explicit VR Little Endian over
a data set in Implicit VR (pydicom writes one when told to; PS3.10 7.1 makes the
Transfer Syntax UID the data set's). The SCU read the label and sent the bytes
as they are on an Explicit VR context: a strict peer (DCMTK's storescp) fails on
them, a lenient one stores them mislabelled again. Now ``read_part10`` takes the
data set for what it is, Implicit VR Little Endian, with one warning: the SCU
proposes it so, sends it as is on an Implicit VR context, or converts it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.storage.part10 import part10_header, read_part10
from tests.storage.dicomfiles import assert_same_dataset, make_image
from tests.storage.helpers import data_set_bytes, send_files
from tests.storage.stray import meta_elements, meta_group_length


def _mislabelled(path: Path, ds: Dataset, *, stray: bytes = b"") -> Path:
    header = part10_header(sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
                           transfer_syntax_uid=ExplicitVRLittleEndian,
                           implementation_class_uid="1.2.3.4", implementation_version_name="W",
                           source_ae_title=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + stray + data_set_bytes(ds, ImplicitVRLittleEndian))
    return path


def _with_long_meta(path: Path, ds: Dataset) -> Path:
    """The same, its meta group longer than the SCU's first read (the full reader's
    case): a 20 KB (0002,0102) Private Information."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ds.SOPClassUID)
    meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.PrivateInformationCreatorUID = UID("1.2.3.4")
    meta.PrivateInformation = bytes(20000)
    out = Dataset()
    out.update(ds)
    out.file_meta = meta
    dcmwrite(path, out, enforce_file_format=True)
    data = path.read_bytes()
    path.write_bytes(data[:meta_group_length(data)] + data_set_bytes(ds, ImplicitVRLittleEndian))
    return path


@pytest.mark.parametrize("kind", ["plain", "after-stray-meta", "long-meta"])
def test_read_part10_takes_the_data_set_for_implicit_vr(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    ds = make_image(11, sop_instance_uid="1.2.826.0.1.3680043.8.498.77")
    if kind == "long-meta":
        path = _with_long_meta(tmp_path / "f.dcm", ds)
    else:
        stray = meta_elements(ds, ImplicitVRLittleEndian) if kind == "after-stray-meta" else b""
        path = _mislabelled(tmp_path / "f.dcm", ds, stray=stray)
    with caplog.at_level(logging.WARNING, logger="dicomnet.storage"):
        info = read_part10(path)
    assert info.transfer_syntax_uid == ImplicitVRLittleEndian
    assert info.relabelled_from == ExplicitVRLittleEndian
    assert info.sop_instance_uid == ds.SOPInstanceUID
    plain = data_set_bytes(ds, ImplicitVRLittleEndian)
    assert path.read_bytes()[info.dataset_offset:] == plain
    lines = [r.getMessage() for r in caplog.records if "Implicit VR" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"{path}: its File Meta Information says "
                                                   "Explicit VR Little Endian"), lines


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_a_file_in_its_own_syntax_is_taken_as_it_says(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, syntax: str) -> None:
    ds = make_image(12)
    header = part10_header(sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
                           transfer_syntax_uid=syntax, implementation_class_uid="1.2.3.4",
                           implementation_version_name=None, source_ae_title=None)
    path = tmp_path / "f.dcm"
    path.write_bytes(header + data_set_bytes(ds, syntax))
    with caplog.at_level(logging.WARNING, logger="dicomnet.storage"):
        info = read_part10(path)
    assert (info.transfer_syntax_uid, info.relabelled_from) == (syntax, None)
    assert not caplog.records


@pytest.mark.parametrize("accepted", [[ImplicitVRLittleEndian, ExplicitVRLittleEndian],
                                      [ExplicitVRLittleEndian]], ids=["as-is", "converted"])
def test_store_paths_sends_it_as_implicit_vr_little_endian(tmp_path: Path,
                                                           accepted: list[str]) -> None:
    ds = make_image(13)
    source = _mislabelled(tmp_path / "in" / "f.dcm", ds)
    root = tmp_path / "root"
    (result,) = send_files(root, [source], accepted)
    assert (result.status, result.error) == (0x0000, None)
    assert result.transfer_syntax_uid == ImplicitVRLittleEndian
    converted = len(accepted) == 1
    assert result.converted_to == (ExplicitVRLittleEndian if converted else None)
    (stored,) = root.rglob("*.dcm")
    info = read_part10(stored)  # the SCP's file, well labelled: no relabelling
    assert info.relabelled_from is None
    assert info.transfer_syntax_uid == (ExplicitVRLittleEndian if converted
                                        else ImplicitVRLittleEndian)
    if not converted:  # the file's bytes, as they are
        assert stored.read_bytes()[info.dataset_offset:] == data_set_bytes(
            ds, ImplicitVRLittleEndian)
    assert_same_dataset(ds, stored)  # by pydicom, which reads by the label: no guess
