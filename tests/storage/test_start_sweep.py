"""The start-up sweep runs while the server serves (storage.cleanup.StaleSweep).

It walked the whole store before the server listened: 0.5 s on 100k files,
many seconds on a million, during which ``dicomnet serve`` looked dead to
senders. Now the server listens at once and the sweep runs in a thread,
beside the stores: it must never remove a temporary file of a transfer under
way (this process's, by its name) nor break a store by removing the folder it
is about to name a file in. The interleavings are made by holding the sweep's
walk (``Sweep`` below), never by sleeping.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import open_association
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage import cleanup
from dicomnet.storage.cleanup import StaleSweep, cleanup_stale
from dicomnet.storage.files import RUN_MARK, TEMP_SUFFIX, AtomicWriter, CommitOutcome
from dicomnet.storage.lock import walk_store
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server
from tests.storage.helpers import SECONDARY_CAPTURE, data_set_bytes, make_dataset

STUDY, SERIES = "1.2.826.0.1.3680043.8.498.10", "1.2.826.0.1.3680043.8.498.100"
SWEPT = "removed {} stale temporary file(s) and {} empty folder(s) under {}"


class Sweep:
    """Holds the sweep's walk of the store (storage.lock.walk_store, as
    storage.cleanup calls it): before it lists anything until ``start`` is
    set, and, once it has listed the whole store, until ``go`` is set, so that
    what happens meanwhile meets a listing that is no longer true."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.start, self.listed, self.go = threading.Event(), threading.Event(), threading.Event()

        def walk(root: Path | str, index_name: str,
                 nested: list[str] | None = None) -> Iterator[tuple[str, list[str], list[str]]]:
            assert self.start.wait(10), "the sweep's walk was never let start"
            listing = list(walk_store(root, index_name, nested))
            self.listed.set()
            assert self.go.wait(10), "the sweep's walk was never let go on"
            yield from listing

        monkeypatch.setattr(cleanup, "walk_store", walk)

    def list_now(self) -> None:
        """Let the walk list the store, and wait until it has."""
        self.start.set()
        assert self.listed.wait(10)


def _stale(folder: Path) -> Path:
    """A temporary file an interrupted run (another process) left."""
    part = folder / f".0123456789abcdef{TEMP_SUFFIX}"
    part.write_bytes(b"half a data set")
    return part


def _old_folder(path: Path) -> Path:
    """An empty folder, last changed an hour ago (before any server started)."""
    path.mkdir(parents=True)
    for folder in (path, path.parent):
        os.utime(folder, (time.time() - 3600, time.time() - 3600))
    return path


async def _store(port: int, uid: str) -> int:
    """C-STORE one small data set (study STUDY, series SERIES); its status."""
    ds = make_dataset(sop_instance_uid=uid, study_uid=STUDY, series_uid=SERIES)
    syntax = ExplicitVRLittleEndian
    assoc = await open_association(
        "127.0.0.1", port, contexts=[ContextRequest(SECONDARY_CAPTURE, (syntax,))])
    rq = CStoreRQ(message_id=1, affected_sop_class_uid=SECONDARY_CAPTURE,
                  affected_sop_instance_uid=uid)
    rsp, _ = await assoc.request_one(rq, assoc.context_for(SECONDARY_CAPTURE).context_id,
                                     dataset=data_set_bytes(ds, syntax))
    await assoc.release()
    assert isinstance(rsp, CStoreRSP)
    return rsp.status


def _said(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == "dicomnet.storage" and r.levelno >= logging.INFO]


def test_the_server_stores_before_the_sweep_has_listed_anything(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    stale = _stale(root)
    empty = _old_folder(root / "1.2.3" / "1.2.3.4")
    sweep = Sweep(monkeypatch)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = StorageSCP(root)
        try:
            assert not scp.sweep.wait(0)  # held before its walk: the SCP is ready anyway

            async def scenario() -> None:
                async with running_server(providers=[VerificationSCP(), scp]) as server:
                    assert await _store(server.port, "1.2.826.0.1.3680043.8.498.1") == 0
                    assert stale.exists() and empty.is_dir()
                    sweep.start.set()
                    sweep.go.set()
                    assert scp.sweep.wait(10)

            run(scenario())
        finally:
            scp.close()
    assert not stale.exists() and not (root / "1.2.3").exists()
    assert (root / STUDY / SERIES / "1.2.826.0.1.3680043.8.498.1.dcm").is_file()
    assert scp.sweep.removed == 1
    assert _said(caplog) == [(logging.WARNING, SWEPT.format(1, 2, root))]


def test_a_transfer_under_way_keeps_its_temporary_file(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A sweep beside the stores removed the temporary file of a data set being
    received (a large one spills to one, in the root or its series folder):
    its commit then failed. This process's are named with its mark, and left."""
    sweep = Sweep(monkeypatch)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = StorageSCP(root)
        try:
            live = AtomicWriter(root / STUDY / SERIES / "1.2.3.dcm")  # named, not O_TMPFILE
            live.write(b"part of a data set ")
            spilled = AtomicWriter(root / "1.2.4.dcm")
            spilled.write(b"a spilled one")
            stale = [_stale(root), _stale(root / STUDY / SERIES)]
            assert live.temp_path.name.startswith(f".{RUN_MARK}-")
            sweep.start.set()
            sweep.go.set()
            assert scp.sweep.wait(10)
            assert live.temp_path.exists() and spilled.temp_path.exists()
            assert not any(part.exists() for part in stale)
            live.write(b"received whole")
            assert live.commit().outcome is CommitOutcome.STORED
            assert spilled.commit(destination=root / STUDY / SERIES / "1.2.4.dcm").stored
        finally:
            scp.close()
    assert (root / STUDY / SERIES / "1.2.3.dcm").read_bytes() == (
        b"part of a data set received whole")
    assert (root / STUDY / SERIES / "1.2.4.dcm").read_bytes() == b"a spilled one"
    assert _said(caplog) == [(logging.WARNING, SWEPT.format(2, 0, root))]


def test_reindex_removes_this_processs_temporary_files_and_new_empty_folders_too(
        root: Path) -> None:
    """reindex holds the lock and nothing stores: whatever is there is stale."""
    writer = AtomicWriter(root / STUDY / SERIES / "1.2.3.dcm")
    writer.write(b"abandoned")
    (root / "1.2.5" / "1.2.5.1").mkdir(parents=True)  # emptied a moment ago
    sweep = StaleSweep(root)
    assert sweep.wait(10)
    assert sweep.removed == 0 and writer.temp_path.exists()
    assert (root / "1.2.5" / "1.2.5.1").is_dir()
    assert cleanup_stale(root) == 1
    assert not writer.temp_path.exists() and sorted(os.listdir(root)) == []
    writer.abort()


def test_a_folder_listed_empty_and_then_stored_into_keeps_its_object(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The sweep lists a series folder as empty; a C-STORE then names an object
    there; the sweep's removal of that folder must neither fail the store nor
    take the object."""
    series = _old_folder(root / STUDY / SERIES)
    other = _old_folder(root / "1.2.3" / "1.2.3.4")
    sweep = Sweep(monkeypatch)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = StorageSCP(root)
        try:
            sweep.list_now()

            async def scenario() -> None:
                async with running_server(providers=[VerificationSCP(), scp]) as server:
                    assert await _store(server.port, "1.2.826.0.1.3680043.8.498.7") == 0
                    sweep.go.set()
                    assert scp.sweep.wait(10)
                    assert await _store(server.port, "1.2.826.0.1.3680043.8.498.8") == 0

            run(scenario())
        finally:
            scp.close()
    assert sorted(os.listdir(series)) == ["1.2.826.0.1.3680043.8.498.7.dcm",
                                          "1.2.826.0.1.3680043.8.498.8.dcm"]
    assert not other.exists() and not other.parent.exists()
    assert _said(caplog) == [(logging.INFO, SWEPT.format(0, 2, root))]


def test_a_folder_changed_since_the_start_is_left(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder listed empty, then given a file and emptied again (an object
    named there, then replaced by an overwrite under another series,
    storage.instances), may still have a folder sync to come: it is left, as
    is a folder made after the start. An untouched one goes."""
    touched = _old_folder(root / "1.2.3" / "1.2.3.4")
    untouched = _old_folder(root / "1.2.5" / "1.2.5.6")
    sweep = Sweep(monkeypatch)
    stale = StaleSweep(root)
    try:
        (root / "1.2.7").mkdir()
        sweep.list_now()
        (touched / "1.2.3.4.5.dcm").write_bytes(b"named")
        (touched / "1.2.3.4.5.dcm").unlink()
        sweep.go.set()
        assert stale.wait(10)
    finally:
        stale.stop()
    assert touched.is_dir() and (root / "1.2.7").is_dir()
    assert not untouched.exists() and not untouched.parent.exists()


def test_an_unnamed_file_whose_folder_the_sweep_removes_is_still_stored(root: Path) -> None:
    """A store opens its unnamed file (O_TMPFILE: no name, the folder unchanged)
    in an old empty series folder, the sweep removes that folder and its study
    folder, then the store names its file: the folders are made again."""
    series = _old_folder(root / STUDY / SERIES)
    writer = AtomicWriter(series / "1.2.3.dcm", unnamed=True)
    writer.write(b"a whole data set")
    if writer.temp_path.parent == series:  # no O_TMPFILE here: a named file, kept
        pytest.skip("no unnamed files (O_TMPFILE) on this file system")
    assert cleanup_stale(root, started=time.time()) == 0
    assert not (root / STUDY).exists()  # the interleaving did happen
    assert writer.commit().outcome is CommitOutcome.STORED
    assert (series / "1.2.3.dcm").read_bytes() == b"a whole data set"


def test_close_stops_a_long_sweep_at_once(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """close() waited for the whole walk (a million files: seconds, the lock
    held all along); it now stops the sweep at its next folder."""
    walking = threading.Event()
    walked = []
    folders = 10**6

    def endless(top: Path | str, index_name: str,
                nested: list[str] | None = None) -> Iterator[tuple[str, list[str], list[str]]]:
        for n in range(folders):
            walked.append(n)
            walking.set()
            yield os.path.join(top, f"1.2.{n}"), [], []

    monkeypatch.setattr(cleanup, "walk_store", endless)
    scp = StorageSCP(root)
    assert walking.wait(10)
    scp.close()
    assert scp.sweep.wait(0) and len(walked) < folders
    StorageSCP(root).close()  # the lock went with it


def test_a_failing_sweep_is_logged_and_the_server_stores_on(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def failing(top: Path | str, index_name: str,
                nested: list[str] | None = None) -> Iterator[tuple[str, list[str], list[str]]]:
        raise OSError(errno.EIO, "Input/output error")
        yield  # a generator, as walk_store is

    monkeypatch.setattr(cleanup, "walk_store", failing)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = StorageSCP(root)
        try:
            assert scp.sweep.wait(10) and scp.sweep.removed == 0

            async def scenario() -> None:
                async with running_server(providers=[VerificationSCP(), scp]) as server:
                    assert await _store(server.port, "1.2.826.0.1.3680043.8.498.9") == 0

            run(scenario())
        finally:
            scp.close()
    assert _said(caplog) == [(logging.ERROR, f"the start-up sweep of {root} failed, its stale "
                                             "temporary files are left for the next start: "
                                             "[Errno 5] Input/output error")]
