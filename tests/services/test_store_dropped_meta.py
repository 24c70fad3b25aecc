"""The group 0002 elements the SCU leaves out of a data set it sends (PS3.5 7.1;
``Part10Info.stray_meta``) are in its ``StoreResult`` (``dropped_meta``, and in
``to_dict()``): they were said only in the log, so a script reading the results
could not tell that what the peer holds differs from the file."""

from __future__ import annotations

from pathlib import Path

from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from tests.storage.dicomfiles import make_image, write_part10
from tests.storage.helpers import data_set_bytes, send_files
from tests.storage.stray import write_deflated_with_stray_meta, write_with_stray_meta

TAGS = ["(0002,0000)", "(0002,0001)", "(0002,0002)", "(0002,0003)", "(0002,0010)",
        "(0002,0013)"]


def test_each_result_names_the_meta_elements_left_out(tmp_path: Path) -> None:
    plain = write_part10(tmp_path / "in" / "a.dcm", make_image(1), ExplicitVRLittleEndian)
    stray = write_with_stray_meta(tmp_path / "in" / "b.dcm", make_image(2),
                                  ExplicitVRLittleEndian,
                                  data_set_bytes(make_image(2), ExplicitVRLittleEndian))
    deflated = write_deflated_with_stray_meta(
        tmp_path / "in" / "c.dcm", make_image(3),
        data_set_bytes(make_image(3), ExplicitVRLittleEndian))
    results = send_files(tmp_path / "store", [plain, stray, deflated],
                         [DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian])
    assert [(r.ok, r.dropped_meta) for r in results] == [(True, []), (True, TAGS),
                                                          (True, TAGS)]
    assert [r.to_dict()["dropped_meta"] for r in results] == [[], TAGS, TAGS]
