"""``StorageSCP(on_refused=...)``: each object answered with a failure and not
stored is told, with its status and why, after its one log line; a duplicate
rejected (``duplicates="reject"``, 0111H) among them, never told to
``on_stored``. Through real associations: one request at a time (a task per
operation), a window of 8 (the store thread answers), and a spilled object
(committed in a worker thread)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.errors import ConfigurationError
from dicomnet.services.storage import (
    RefusedInstance,
    StorageSCP,
    StoredInstance,
    StoreResult,
    store_paths,
)
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, uid, write_part10

DUPLICATE_INSTANCE = 0x0111


def _sent_twice(tmp_path: Path, root: Path, window: int, seen_stored: list[StoredInstance],
                seen_refused: list[RefusedInstance]) -> list[list[StoreResult]]:
    files = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
             for n in range(2)]
    # Over the spill threshold (1 MiB): a temporary file, committed in a worker thread.
    files.append(write_part10(tmp_path / "in" / "big.dcm",
                              make_image(7, rows=1024, columns=1100), ExplicitVRLittleEndian))

    async def scenario() -> list[list[StoreResult]]:
        scp = StorageSCP(root, duplicates="reject", on_stored=seen_stored.append,
                         on_refused=seen_refused.append)
        try:
            async with running_server(providers=[scp]) as server:
                return [await store_paths("127.0.0.1", server.port, files,
                                          calling_ae_title="MODALITY-7",
                                          called_ae_title="ARCHIVE",
                                          max_async_operations=window)
                        for _ in range(2)]
        finally:
            scp.close()

    (tmp_path / "in").mkdir(exist_ok=True)
    return run(scenario())


@pytest.mark.parametrize("window", [1, 8])
def test_a_duplicate_rejected_is_logged_and_told_to_on_refused_not_on_stored(
        tmp_path: Path, window: int, caplog: pytest.LogCaptureFixture) -> None:
    stored: list[StoredInstance] = []
    refused: list[RefusedInstance] = []
    root = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        first, second = _sent_twice(tmp_path, root, window, stored, refused)
    assert [r.status for r in first] == [0, 0, 0]
    assert [r.status for r in second] == [DUPLICATE_INSTANCE] * 3
    uids = sorted(uid(9, n) for n in (0, 1, 7))
    assert sorted(s.sop_instance_uid for s in stored) == uids  # the first copies only
    assert not any(s.duplicate for s in stored)
    assert sorted(r.sop_instance_uid for r in refused) == uids
    by_uid = {s.sop_instance_uid: s for s in stored}
    for r in refused:
        assert (r.status, r.sop_class_uid) == (DUPLICATE_INSTANCE, SECONDARY_CAPTURE)
        assert (r.calling_ae_title, r.called_ae_title) == ("MODALITY-7", "ARCHIVE")
        assert r.peer[0] == "127.0.0.1" and r.peer[1] > 0
        assert r.security is None and r.move_originator is None
        assert r.path == by_uid[r.sop_instance_uid].path and r.path.is_file()
        relative = r.path.relative_to(root).as_posix()
        assert r.reason == (f"duplicate SOP Instance UID, already stored at {relative} "
                            "(duplicates policy reject)")
    # One line per rejection, as every object not stored has: status and why.
    lines = [(rec.levelno, re.sub(r"@127\.0\.0\.1:\d+ ", "@PEER ", rec.getMessage()))
             for rec in caplog.records if uid(9, 0) in rec.getMessage()]
    relative = by_uid[uid(9, 0)].path.relative_to(root).as_posix()
    assert lines == [(logging.INFO,
                      f"C-STORE {uid(9, 0)} from MODALITY-7@PEER refused, status 0x0111: "
                      f"duplicate SOP Instance UID, already stored at {relative} "
                      "(duplicates policy reject)")]


def test_an_observer_that_raises_is_logged_and_the_answer_stands(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stored: list[StoredInstance] = []
    calls: list[str] = []

    class Failing(list[RefusedInstance]):
        def append(self, item: RefusedInstance) -> None:
            calls.append(item.sop_instance_uid)
            raise RuntimeError("the observer's own bug")

    with caplog.at_level(logging.ERROR, logger="dicomnet"):
        _, second = _sent_twice(tmp_path, tmp_path / "out", 8, stored, Failing())
    assert [r.status for r in second] == [DUPLICATE_INSTANCE] * 3
    assert len(calls) == 3
    assert sum("on_refused observer failed" in r.getMessage() for r in caplog.records) == 3


def test_a_coroutine_function_is_refused_as_on_refused(tmp_path: Path) -> None:
    async def observe(refused: RefusedInstance) -> None:
        pass

    with pytest.raises(ConfigurationError, match="on_refused must be a plain function"):
        StorageSCP(tmp_path / "out", on_refused=observe)
