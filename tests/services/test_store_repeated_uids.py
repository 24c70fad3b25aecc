"""store_paths says when files listed repeat a SOP Instance UID: each is sent and
counted stored on its answer, while the peer holds one object per UID, so the
run's count is more than what the peer holds."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import store_paths
from dicomnet.services.store_scu import StoreResult
from tests.aio.helpers import run
from tests.aio.rawscp import RawPeer, Request, raw_scp, store_response
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, uid, write_part10


def _send(files: list[Path]) -> list[StoreResult]:
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(store_response(request, 0))

    async def scenario() -> list[StoreResult]:
        async with raw_scp(answer, contexts={SECONDARY_CAPTURE: [ExplicitVRLittleEndian]}
                           ) as (port, _):
            return await store_paths("127.0.0.1", port, files)

    return run(scenario())


def test_files_repeating_a_sop_instance_uid_are_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two edits of object 0 without a new UID (another study), and a copy of
    object 1: five files stored by the count, three objects at the peer."""
    files = [write_part10(tmp_path / "a.dcm", make_image(0), ExplicitVRLittleEndian),
             write_part10(tmp_path / "b.dcm", make_image(1), ExplicitVRLittleEndian),
             write_part10(tmp_path / "c.dcm", make_image(2), ExplicitVRLittleEndian),
             write_part10(tmp_path / "d.dcm", make_image(7, sop_instance_uid=uid(9, 0)),
                          ExplicitVRLittleEndian),
             write_part10(tmp_path / "e.dcm", make_image(1), ExplicitVRLittleEndian)]
    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        results = _send(files)
    assert [r.ok for r in results] == [True] * 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"2 file(s) have the SOP Instance UID of another listed ({files[3]} as {files[0]}: "
        f"{uid(9, 0)}): each is sent, and counted stored if the peer says so, but a peer "
        "holds one object per SOP Instance UID"]


def test_distinct_uids_say_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
             for n in range(3)]
    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        assert [r.ok for r in _send(files)] == [True] * 3
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
