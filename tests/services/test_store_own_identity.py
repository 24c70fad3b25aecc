"""A C-STORE names its data set's own SOP Class and Instance UIDs (PS3.7 9.3.1.1),
which the File Meta Information only copies (PS3.10 7.1). A file whose data set
lacks either went under its meta's UIDs, and a peer that does not check (a dicomnet
server) kept an object whose data set does not say what it is; DCMTK's storescu
refuses such a file ("No SOP Class or Instance UID in file"). It is now not sent,
with why. A file whose two differ goes as its data set says, as storescu sends it,
and its result says so (``note``): in every syntax, a deflated one and one whose
UIDs lie past the bytes ``read_part10`` reads first too."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomnet.services.store_identity import NoOwnIdentity, own_identity
from dicomnet.storage.part10 import read_part10
from tests.storage.dicomfiles import CT_IMAGE_STORAGE, SECONDARY_CAPTURE, make_image, write_part10
from tests.storage.helpers import send_files

SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
            DeflatedExplicitVRLittleEndian]
NO_INSTANCE = ("not sent: no SOP Instance UID (0008,0018) in the data set (a C-STORE names the "
               "data set's own, not the File Meta Information's copy: PS3.7 9.3.1.1, "
               "PS3.10 7.1)")
NO_CLASS = NO_INSTANCE.replace("SOP Instance UID (0008,0018)", "SOP Class UID (0008,0016)")


def write_with_meta(path: Path, ds: Dataset, syntax: str, *, meta_class: str,
                    meta_instance: str) -> Path:
    """``ds`` as a Part 10 file in ``syntax`` whose File Meta Information names
    ``meta_class`` and ``meta_instance``, whatever the data set holds (pydicom
    makes them the data set's where it has them: the meta of one written so is
    put before the data set of another)."""
    def written(dataset: Dataset) -> tuple[bytes, bytes]:
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = UID(syntax)
        meta.MediaStorageSOPClassUID = UID(meta_class)
        meta.MediaStorageSOPInstanceUID = UID(meta_instance)
        out = Dataset()
        out.update(dataset)
        out.file_meta = meta
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, out, enforce_file_format=True)
        data = buffer.getvalue()
        split = 132 + 12 + int.from_bytes(data[140:144], "little")  # (0002,0000)'s value
        return data[:split], data[split:]

    named = Dataset()
    named.SOPClassUID, named.SOPInstanceUID = meta_class, meta_instance
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(written(named)[0] + written(ds)[1])
    return path


def without(ds: Dataset, keyword: str) -> Dataset:
    delattr(ds, keyword)
    return ds


@pytest.mark.parametrize("syntax", SYNTAXES)
@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "SOPClassUID"])
def test_a_data_set_without_its_uid_is_not_sent(tmp_path: Path, syntax: str,
                                                keyword: str) -> None:
    image = make_image(1, rows=8, columns=8)
    lacking = write_with_meta(tmp_path / "in" / "a.dcm", without(make_image(1, rows=8, columns=8),
                                                                 keyword),
                              syntax, meta_class=image.SOPClassUID,
                              meta_instance=image.SOPInstanceUID)
    info = read_part10(lacking)
    assert info.meta_uids == (image.SOPClassUID, image.SOPInstanceUID)
    with pytest.raises(NoOwnIdentity) as raised:
        own_identity(info)
    error = NO_INSTANCE if keyword == "SOPInstanceUID" else NO_CLASS
    assert f"not sent: {raised.value}" == error
    after = write_part10(tmp_path / "in" / "b.dcm", make_image(2, rows=8, columns=8),
                         ExplicitVRLittleEndian)
    results = send_files(tmp_path / "store", [lacking, after], [ExplicitVRLittleEndian])
    assert [(r.path, r.status, r.ok, r.sent, r.error) for r in results] == [
        (lacking, None, False, False, error),  # was sent under the meta's UID
        (after, 0, True, True, None)]
    assert [p.name for p in (tmp_path / "store").rglob("*.dcm")] == [
        f"{make_image(2).SOPInstanceUID}.dcm"]


def test_a_data_set_without_both_uids_names_both(tmp_path: Path) -> None:
    image = make_image(1)
    ds = without(without(make_image(1), "SOPInstanceUID"), "SOPClassUID")
    path = write_with_meta(tmp_path / "a.dcm", ds, ExplicitVRLittleEndian,
                           meta_class=image.SOPClassUID, meta_instance=image.SOPInstanceUID)
    with pytest.raises(NoOwnIdentity, match=r"^no SOP Class UID \(0008,0016\) and no SOP "
                       r"Instance UID \(0008,0018\) in the data set"):
        own_identity(read_part10(path))


def test_an_empty_sop_instance_uid_is_none(tmp_path: Path) -> None:
    image = make_image(1)
    ds = make_image(1)
    ds.SOPInstanceUID = ""
    path = write_with_meta(tmp_path / "a.dcm", ds, ExplicitVRLittleEndian,
                           meta_class=image.SOPClassUID, meta_instance=image.SOPInstanceUID)
    with pytest.raises(NoOwnIdentity, match=r"^no SOP Instance UID \(0008,0018\) in the data"):
        own_identity(read_part10(path))


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_uids_that_differ_are_sent_as_the_data_set_says_with_a_note(tmp_path: Path,
                                                                    syntax: str) -> None:
    ds = make_image(3, rows=8, columns=8, sop_class_uid=CT_IMAGE_STORAGE)
    meta_instance = ds.SOPInstanceUID + ".9"
    path = write_with_meta(tmp_path / "in" / "a.dcm", ds, syntax,
                           meta_class=SECONDARY_CAPTURE, meta_instance=meta_instance)
    results = send_files(tmp_path / "store", [path], [ExplicitVRLittleEndian, syntax])
    [result] = results
    assert (result.ok, result.status, result.sop_instance_uid, result.error) == (
        True, 0, ds.SOPInstanceUID, None)
    assert result.note == (
        f"its File Meta Information names Media Storage SOP Class UID (0002,0002) "
        f"{SECONDARY_CAPTURE}, its data set {CT_IMAGE_STORAGE}; Media Storage SOP Instance "
        f"UID (0002,0003) {meta_instance}, its data set {ds.SOPInstanceUID}: sent as its data "
        "set says (PS3.10 7.1 makes them the same object's)")
    # What the peer received and kept names the data set's own, in both places.
    [stored] = (tmp_path / "store").rglob("*.dcm")
    kept = pydicom.dcmread(stored)
    assert (kept.SOPClassUID, kept.SOPInstanceUID) == (CT_IMAGE_STORAGE, ds.SOPInstanceUID)
    assert (kept.file_meta.MediaStorageSOPClassUID,
            kept.file_meta.MediaStorageSOPInstanceUID) == (CT_IMAGE_STORAGE, ds.SOPInstanceUID)


def test_uids_past_the_first_bytes_read_are_found(tmp_path: Path) -> None:
    """Image Type (0008,0008) longer than the 16 KiB ``read_part10`` reads first:
    the SOP Instance UID after it is read from the file, and is missing here."""
    image = make_image(4)
    ds = without(make_image(4), "SOPInstanceUID")
    ds.ImageType = ["DERIVED"] * 3000
    path = write_with_meta(tmp_path / "a.dcm", ds, ExplicitVRLittleEndian,
                           meta_class=image.SOPClassUID, meta_instance=image.SOPInstanceUID)
    info = read_part10(path)
    assert info.meta_uids is not None
    with pytest.raises(NoOwnIdentity):
        own_identity(info)
    ds.SOPInstanceUID = image.SOPInstanceUID
    write_with_meta(path, ds, ExplicitVRLittleEndian, meta_class=image.SOPClassUID,
                    meta_instance=image.SOPInstanceUID)
    assert own_identity(read_part10(path))[1] is None


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_a_well_formed_file_is_not_read_again(tmp_path: Path, syntax: str) -> None:
    path = write_part10(tmp_path / "a.dcm", make_image(5), syntax)
    info = read_part10(path)
    # Deflated: read_part10 does not inflate the data set's elements; the rest agree.
    assert (info.meta_uids is None) is (syntax != DeflatedExplicitVRLittleEndian)
    checked, note = own_identity(info)
    assert note is None
    assert (checked.sop_class_uid, checked.sop_instance_uid, checked.meta_uids) == (
        SECONDARY_CAPTURE, make_image(5).SOPInstanceUID, None)


def test_a_file_rewritten_without_its_uid_after_listing_is_not_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listed whole, then rewritten without its SOP Instance UID (and so larger
    or smaller: read again before it goes, ``store_prepare.as_it_is_now``): not
    sent, with why, not sent under the UID its listing saw."""
    from dicomnet.services import store_scu

    image = make_image(1, rows=8, columns=8)
    path = write_part10(tmp_path / "in" / "a.dcm", image, ExplicitVRLittleEndian)
    read = read_part10

    def listing(listed: Path) -> object:
        info = read(listed)
        write_with_meta(path, without(make_image(1, rows=8, columns=8), "SOPInstanceUID"),
                        ExplicitVRLittleEndian, meta_class=image.SOPClassUID,
                        meta_instance=image.SOPInstanceUID)
        return info

    monkeypatch.setattr(store_scu, "read_part10", listing)
    [result] = send_files(tmp_path / "store", [path], [ExplicitVRLittleEndian])
    assert (result.ok, result.sent, result.status) == (False, False, None)
    assert result.error == (f"not sent: {path} is shorter than when it was read, and cannot "
                            f"be read as it is now: {NO_INSTANCE.removeprefix('not sent: ')}")
    assert not list((tmp_path / "store").rglob("*.dcm"))
