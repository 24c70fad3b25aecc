"""The C-STORE SCU and files that change under it: a file gone or shortened after
its header was read fails alone, before any byte of its message is sent (a
command without its data set would leave the peer waiting, then abort the
association for everyone); one that shrinks while it is being sent aborts the
association (its message cannot be completed), and the others may be retried.
With a window the responses are recorded by callbacks (no task per object).
The caller's callbacks raising stop nothing; a run that stores nothing raises
its association's error with every file's result."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.server import AssociationInfo
from dicomnet.config import Limits
from dicomnet.errors import AssociationAborted, AssociationRejected
from dicomnet.services import store_prepare, store_scu
from dicomnet.services.storage import RetryEvent, StorageSCP, StoreResult, store_paths
from dicomnet.storage.part10 import Part10Info, read_part10
from tests.aio.helpers import LOOPBACK, run, running_server
from tests.storage.dicomfiles import make_image, uid, write_part10

WINDOWS = pytest.mark.parametrize("window", [1, 8], ids=["synchronous", "window-8"])


def _files(folder: Path, count: int, **image: Any) -> list[Path]:
    return [write_part10(folder / f"{n}.dcm", make_image(n, **image), ExplicitVRLittleEndian)
            for n in range(count)]


async def _store(root: Path, files: list[Path], window: int, **kwargs: Any
                 ) -> list[StoreResult]:
    scp = StorageSCP(root)
    try:
        async with running_server(providers=[scp], **kwargs) as server:
            return await store_paths(LOOPBACK, server.port, files,
                                     max_async_operations=window)
    finally:
        scp.close()


def _stored(root: Path) -> set[str]:
    return {p.name.removesuffix(".dcm") for p in root.rglob("*.dcm")}


@WINDOWS
def test_a_file_gone_or_shortened_after_planning_fails_alone(
        tmp_path: Path, window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _files(tmp_path / "in", 4)
    read = read_part10

    def then_change(path: Path | str) -> Part10Info:
        info = read(path)  # store_paths names its files by their text
        if Path(path).name == "1.dcm":
            Path(path).unlink()
        elif Path(path).name == "2.dcm":
            os.truncate(path, info.dataset_offset + 100)
        return info

    monkeypatch.setattr(store_scu, "read_part10", then_change)
    results = run(_store(tmp_path / "out", files, window))
    assert [r.ok for r in results] == [True, False, False, True]
    assert "No such file" in (results[1].error or "")
    assert "shorter than when it was read" in (results[2].error or "")
    assert [r.retryable for r in results] == [False] * 4
    assert _stored(tmp_path / "out") == {make_image(n).SOPInstanceUID for n in (0, 3)}


@WINDOWS
def test_a_file_shrinking_while_sent_aborts_the_association(
        tmp_path: Path, window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Multi-PDU objects (the server takes 16 KiB PDUs); the second file is cut
    once its first PDU is out: its message cannot be finished."""
    files = _files(tmp_path / "in", 4, rows=256, columns=256)
    reported = send_changing_after_first_pdu(
        tmp_path / "out", monkeypatch, files, window,
        lambda path: os.truncate(path, read_part10(path).dataset_offset + 20_000))
    assert sorted(reported) == ["0.dcm", "1.dcm", "2.dcm", "3.dcm"]
    first, cut = reported["0.dcm"], reported["1.dcm"]
    assert first.ok or (first.retryable and window > 1)
    assert not cut.ok and not cut.retryable
    assert "shorter than when it was read" in (cut.error or "")
    # The others hear of the abort; it was no fault of theirs: they may be retried.
    for later in (reported["2.dcm"], reported["3.dcm"]):
        assert not later.ok and later.retryable, later
        assert "a file changed while it was sent" in (later.error or "")
    assert make_image(1).SOPInstanceUID not in _stored(tmp_path / "out")


@WINDOWS
def test_a_raising_on_progress_is_logged_and_the_transfer_goes_on(
        tmp_path: Path, window: int, caplog: pytest.LogCaptureFixture) -> None:
    """The caller's on_progress raising at every object: each is stored all the
    same and every result returned; the first exception is logged with its
    traceback, the others counted. (It ended the batch, and store_paths raised
    it: the results of the objects already sent were lost.)"""
    files = _files(tmp_path / "in", 6)
    seen: list[Path] = []

    def progress(result: StoreResult) -> None:
        seen.append(result.path)
        raise ValueError("the caller's own bug")

    async def main() -> list[StoreResult]:
        scp = StorageSCP(tmp_path / "out")
        try:
            async with running_server(providers=[scp]) as server:
                return await store_paths(LOOPBACK, server.port, files,
                                         max_async_operations=window, on_progress=progress)
        finally:
            scp.close()

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        results = run(main())
    assert [(r.path, r.ok) for r in results] == [(f, True) for f in files]
    assert sorted(seen) == files
    assert _stored(tmp_path / "out") == {make_image(n).SOPInstanceUID for n in range(6)}
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert [str(r.exc_info[1]) for r in tracebacks if r.exc_info] == ["the caller's own bug"]
    assert "the on_progress callback raised" in tracebacks[0].getMessage()
    assert any("raised 6 times in all" in r.getMessage() for r in caplog.records)


def test_a_raising_on_retry_is_logged_and_the_retry_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The first association is rejected as transient; on_retry raises: the retry
    happens all the same (the exception came out of store_paths, results lost)."""
    files = _files(tmp_path / "in", 2)
    requests: list[str] = []

    def busy_once(info: AssociationInfo) -> tuple[int, int, int] | None:
        requests.append(info.calling_ae_title)
        return (2, 3, 1) if len(requests) == 1 else None  # transient, congestion

    def on_retry(event: RetryEvent) -> None:
        raise RuntimeError("the caller's retry display")

    async def main() -> list[StoreResult]:
        scp = StorageSCP(tmp_path / "out")
        try:
            async with running_server(providers=[scp],
                                      on_association_request=busy_once) as server:
                return await store_paths(LOOPBACK, server.port, files, retries=1,
                                         retry_delay=0, on_retry=on_retry)
        finally:
            scp.close()

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        results = run(main())
    assert [(r.ok, r.attempts) for r in results] == [(True, 2), (True, 2)]
    assert len(requests) == 2
    [record] = [r for r in caplog.records if r.exc_info is not None]
    assert "the on_retry callback raised" in record.getMessage()


def test_when_nothing_was_stored_the_error_carries_every_result(tmp_path: Path) -> None:
    """A permanent rejection: store_paths raises it, and ``.results`` says of each
    file what happened (it had no results: which files were not DICOM was lost).
    65 SOP Classes need two associations (130 contexts, PS3.8 9.3.2.2); the
    second is never tried, and its files say "not sent" too (they said nothing)."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.txt").write_text("not DICOM")
    files = [folder / "notes.txt"] + [
        write_part10(folder / f"{n:02d}.dcm", make_image(n, sop_class_uid=uid(7, n)),
                     ExplicitVRLittleEndian) for n in range(65)]
    heard: list[StoreResult] = []

    async def main() -> AssociationRejected:
        async with running_server(on_association_request=lambda info: (1, 1, 3)) as server:
            with pytest.raises(AssociationRejected) as caught:
                await store_paths(LOOPBACK, server.port, files, on_progress=heard.append)
            return caught.value

    rejected = run(main())
    assert rejected.results is not None
    assert [r.path for r in rejected.results] == files
    first, *others = rejected.results
    assert (first.error or "").startswith("not a DICOM Part 10 file: ")
    assert [r.error for r in others] == [
        "not sent: association rejected (rejected-permanent) by service-user: calling AE "
        "title not recognized"] * 65
    assert not any(r.ok or r.retryable for r in rejected.results)
    assert sorted(r.path for r in heard) == sorted(files)  # each heard of once


def test_a_failure_without_a_comment_says_what_the_status_means() -> None:
    from dicomnet.dimse.messages import CStoreRSP
    from dicomnet.services.store_result import record as _record

    result = StoreResult(path=Path("x.dcm"))
    _record(result, CStoreRSP(message_id_being_responded_to=1, status=0xA900))
    assert result.error == "0xA900 (failure: Error: data set does not match SOP Class)"
    _record(result, CStoreRSP(message_id_being_responded_to=1, status=0xC000,
                              error_comment="not a CT"))
    assert result.error == "not a CT"  # the peer's own words first


def test_a_file_whose_meta_names_another_instance_is_sent_as_its_data_set_says(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """PS3.10 7.1 makes them equal; a file where they differ went with the File
    Meta Information's UID and the SCP refused it (A900: the data set differs from
    the command), where DCMTK's storescu sends what the data set says."""
    path = _files(tmp_path / "in", 1)[0]
    data = bytearray(path.read_bytes())
    right = make_image(0).SOPInstanceUID.encode()
    wrong = right[:-1] + (b"1" if right[-1:] != b"1" else b"2")
    meta_end = read_part10(path).dataset_offset
    at = data.index(right, 0, meta_end)  # in the File Meta Information only
    data[at:at + len(right)] = wrong
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="dicomnet.storage"):
        [result] = run(_store(tmp_path / "out", [path], 1))
    assert (result.ok, result.status, result.sop_instance_uid) == (True, 0, right.decode())
    assert _stored(tmp_path / "out") == {right.decode()}
    assert any(f"names SOP Instance UID {wrong.decode()}, its data set {right.decode()}"
               in r.getMessage() for r in caplog.records)


def test_a_data_set_uid_that_is_no_uid_leaves_the_meta_one(tmp_path: Path) -> None:
    """The data set's own UID replaces the File Meta Information's only when it is
    a UID (PS3.5 9.1): a malformed one does not override a good one."""
    path = _files(tmp_path / "in", 1)[0]
    data = bytearray(path.read_bytes())
    right = make_image(0).SOPInstanceUID.encode()
    meta_end = read_part10(path).dataset_offset
    at = data.index(right, meta_end)  # in the data set only
    data[at:at + 3] = b"1.."
    path.write_bytes(data)
    assert read_part10(path).sop_instance_uid == right.decode()


def send_changing_after_first_pdu(out: Path, monkeypatch: pytest.MonkeyPatch,
                                  files: list[Path], window: int,
                                  change: Callable[[Path], object]) -> dict[str, StoreResult]:
    """``files`` stored into a StorageSCP at ``out`` taking 16 KiB PDUs (so that
    each is several), ``change`` done to the second once its first PDU is out;
    each file's result by name. With a window the first may not be answered yet
    when the abort comes: nothing succeeded then, and store_paths raises it."""
    pdus = store_prepare.file_pdus

    def change_after_first(info: Part10Info, *args: Any) -> Iterator[Any]:
        produced = pdus(info, *args)
        yield next(produced)
        if info.path == files[1]:
            change(info.path)
        yield from produced

    monkeypatch.setattr(store_prepare, "file_pdus", change_after_first)
    reported: dict[str, StoreResult] = {}

    async def main() -> None:
        scp = StorageSCP(out)
        try:
            async with running_server(providers=[scp],
                                      limits=Limits(max_pdu_length=16 << 10)) as server:
                with contextlib.suppress(AssociationAborted):
                    await store_paths(LOOPBACK, server.port, files,
                                      max_async_operations=window,
                                      on_progress=lambda r: reported.update({r.path.name: r}))
        finally:
            scp.close()

    run(main(), timeout=60)
    return reported
