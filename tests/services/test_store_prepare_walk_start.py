"""prepare_file looks at a data set's first element header once: the check that
an Explicit VR syntax's data set is not in Implicit VR (``implicit_vr_at``) tells
the walk of its one PDU (storage.completeness) that the header is explicit, which
it looked at again before (``_resume`` and ``implicit_vr_at``: two Python calls
per object sent). What is found is the same: a file whole goes, one cut short
or in Implicit VR under Explicit VR Big Endian does not."""

from __future__ import annotations

import asyncio
import collections
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.store_prepare import PduBuffers, Prepared, prepare_file
from dicomnet.services.store_result import StoreResult
from dicomnet.storage import read_part10
from dicomnet.storage.completeness import walker_for
from dicomnet.storage.part10 import with_transfer_syntax
from dicomnet.ul.negotiation import AcceptedContext
from tests.storage.dicomfiles import make_image, write_part10

BIG_ENDIAN = "1.2.840.10008.1.2.2"


def _prepare(path: Path, syntax: str) -> tuple[Prepared | None, StoreResult,
                                                collections.Counter[str]]:
    info = read_part10(path)
    contexts = {1: AcceptedContext(1, info.sop_class_uid, syntax)}
    assoc = SimpleNamespace(contexts=contexts, dimse=SimpleNamespace(next_message_id=lambda: 9),
                            ul=SimpleNamespace(peer_max_pdu_length=1 << 20))
    result = StoreResult(path=path)
    called: collections.Counter[str] = collections.Counter()

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "call":
            called[frame.f_code.co_qualname] += 1

    async def main() -> Prepared | None:
        sys.setprofile(profile)
        try:
            return await prepare_file(assoc, info, result, PduBuffers())  # type: ignore[arg-type]
        finally:
            sys.setprofile(None)

    prepared = asyncio.run(main())
    if prepared is not None and prepared[2] is not None:
        prepared[2].close()
    return prepared, result, called


def test_the_first_header_is_looked_at_once(tmp_path: Path) -> None:
    image = write_part10(tmp_path / "a.dcm", make_image(1, rows=64, columns=64),
                         ExplicitVRLittleEndian)
    prepared, result, called = _prepare(image, ExplicitVRLittleEndian)
    assert prepared is not None and result.error is None
    assert called["implicit_vr_at"] == 1, called
    assert called["DatasetWalker._resume"] == 0, called
    assert called["DatasetWalker._walk"] == 1


def test_a_file_cut_short_is_still_found(tmp_path: Path) -> None:
    image = write_part10(tmp_path / "a.dcm", make_image(1, rows=64, columns=64),
                         ExplicitVRLittleEndian)
    image.write_bytes(image.read_bytes()[:-100])
    prepared, result, _ = _prepare(image, ExplicitVRLittleEndian)
    assert prepared is None and result.error is not None and result.error.startswith("not sent:")


def test_implicit_vr_under_big_endian_is_still_refused(tmp_path: Path) -> None:
    """Explicit VR Big Endian's label over an Implicit VR data set (no relabelling
    there): refused by the look at its first header, as before."""
    implicit = write_part10(tmp_path / "i.dcm", make_image(1, rows=8, columns=8),
                            "1.2.840.10008.1.2")
    data = implicit.read_bytes()
    offset = read_part10(implicit).dataset_offset
    relabelled = tmp_path / "b.dcm"
    relabelled.write_bytes(with_transfer_syntax(data[:offset], BIG_ENDIAN) + data[offset:])
    assert read_part10(relabelled).transfer_syntax_uid == BIG_ENDIAN
    prepared, result, _ = _prepare(relabelled, BIG_ENDIAN)
    assert prepared is None and result.error is not None
    assert "Implicit VR" in result.error


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, BIG_ENDIAN])
def test_a_walk_told_the_start_is_explicit_finds_the_same(tmp_path: Path, syntax: str) -> None:
    image = write_part10(tmp_path / "a.dcm", make_image(1, rows=16, columns=16), syntax)
    info = read_part10(image)
    body = image.read_bytes()[info.dataset_offset:]
    for data in (body, body[:-3], body[:8], body[:7], body + b"\0\0"):
        told, untold = (walker_for(syntax, pixel_data=True, explicit_start=len(data) >= 8),
                        walker_for(syntax, pixel_data=True))
        told.feed(data)
        untold.feed(data)
        assert told.problem() == untold.problem()
