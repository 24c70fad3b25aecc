"""What a folder holds besides files of objects, sent with store_paths (and so
``dicomnet store``): a symbolic link to nothing, a FIFO, a socket, a subfolder
that cannot be read. Each was skipped without a word (a study folder with a link
whose target was moved away was "Stored 3 of 3", exit 0, the fourth image never
sent); each is now listed where it stands and fails alone, unsent, with why,
while the others go. A FIFO is never opened for reading as a file (that waits
for a writer: the run hung), named or met in a folder."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP, store_paths
from dicomnet.services.store_scu import StoreResult, collect_files
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.files import StorageError
from dicomnet.storage.part10 import read_part10
from tests.aio.helpers import run, running_server
from tests.services.test_store_swapped_files import release_writer
from tests.storage.dicomfiles import make_image, write_part10
from tests.storage.helpers import send_files


def odd_folder(folder: Path) -> dict[str, Path]:
    """Two objects, a link to a file gone, a FIFO, a socket, a link to a folder
    (not followed: no cycles, said in --help), a hidden file; by name."""
    folder.mkdir()
    paths = {name: write_part10(folder / f"{name}.dcm", make_image(n), ExplicitVRLittleEndian)
             for n, name in ((1, "a"), (2, "z"))}
    paths["dangling"] = folder / "dangling.dcm"
    os.symlink(folder / "moved-away.dcm", paths["dangling"])
    paths["fifo"] = folder / "fifo.dcm"
    os.mkfifo(paths["fifo"])
    paths["socket"] = folder / "socket.dcm"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.fspath(paths["socket"]))
    os.symlink(folder.parent, folder / "link-to-folder")
    (folder / ".hidden").write_bytes(b"x")
    return paths


def test_a_folder_lists_links_to_nothing_and_special_files_in_order(tmp_path: Path) -> None:
    paths = odd_folder(tmp_path / "study")
    assert collect_files([tmp_path / "study"]) == [
        paths[name] for name in ("a", "dangling", "fifo", "socket", "z")]


def test_each_odd_entry_fails_alone_unsent_with_why(tmp_path: Path) -> None:
    paths = odd_folder(tmp_path / "study")
    results = send_files(tmp_path / "root", [tmp_path / "study"], [ExplicitVRLittleEndian])
    got = {r.path: (r.ok, r.sent, r.status, r.error, r.not_dicom, r.retryable)
           for r in results}
    assert list(got) == [paths[name] for name in ("a", "dangling", "fifo", "socket", "z")]
    assert got[paths["a"]] == got[paths["z"]] == (True, True, 0, None, False, False)
    assert got[paths["dangling"]] == (
        False, False, None, f"not sent: {paths['dangling']} is a symbolic link to "
        f"{tmp_path / 'study' / 'moved-away.dcm'}, which does not exist", False, False)
    assert got[paths["fifo"]] == (
        False, False, None, f"not sent: {paths['fifo']} is not a regular file but a FIFO",
        False, False)
    assert got[paths["socket"]] == (
        False, False, None, f"not sent: {paths['socket']} is not a regular file but a socket",
        False, False)
    assert sorted(p.name for p in (tmp_path / "root").rglob("*.dcm")) == sorted(
        f"{make_image(n).SOPInstanceUID}.dcm" for n in (1, 2))


def test_a_fifo_is_not_waited_on(tmp_path: Path) -> None:
    """read_part10 of a FIFO (named, or a file replaced by one since it was
    listed) says what it is at once: opening it to read waited for a writer.
    (A writer thread here ends such a wait, so that the test fails, not hangs.)"""
    fifo = tmp_path / "fifo.dcm"
    os.mkfifo(fifo)

    def write() -> None:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        with pytest.raises(StorageError, match=r"fifo\.dcm is not a regular file but a FIFO$"):
            read_part10(fifo)
    finally:
        release_writer(fifo, writer)


def test_an_unreadable_subfolder_fails_alone(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """(Made unreadable by refusing its scandir: CI runs as root, who reads anything.)
    Its files were left out without a word; the folder is now listed, and fails
    alone with why, the rest sent."""
    study = tmp_path / "study"
    first = write_part10(study / "a.dcm", make_image(1), ExplicitVRLittleEndian)
    locked = study / "b"
    write_part10(locked / "c.dcm", make_image(3), ExplicitVRLittleEndian)
    last = write_part10(study / "d.dcm", make_image(4), ExplicitVRLittleEndian)
    real_scandir = os.scandir

    def scandir(path: str | Path) -> object:
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert collect_files([study]) == [first, locked, last]
    results = send_files(tmp_path / "root", [study], [ExplicitVRLittleEndian])
    assert [(r.path, r.ok, r.sent, r.error) for r in results] == [
        (first, True, True, None),
        (locked, False, False, f"not sent: cannot read folder {locked}: Permission denied"),
        (last, True, True, None)]


def test_a_file_changed_after_listing_says_not_sent_as_others_do(tmp_path: Path) -> None:
    """Gone, cut short or swapped for a FIFO between the listing and its turn
    (found before any byte of it goes out): its error starts "not sent: ", as
    that of a file unreadable when listed does (StoreResult.error), which a
    script sorts failures by. These said "X is shorter than when it was read",
    "cannot read X: No such file or directory" and "X is no regular file any
    more: not sent"."""
    files = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
             for n in range(4)]

    def change(result: StoreResult) -> None:
        if result.path == files[0]:
            files[1].unlink()
            os.truncate(files[2], os.path.getsize(files[2]) - 100)

    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(tmp_path / "root")
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return await store_paths("127.0.0.1", server.port, files, on_progress=change,
                                         max_async_operations=1)
        finally:
            scp.close()

    results = run(scenario(), timeout=60)
    assert [(r.ok, r.sent, r.error) for r in results] == [
        (True, True, None),
        (False, False, f"not sent: cannot read {files[1]}: No such file or directory"),
        # Read again as it is now (store_prepare.as_it_is_now): why it cannot go.
        (False, False, f"not sent: {files[2]} is shorter than when it was read; as it is "
         "now, the data set ends inside element (7FE0,0010): 100 byte(s) of its value "
         "missing"),
        (True, True, None)]
