"""A file whose data set would go empty is not sent: one with no data set at all
after its File Meta Information, or one whose data set holds nothing but group
0002 elements, which the SCU leaves out (PS3.5 7.1; storage.stray_meta), in any
syntax, a deflated stream too (one inflating to them alone, or to nothing). It
was sent as an empty data set, which a dicomnet server answers 0xC000 "cannot
place the object: the hierarchical layout needs the study"; it now fails alone,
unsent, with why, and the files after it go on the same association."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomnet.storage.part10 import part10_header
from tests.storage.dicomfiles import make_image, write_part10
from tests.storage.helpers import send_files
from tests.storage.stray import write_deflated_with_stray_meta, write_with_stray_meta

EMPTY = "not sent: its data set is empty"
META = ("(0002,0000), (0002,0001), (0002,0002), (0002,0003), (0002,0010), (0002,0013)")


def meta_only(tags: str) -> str:
    return (f"not sent: its data set holds only File Meta Information elements ({tags}), "
            "which are left out of what is sent (PS3.5 7.1)")


def header_only(path: Path, syntax: str, stream: bytes = b"") -> Path:
    """A Part 10 file whose File Meta Information is followed by ``stream`` alone."""
    ds = make_image(7)
    path.write_bytes(part10_header(
        sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
        transfer_syntax_uid=syntax, implementation_class_uid="1.2.3.4",
        implementation_version_name="WRITER", source_ae_title=None) + stream)
    return path


def deflated(data: bytes) -> bytes:
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = deflater.compress(data) + deflater.flush()
    return stream + b"\0" * (len(stream) % 2)


def meta_only_file(folder: Path, syntax: str) -> Path:
    return write_with_stray_meta(folder / "empty.dcm", make_image(7), syntax, b"")


CASES: dict[str, tuple[Callable[[Path], Path], list[str], str]] = {
    # (the file, the syntaxes the peer accepts, the error)
    "explicit-meta-only": (lambda f: meta_only_file(f, ExplicitVRLittleEndian),
                           [ExplicitVRLittleEndian], meta_only(META)),
    "explicit-meta-only-converted": (lambda f: meta_only_file(f, ExplicitVRLittleEndian),
                                     [ImplicitVRLittleEndian], meta_only(META)),
    "implicit-meta-only": (lambda f: meta_only_file(f, ImplicitVRLittleEndian),
                           [ImplicitVRLittleEndian], meta_only(META)),
    "big-endian-meta-only": (lambda f: meta_only_file(f, ExplicitVRBigEndian),
                             [ExplicitVRBigEndian], meta_only(META)),
    "explicit-empty": (lambda f: header_only(f / "empty.dcm", ExplicitVRLittleEndian),
                       [ExplicitVRLittleEndian], EMPTY),
    "deflated-meta-only": (
        lambda f: write_deflated_with_stray_meta(f / "empty.dcm", make_image(7), b""),
        [DeflatedExplicitVRLittleEndian], meta_only(META)),
    "deflated-meta-only-converted": (
        lambda f: write_deflated_with_stray_meta(f / "empty.dcm", make_image(7), b""),
        [ExplicitVRLittleEndian], meta_only(META)),
    # Private Information past the bytes read_part10 inflates to look at the stream.
    "deflated-long-meta-only": (
        lambda f: write_deflated_with_stray_meta(f / "empty.dcm", make_image(7), b"",
                                                 private_value=64 << 10),
        [DeflatedExplicitVRLittleEndian], meta_only(META + ", (0002,0102)")),
    "deflated-empty-stream": (
        lambda f: header_only(f / "empty.dcm", DeflatedExplicitVRLittleEndian, deflated(b"")),
        [DeflatedExplicitVRLittleEndian], EMPTY),
    "deflated-empty-stream-converted": (
        lambda f: header_only(f / "empty.dcm", DeflatedExplicitVRLittleEndian, deflated(b"")),
        [ExplicitVRLittleEndian], EMPTY),
    "deflated-no-stream": (
        lambda f: header_only(f / "empty.dcm", DeflatedExplicitVRLittleEndian),
        [DeflatedExplicitVRLittleEndian], EMPTY),
}


@pytest.mark.parametrize("case", CASES)
def test_an_empty_data_set_is_not_sent(tmp_path: Path, case: str) -> None:
    make, accepted, error = CASES[case]
    (tmp_path / "in").mkdir()
    empty = make(tmp_path / "in")
    syntax = accepted[0] if accepted[0] != ExplicitVRBigEndian else ExplicitVRLittleEndian
    after = write_part10(tmp_path / "in" / "later.dcm", make_image(8, rows=8, columns=8),
                         syntax)
    results = send_files(tmp_path / "store", [empty, after], accepted)
    assert [(r.path, r.status, r.ok, r.sent, r.error, r.retryable, r.association_failed)
            for r in results] == [
        (empty, None, False, False, error, False, False),  # was 0xC000, sent
        (after, 0, True, True, None, False, False)]
    assert len(list((tmp_path / "store").rglob("*.dcm"))) == 1
