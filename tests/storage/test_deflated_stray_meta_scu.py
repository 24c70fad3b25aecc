"""A deflated file (PS3.5 A.5) whose deflate stream starts with File Meta
Information elements (group 0002; PS3.5 7.1 puts none in a data set): the SCU
sent its stream as it was, so a peer stored them in its data set (DCMTK's
storescp +xd a file with two meta groups); converted to Explicit VR Little
Endian it sent them too, and to Implicit VR pydicom read them as more meta and
the data set in the syntax they named. Now ``read_part10`` sees them in the
stream's first inflated bytes, and the data set goes without them: inflated and
deflated again for a deflated context, inflated without them for another."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomnet.services import store_convert
from dicomnet.services.store_convert import convert_to_file, redeflated
from dicomnet.storage.files import StorageError
from dicomnet.storage.part10 import read_part10
from tests.storage.dicomfiles import make_image, write_part10
from tests.storage.helpers import data_set_bytes, send_files
from tests.storage.stray import (
    assert_one_meta_group,
    inflated,
    meta_group_length,
    write_deflated_with_stray_meta,
)

TAGS = (0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020013)


def test_read_part10_sees_group_0002_inside_the_deflated_stream(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = make_image(1)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    path = write_deflated_with_stray_meta(tmp_path / "stray.dcm", ds, plain)
    well_formed = write_part10(tmp_path / "plain.dcm", make_image(2),
                               DeflatedExplicitVRLittleEndian)
    with caplog.at_level(logging.WARNING, logger="dicomnet.storage"):
        info = read_part10(path)
        plain_info = read_part10(well_formed)
    # Something else seen past them, in either: no second look before sending.
    assert (plain_info.stray_meta, plain_info.dataset_unseen) == ((), False)
    assert (info.transfer_syntax_uid, info.stray_meta, info.dataset_unseen) == (
        DeflatedExplicitVRLittleEndian, TAGS, False)
    # The stream is left where it is: its offset is the meta group's end.
    assert info.dataset_offset == meta_group_length(path.read_bytes())
    [line] = [r.getMessage() for r in caplog.records]
    assert line == (f"{path}: its deflated data set starts with File Meta Information "
                    "element(s) (0002,0000), (0002,0001), (0002,0002), (0002,0003), (0002,0010), "
                    "(0002,0013), which no data set holds (PS3.5 7.1): passed over, not sent "
                    "(its stream deflated again without them)")


def test_only_the_first_bytes_of_the_stream_are_inflated_to_see_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A Private Information value (0002,0102) of 256 KiB: the look stops inside
    it (16 KiB inflated), naming the elements seen so far; all go when sent."""
    ds = make_image(3)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    path = write_deflated_with_stray_meta(tmp_path / "long.dcm", ds, plain,
                                          private_value=256 << 10)
    with caplog.at_level(logging.WARNING, logger="dicomnet.storage"):
        info = read_part10(path)
    assert (info.stray_meta, info.dataset_unseen) == ((*TAGS, 0x00020102), True)
    assert caplog.records[0].getMessage().split(", which")[0].endswith(
        "(0002,0102) and perhaps more")
    converted, length = redeflated(info)
    with converted:
        assert inflated(converted.read()) == plain and length % 2 == 0


def test_the_bytes_sent_hold_no_group_0002(tmp_path: Path) -> None:
    """What goes on the wire (the temporary file the PDUs are read from): the
    data set alone, deflated again (a whole raw stream, padded even: PS3.5 A.5)
    or inflated for Explicit VR Little Endian, and pydicom reads the Implicit VR
    conversion as the source's data set."""
    ds = make_image(4)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    info = read_part10(write_deflated_with_stray_meta(tmp_path / "stray.dcm", ds, plain))
    converted, length = redeflated(info)
    with converted:
        data = converted.read()
    assert len(data) == length and inflated(data) == plain
    converted, length = convert_to_file(info, ExplicitVRLittleEndian)
    with converted:
        assert converted.read() == plain and length == len(plain)
    converted, length = convert_to_file(info, ImplicitVRLittleEndian)
    with converted:
        assert converted.read() == data_set_bytes(ds, ImplicitVRLittleEndian)


@pytest.mark.parametrize("accepted", [DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian,
                                      ImplicitVRLittleEndian],
                         ids=["deflated", "explicit", "implicit"])
def test_the_scu_sends_the_data_set_without_them(
        tmp_path: Path, accepted: str, caplog: pytest.LogCaptureFixture) -> None:
    """Received by a dicomnet SCP, which drops group 0002 from a data set itself
    and says so: it says nothing here, none came; its file holds exactly the
    source's data set (deflated again, for a deflated context)."""
    ds = make_image(5)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    path = write_deflated_with_stray_meta(tmp_path / "in" / "stray.dcm", ds, plain)
    root = tmp_path / "root"
    with caplog.at_level(logging.WARNING, logger="dicomnet"):
        [result] = send_files(root, [path], [accepted])
    assert (result.status, result.error) == (0x0000, None)
    assert result.converted_to == (None if accepted == DeflatedExplicitVRLittleEndian
                                   else accepted)
    stored = next(root.rglob(f"{ds.SOPInstanceUID}.dcm"))
    data = stored.read_bytes()
    dataset = data[meta_group_length(data):]
    expected = data_set_bytes(ds, ImplicitVRLittleEndian if accepted == ImplicitVRLittleEndian
                              else ExplicitVRLittleEndian)
    assert (inflated(dataset) if accepted == DeflatedExplicitVRLittleEndian
            else dataset) == expected
    assert_one_meta_group(stored, ds, accepted)
    warnings = [r.getMessage() for r in caplog.records if "File Meta Information" in
                r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(f"{path}: "), warnings


@pytest.mark.parametrize("accepted", [DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian],
                         ids=["deflated", "explicit"])
def test_a_cut_stream_fails_alone(tmp_path: Path, accepted: str) -> None:
    ds = make_image(6)
    path = write_deflated_with_stray_meta(tmp_path / "in" / "cut.dcm", ds,
                                          data_set_bytes(ds, ExplicitVRLittleEndian))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - (len(data) - meta_group_length(data)) // 2])
    info = read_part10(path)
    assert info.stray_meta == TAGS
    with pytest.raises(StorageError, match=f"^{path}: its deflated data set is cut short$"):
        redeflated(info)
    fine = write_deflated_with_stray_meta(tmp_path / "in" / "fine.dcm", make_image(7),
                                          data_set_bytes(make_image(7), ExplicitVRLittleEndian))
    cut, sent = send_files(tmp_path / "root", [path, fine], [accepted])
    assert (cut.status, cut.sent) == (None, False)
    assert cut.error == ("not sent: the data set ends inside element (7FE0,0010): 647 byte(s) "
                         "of its value missing")
    assert (sent.status, sent.error) == (0x0000, None)
    assert [p.name for p in (tmp_path / "root").rglob("*.dcm")] == [
        f"{make_image(7).SOPInstanceUID}.dcm"]


def test_inflating_past_the_bound_fails_alone_its_temporary_file_closed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream made again is bounded as a conversion is (INFLATED_MOST): past
    it the file is not sent, says why, and the next one goes."""
    monkeypatch.setattr(store_convert, "INFLATED_MOST", 1 << 20)
    made: list[object] = []
    real = store_convert._temporary

    def temporary() -> object:
        made.append(real())
        return made[-1]

    monkeypatch.setattr(store_convert, "_temporary", temporary)
    large = make_image(8, rows=1024, columns=2048)
    large.PixelData = bytes(1024 * 2048)
    big = write_deflated_with_stray_meta(tmp_path / "in" / "big.dcm", large,
                                         data_set_bytes(large, ExplicitVRLittleEndian))
    fine = write_deflated_with_stray_meta(tmp_path / "in" / "fine.dcm", make_image(9),
                                          data_set_bytes(make_image(9), ExplicitVRLittleEndian))
    failed, sent = send_files(tmp_path / "root", [big, fine], [DeflatedExplicitVRLittleEndian])
    assert (failed.status, failed.error) == (
        None, f"not sent: {big}: its deflated data set inflates past 1 MiB, the most dicomnet "
        "inflates to convert a deflated data set")
    assert sent.status == 0x0000
    assert len(made) == 2 and all(getattr(f, "closed", False) for f in made)
