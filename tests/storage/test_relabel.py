"""storage.relabel: a stored file whose header names Explicit VR Little Endian
over an Implicit VR data set rewritten to name its data set's syntax, atomically
(``dicomnet reindex --repair``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.storage.files import StorageError
from dicomnet.storage.part10 import read_part10
from dicomnet.storage.relabel import relabel_file
from tests.storage.dicomfiles import make_image
from tests.storage.helpers import data_set_bytes
from tests.storage.stray import meta_elements, meta_group_length
from tests.storage.test_store_scu_mislabelled import _mislabelled


@pytest.mark.parametrize("stray", [False, True], ids=["plain", "after-stray-meta"])
def test_relabel_file_names_the_data_sets_syntax(tmp_path: Path, stray: bool) -> None:
    ds = make_image(4)
    path = _mislabelled(tmp_path / "x.dcm", ds, stray=meta_elements(
        ds, ImplicitVRLittleEndian) if stray else b"")
    info = read_part10(path)
    assert info.relabelled_from == ExplicitVRLittleEndian
    size = relabel_file(info, durable=False)
    data = path.read_bytes()
    # One meta group, naming Implicit VR; the data set unchanged, without group 0002.
    assert size == len(data)
    assert data[meta_group_length(data):] == data_set_bytes(ds, ImplicitVRLittleEndian)
    again = read_part10(path)
    assert (again.transfer_syntax_uid, again.relabelled_from, again.stray_meta) == (
        ImplicitVRLittleEndian, None, ())
    assert dcmread(path).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]


def test_a_file_changed_since_it_was_read_is_left_as_it_is(tmp_path: Path) -> None:
    path = _mislabelled(tmp_path / "x.dcm", make_image(5))
    info = read_part10(path)
    with path.open("ab") as fp:
        fp.write(b"\0\0")
    before = path.read_bytes()
    with pytest.raises(StorageError, match="changed since it was read"):
        relabel_file(info, durable=False)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]
