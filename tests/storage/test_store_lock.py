"""One server per store: a second StorageSCP (or ``dicomnet serve``, or
``dicomnet reindex``) on a folder a StorageSCP holds is refused, before it
touches anything there. Without the lock, the second server's start-up cleanup
removed the first one's temporary file in the middle of a transfer, and the
sender got 0xC000 "No such file or directory"."""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import open_association
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
from dicomnet.services.storage import StorageSCP
from dicomnet.services.store_sink import SPILL_THRESHOLD
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.files import TEMP_SUFFIX, StorageError
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server
from tests.cli.helpers import error_line, run_cli
from tests.storage.helpers import SECONDARY_CAPTURE, data_set_bytes, indexed_uids, make_dataset


def _in_flight(root: Path) -> Path:
    """A temporary file as a transfer under way leaves it (named as another
    process's: those of this one are left by its servers' sweeps)."""
    part = root / f".0123456789abcdef{TEMP_SUFFIX}"
    part.write_bytes(b"half a data set")
    return part


def _start_and_close(root: Path) -> None:
    """Start a StorageSCP on ``root``, let its start-up sweep end, close it."""
    scp = StorageSCP(root)
    assert scp.sweep.wait()
    scp.close()


def test_a_second_scp_on_a_held_folder_is_refused_and_removes_nothing(root: Path) -> None:
    first = StorageSCP(root)
    try:
        first.sweep.wait()  # else the first one's sweep would take it for stale
        part = _in_flight(root)
        with pytest.raises(StorageError) as caught:
            StorageSCP(root)
        # The holder is a StorageSCP of this very process (one not closed, say):
        # said so, with the folder, rather than "another dicomnet process".
        assert str(caught.value) == (
            f"{root}: in use by another StorageSCP of this process (process "
            f"{os.getpid()}; close it first): one server per folder")
        assert part.read_bytes() == b"half a data set"
    finally:
        first.close()
    # Once the first one is closed, its folder is free; what it left is stale.
    second = StorageSCP(root)
    try:
        second.sweep.wait()
        assert not part.exists()
    finally:
        second.close()


def test_a_store_inside_another_keeps_its_transfers_when_the_other_starts(
        tmp_path: Path) -> None:
    """Two servers on nested folders (one per modality inside an archive served as a
    whole, say): the outer one, starting, removed as stale the temporary files
    of the inner one's transfers under way, which then failed ("No such file
    or directory"). A store another process holds is left to it; and, as reindex
    skips it, so is a store of its own (its own index) that nobody holds: its
    leftovers are its own server's to clear when it starts (the outer one's walk
    of a large archive, racing that start, removed its first transfers)."""
    outer, inner = tmp_path / "archive", tmp_path / "archive" / "ct"
    inner.mkdir(parents=True)
    running = StorageSCP(inner)
    try:
        running.sweep.wait()
        part = _in_flight(inner)
        _start_and_close(outer)
        assert part.read_bytes() == b"half a data set"
    finally:
        running.close()
    empty = inner / "1.2.3"  # a study folder emptied (a minute before, as a sweep needs)
    empty.mkdir()
    os.utime(empty, (time.time() - 60, time.time() - 60))
    _start_and_close(outer)
    assert part.exists() and empty.is_dir()
    _start_and_close(inner)
    assert not part.exists() and not empty.exists()


def test_the_lock_adds_no_file_and_a_closed_scp_frees_the_folder(root: Path) -> None:
    scp = StorageSCP(root)
    scp.close()
    assert sorted(p.name for p in root.iterdir()) == ["index.sqlite"]
    StorageSCP(root).close()


def test_serve_on_a_held_folder_exits_2_with_one_line(root: Path) -> None:
    held = StorageSCP(root)
    try:
        held.sweep.wait()
        part = _in_flight(root)
        result = run_cli("serve", "--port", 0, "--output", root, "--json")
        assert result.exit_code == 2, result.output
        assert error_line(result) == (
            # run_cli runs the command in this process, which holds the folder.
            f"error: cannot store into --output {root}: in use by another StorageSCP of "
            f"this process (process {os.getpid()}; close it first): one server per folder")
        assert "Traceback" not in result.stderr
        assert part.exists()
    finally:
        held.close()


def test_reindex_refuses_a_folder_a_server_holds(root: Path) -> None:
    held = StorageSCP(root)
    try:
        result = run_cli("reindex", root)
        assert result.exit_code == 2, result.output
        assert error_line(result).startswith(f"error: cannot reindex {root}: in use by another")
    finally:
        held.close()
    assert run_cli("reindex", root).exit_code == 0


def test_stale_temporary_files_are_reported_once(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A restart after kill -9 said it twice, in two wordings (INFO and WARNING)."""
    _in_flight(root)
    with caplog.at_level(logging.DEBUG, logger="dicomnet"):
        _start_and_close(root)
    said = [(r.levelno, r.getMessage()) for r in caplog.records if "stale" in r.getMessage()]
    assert said == [(logging.WARNING, f"removed 1 stale temporary file(s) and 0 empty "
                                      f"folder(s) under {root}")]


def test_the_store_folder_is_never_made_writable_by_others(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With umask 000 (a service manager's UMask=0000), the root was made 0777:
    any local account could rename or delete the index and the studies' folders
    (the study and series folders were 0755 already)."""
    root = tmp_path / "store"
    previous = os.umask(0)
    try:
        StorageSCP(root).close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    # One an operator made so is used, and said to be open to every account.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="dicomnet"):
        StorageSCP(shared).close()
    assert [r.getMessage() for r in caplog.records if "every account" in r.getMessage()] == [
        f"the store's folder {shared} is writable by every account (mode 0777): they can "
        "rename or remove what it holds; chmod o-w it"]


def test_a_stale_temporary_file_that_cannot_be_removed_does_not_stop_the_server(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A study folder read-only (a bind mount, a file system remounted so) with a
    stale temporary file in it: the server refused to start, and serve said
    'cannot store into --output ROOT: Read-only file system' of a root that was
    not. The file is harmless (hidden, never read): it is said, and left."""
    study = root / "1.2.3"
    (study / "1.2.3.4").mkdir(parents=True)
    part = _in_flight(study / "1.2.3.4")
    stale = _in_flight(root)
    done = subprocess.run(["mount", "--bind", str(study), str(study)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root): {done.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(study)], check=True)
        with caplog.at_level(logging.INFO, logger="dicomnet"):
            _start_and_close(root)
    finally:
        subprocess.run(["umount", "-l", str(study)], capture_output=True, check=False)
    assert part.exists() and not stale.exists()
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == [
        (logging.WARNING, f"cannot remove the stale temporary file {part}: Read-only file "
                          "system"),
        (logging.WARNING, f"removed 1 stale temporary file(s) and 0 empty folder(s) under {root}"),
    ], said


async def _store(port: int, data_sets: list[Dataset]) -> list[int]:
    """C-STORE each data set (Explicit VR Little Endian) on one association; the
    statuses in order."""
    syntax = ExplicitVRLittleEndian
    assoc = await open_association(
        "127.0.0.1", port, contexts=[ContextRequest(SECONDARY_CAPTURE, (syntax,))])
    ctx = assoc.context_for(SECONDARY_CAPTURE).context_id
    statuses = []
    for ds in data_sets:
        rq = CStoreRQ(message_id=assoc.dimse.next_message_id(),
                      affected_sop_class_uid=SECONDARY_CAPTURE,
                      affected_sop_instance_uid=ds.SOPInstanceUID)
        rsp, _ = await assoc.request_one(rq, ctx, dataset=data_set_bytes(ds, syntax))
        assert isinstance(rsp, CStoreRSP)
        statuses.append(rsp.status)
    await assoc.release()
    return statuses


def _objects(n: int, *, large: bool = False) -> list[Dataset]:
    """``n`` data sets of one series; ``large`` ones spill to a temporary file."""
    pixels = bytes(range(256)) * (SPILL_THRESHOLD // 128) if large else b"\x01\x02\x03\x04"
    return [make_dataset(sop_instance_uid=f"1.2.826.0.1.3680043.8.498.{n}{k}",
                         PixelData=pixels) for k in range(n)]  # type: ignore[arg-type]


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*.dcm"))


@pytest.mark.parametrize("large", [False, True], ids=["in-memory", "spilled"])
def test_a_store_folder_removed_while_serving_is_locked_again_when_made_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, large: bool) -> None:
    """rm -rf of the --output folder under a running server: the store made it again
    and went on storing, but its lock stayed on the removed folder, so a second
    server started on the new one and both wrote into one store (each one's
    start-up cleanup removing the other's transfers under way). The server now
    takes the lock on the folder it makes again, and says once what happened."""
    root = tmp_path / "store"
    scp = StorageSCP(root)
    first, second, third = _objects(3, large=large)

    async def scenario() -> None:
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            assert await _store(server.port, [first]) == [0]
            scp.flush_index()  # else its row, gone with the folder, may be said lost
            shutil.rmtree(root)
            with caplog.at_level(logging.WARNING, logger="dicomnet"):
                assert await _store(server.port, [second]) == [0]
                with pytest.raises(StorageError) as caught:
                    StorageSCP(root)
                assert f"process {os.getpid()}" in str(caught.value)
                assert await _store(server.port, [third]) == [0]

    try:
        run(scenario(), timeout=60)
    finally:
        scp.close()
    assert _files(root) == sorted(f"{ds.SOPInstanceUID}.dcm" for ds in (second, third))
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert said == [
        (logging.WARNING, f"the store's folder {root} was removed while in use, with the "
                          "objects and the index it held; made again, it holds the objects "
                          "stored since, in a new index, and this server keeps it (one "
                          "server per folder)"),
    ], said


@pytest.mark.parametrize("large", [False, True], ids=["in-memory", "spilled"])
def test_a_store_folder_removed_and_taken_by_another_server_is_not_stored_into(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, large: bool) -> None:
    """The folder removed, and a second server started on the new one before the first
    stored again: the first wrote into the second's store all the same. It now
    refuses (Processing Failure, an ERROR line naming the holder) and writes
    nothing there; once the other server has stopped, it takes the folder."""
    root = tmp_path / "store"
    scp = StorageSCP(root)
    first, refused, later = _objects(3, large=large)

    async def scenario() -> None:
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            assert await _store(server.port, [first]) == [0]
            shutil.rmtree(root)
            other = StorageSCP(root)
            try:
                with caplog.at_level(logging.WARNING, logger="dicomnet"):
                    assert await _store(server.port, [refused]) == [0x0110]
                # Nothing of the first server's: no object, no folder, no temporary file.
                assert [p.name for p in root.rglob("*")
                        if not p.name.startswith("index.sqlite")] == []
            finally:
                other.close()
            assert await _store(server.port, [later]) == [0]

    try:
        run(scenario(), timeout=60)
    finally:
        scp.close()
    assert _files(root) == [f"{later.SOPInstanceUID}.dcm"]
    # (The index's own line, on the row of the first object, may come before.)
    errors = [r.getMessage() for r in caplog.records if r.getMessage().startswith("C-STORE")]
    assert [re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", e) for e in errors] == [
        f"C-STORE {refused.SOPInstanceUID} from DICOMNET@127.0.0.1:PORT refused, status "
        f"0x0110: the store's folder {root} was removed while in use, and the one made again "
        f"is another server's (process {os.getpid()}): not storing there"
    ], errors


@pytest.mark.parametrize("large", [False, True], ids=["in-memory", "spilled"])
def test_a_store_folder_removed_while_serving_gets_a_new_index(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, large: bool) -> None:
    """rm -rf of the --output folder under a running server, which made it again: the
    server went on reading and writing the removed folder's index, so the objects
    stored from then on had no rows (lost), and a duplicate sent again under
    another series was stored a second time (its first copy not found). The
    server now opens a new index in the new folder, and says so."""
    root = tmp_path / "store"
    scp = StorageSCP(root)  # duplicates kept: a resend is found wherever stored
    first, second, third = _objects(3, large=large)
    moved = make_dataset(sop_instance_uid=second.SOPInstanceUID,
                         series_uid="1.2.826.0.1.3680043.8.498.101",
                         PixelData=second.PixelData)

    async def scenario() -> None:
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            assert await _store(server.port, [first]) == [0]
            scp.flush_index()
            shutil.rmtree(root)
            with caplog.at_level(logging.INFO, logger="dicomnet"):
                assert await _store(server.port, [second, third]) == [0, 0]
                scp.flush_index()  # the duplicate is looked up in the index
                assert await _store(server.port, [moved]) == [0]
                scp.flush_index()

    try:
        run(scenario(), timeout=60)
    finally:
        scp.close()
    assert _files(root) == sorted(f"{ds.SOPInstanceUID}.dcm" for ds in (second, third))
    assert len(list(root.rglob(f"{second.SOPInstanceUID}.dcm"))) == 1
    assert indexed_uids(root / "index.sqlite") == sorted(
        ds.SOPInstanceUID for ds in (second, third))
    # The sender's port differs per run: named PEER here.
    said = [(r.levelno, re.sub(r"@127\.0\.0\.1:\d+:", "@PEER:", r.getMessage()))
            for r in caplog.records
            if r.levelno >= logging.WARNING or "already stored" in r.getMessage()]
    assert said == [
        (logging.WARNING, f"the store's folder {root} was removed while in use, with the "
                          "objects and the index it held; made again, it holds the objects "
                          "stored since, in a new index, and this server keeps it (one "
                          "server per folder)"),
        (logging.INFO, f"C-STORE {second.SOPInstanceUID} from DICOMNET@PEER: "
                       f"already stored at {second.StudyInstanceUID}/"
                       f"{second.SeriesInstanceUID}/{second.SOPInstanceUID}.dcm, kept "
                       "(duplicates policy keep)"),
    ], said


def test_a_folder_another_process_holds_names_that_process(root: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from dicomnet.storage.lock import StoreLock; "
         f"lock = StoreLock({str(root)!r}); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StorageError) as caught:
            StorageSCP(root)
        assert str(caught.value) == (f"{root}: in use by another dicomnet process (process "
                                     f"{holder.pid}): one server per folder")
    finally:
        holder.communicate("", timeout=30)
