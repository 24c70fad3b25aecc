"""A deflated data set refused at our bound on inflating (PS3.5 A.5;
storage.completeness.MAX_INFLATED) says whether it inflated past it or only
declared a value that would take it there.

Before, both read "inflates past 1 GiB": a stream of a few dozen bytes whose
one length field claims 2 GiB read, in the log at ERROR and in the Error
Comment, as if the server had inflated a gigabyte.
"""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP
from dicomnet.storage import completeness
from dicomnet.storage.completeness import dataset_problem
from tests.aio.helpers import run
from tests.storage.dicomfiles import make_image
from tests.storage.helpers import data_set_bytes, store_data_sets


def _deflated(data: bytes) -> bytes:
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = deflater.compress(data) + deflater.flush()
    return stream + b"\x00" * (len(stream) % 2)


def test_a_tiny_stream_claiming_a_huge_value_is_said_to_claim_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A real server, the real bound (1 GiB): an image whose data set ends with
    an OB header claiming 0x7FFFFFF0 bytes, and nothing of it sent. Refused
    Out of Resources (A700) as before; the comment says "would inflate", the
    log names the element and where it would end, and no file is left."""
    ds = make_image(40)
    head = data_set_bytes(ds, ExplicitVRLittleEndian)
    claim = struct.pack("<HH2sHL", 0x7FE1, 0x1010, b"OB", 0, 0x7FFFFFF0)
    stream = _deflated(head + claim)
    assert len(stream) < 4096
    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        [answer] = run(store_data_sets(StorageSCP(tmp_path), DeflatedExplicitVRLittleEndian,
                                       [(ds.SOPInstanceUID, stream)]))
    assert (answer.status, answer.error_comment) == (
        0xA700, "deflated data set would inflate past 1 GiB, our limit")
    [line] = [r.getMessage() for r in caplog.records if " refused, " in r.getMessage()]
    end = len(head) + len(claim) + 0x7FFFFFF0
    assert line.endswith(
        "refused, status 0xA700: its deflated data set would inflate past 1 GiB, the most "
        "dicomnet inflates to check a deflated data set: its element (7FE1,1010) ends "
        f"{end} bytes in; not stored")
    assert not list(tmp_path.rglob("*.dcm"))


def test_inflating_past_the_bound_without_such_a_value_says_it_inflated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Element headers alone past the bound (no value claims to reach it): the
    data set did inflate past it, and is said to."""
    monkeypatch.setattr(completeness, "MAX_INFLATED", 1 << 10)
    empty = b"".join(struct.pack("<HH2sH", 0x0009, 0x1000 + n, b"LO", 0) for n in range(200))
    problem = dataset_problem(_deflated(empty), DeflatedExplicitVRLittleEndian)
    assert problem == ("its deflated data set inflates past 1 KiB, the most dicomnet "
                       "inflates to check a deflated data set")
