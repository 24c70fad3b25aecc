"""A file that changes between the run's listing and its send, or during it
(a modality or an export tool still writing into the folder being stored).

Its header is read when the run lists it (``read_part10``) and its data set
sent later from disk. Changed since (size, modification time, inode, device):
its header is read again and it goes as it is now, with a note, or fails alone
with why. Changed while its data set goes out: before the last PDU the file is
looked at again, and a change aborts the association (PS3.8 7.3), the only way
to keep the peer from storing a mix of two states of the file as whole."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.services import store_convert, store_prepare, store_scu
from dicomnet.services.storage import StorageSCP, StoreResult, store_paths
from dicomnet.storage.part10 import Part10Info, read_part10
from tests.aio.helpers import LOOPBACK, run, running_server
from tests.storage.dicomfiles import make_image, write_part10
from tests.storage.helpers import send_files
from tests.storage.test_store_scu_files import send_changing_after_first_pdu

WINDOWS = pytest.mark.parametrize("window", [1, 8], ids=["synchronous", "window-8"])
#: (7FE0,0010) Pixel Data's tag in Little Endian: the last element of make_image's.
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"


def _files(folder: Path, count: int, **image: Any) -> list[Path]:
    return [write_part10(folder / f"{n}.dcm", make_image(n, **image), ExplicitVRLittleEndian)
            for n in range(count)]


def _dataset(path: Path) -> bytes:
    info = read_part10(path)
    return path.read_bytes()[info.dataset_offset:]


def _stored(root: Path) -> dict[str, Path]:
    return {p.name.removesuffix(".dcm"): p for p in root.rglob("*.dcm")}


def _store(root: Path, files: list[Path], window: int, **server: Any) -> list[StoreResult]:
    async def main() -> list[StoreResult]:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[scp], **server) as port:
                return await store_paths(LOOPBACK, port.port, files,
                                         max_async_operations=window)
        finally:
            scp.close()

    return run(main(), timeout=60)


def _listed_then(monkeypatch: pytest.MonkeyPatch, path: Path, before: Any, after: Any) -> None:
    """The run's listing of ``path`` sees it as ``before`` leaves it; ``after``
    changes it once listed (store_scu reads every header before it sends)."""
    read = read_part10

    def listing(listed: Path) -> Part10Info:
        if Path(listed) != path:
            return read(listed)
        before()
        info = read(listed)
        after()
        return info

    monkeypatch.setattr(store_scu, "read_part10", listing)


@WINDOWS
def test_a_file_grown_after_listing_is_sent_whole(
        tmp_path: Path, window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listed while its writer was at Pixel Data: what it held then is a data set
    ending between two elements, which a peer cannot tell from a whole one. It
    went as that prefix and was stored, Success; now its header is read again
    and the whole file goes."""
    files = _files(tmp_path / "in", 3)
    grown = files[1]
    whole = grown.read_bytes()
    prefix = whole[:whole.rindex(PIXEL_DATA_TAG)]
    _listed_then(monkeypatch, grown, lambda: grown.write_bytes(prefix),
                 lambda: grown.write_bytes(whole))

    results = _store(tmp_path / "out", files, window)
    assert [r.ok for r in results] == [True, True, True]
    stored = _stored(tmp_path / "out")
    assert _dataset(stored[make_image(1).SOPInstanceUID]) == _dataset(grown)
    assert results[1].size == len(_dataset(grown))
    assert results[1].note == f"{grown} changed since it was listed: sent as it is now"
    assert [r.note for r in (results[0], results[2])] == [None, None]
    assert results[1].to_dict()["note"] == results[1].note


@WINDOWS
def test_a_file_replaced_after_listing_goes_as_it_is_now(
        tmp_path: Path, window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another object put in its place (a new inode, renamed over it): sent as
    the object it is now, under its own UIDs, not the listed one's."""
    files = _files(tmp_path / "in", 3)
    replaced = files[1]
    other = write_part10(tmp_path / "other.dcm", make_image(7, rows=20),
                         ExplicitVRLittleEndian)
    _listed_then(monkeypatch, replaced, lambda: None, lambda: os.replace(other, replaced))

    results = _store(tmp_path / "out", files, window)
    assert [r.ok for r in results] == [True, True, True]
    assert results[1].sop_instance_uid == make_image(7).SOPInstanceUID
    stored = _stored(tmp_path / "out")
    assert sorted(stored) == sorted(make_image(n).SOPInstanceUID for n in (0, 7, 2))
    assert _dataset(stored[make_image(7).SOPInstanceUID]) == _dataset(replaced)
    assert results[1].note == (f"{replaced} changed since it was listed (another file in "
                               "its place): sent as it is now")


def test_a_file_replaced_by_no_dicom_file_fails_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _files(tmp_path / "in", 3)
    replaced = files[1]
    _listed_then(monkeypatch, replaced, lambda: None,
                 lambda: replaced.write_bytes(b"not DICOM at all"))

    results = _store(tmp_path / "out", files, 1)
    assert [(r.ok, r.sent, r.retryable) for r in results] == [
        (True, True, False), (False, False, False), (True, True, False)]
    assert results[1].error == (
        f"not sent: {replaced} is shorter than when it was read, and cannot be read as it is "
        f"now: {replaced} has no DICOM preamble and 'DICM' prefix (PS3.10 7.1)")
    assert sorted(_stored(tmp_path / "out")) == sorted(
        make_image(n).SOPInstanceUID for n in (0, 2))


def _append(path: Path) -> None:
    with path.open("ab") as fp:
        fp.write(b"\x00" * 64)


def _rewrite_in_place(path: Path) -> None:
    """Other pixel values at the same size, and a modification time of its own
    (not left to the clock's tick)."""
    before = os.stat(path)
    with path.open("r+b") as fp:
        fp.seek(-4096, os.SEEK_END)
        fp.write(b"\xff" * 4096)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


@WINDOWS
@pytest.mark.parametrize("change", [_append, _rewrite_in_place], ids=["grown", "rewritten"])
def test_a_file_changed_while_sent_aborts_the_association(
        tmp_path: Path, window: int, change: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Multi-PDU objects (the server takes 16 KiB PDUs); the second file changes
    once its first PDU is out. Its message cannot be withdrawn: the association
    is aborted, the peer stores nothing of it, the others may be retried."""
    files = _files(tmp_path / "in", 4, rows=256, columns=256)
    reported = send_changing_after_first_pdu(tmp_path / "out", monkeypatch, files, window,
                                             change)
    assert sorted(reported) == ["0.dcm", "1.dcm", "2.dcm", "3.dcm"]
    changed = reported["1.dcm"]
    # Cut before its last fragment: not sent, the peer cannot hold it.
    assert (changed.ok, changed.sent, changed.retryable, changed.status) == (
        False, False, False, None)
    assert changed.error == (f"{files[1]} changed while it was sent: association aborted so "
                             "that the peer does not keep a partial object")
    first = reported["0.dcm"]
    assert first.ok or (first.retryable and window > 1)
    for later in (reported["2.dcm"], reported["3.dcm"]):
        assert not later.ok and later.retryable, later
        assert "aborted by us (A-ABORT sent: service-user) - a file changed while it was sent" \
            in (later.error or "")
    stored = _stored(tmp_path / "out")
    assert make_image(1).SOPInstanceUID not in stored
    assert set(stored) <= {make_image(0).SOPInstanceUID}
    # Nothing of it left under the store either, under any name.
    assert all(p.name.removesuffix(".dcm") != make_image(1).SOPInstanceUID
               for p in (tmp_path / "out").rglob("*") if p.is_file())


def test_a_single_pdu_file_changed_while_read_fails_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A data set in one PDU is read whole before its command goes: changed
    then, nothing of it was sent, and the association goes on."""
    files = _files(tmp_path / "in", 3)
    pdus = store_prepare._pdus_from

    def change_while_read(*args: Any, **kwargs: Any) -> Iterator[Any]:
        check = kwargs["before_last"]

        def changed_first(sent: bool) -> None:
            if kwargs["name"] == str(files[1]):
                _append(files[1])
            check(sent)

        return pdus(*args, **{**kwargs, "before_last": changed_first})

    monkeypatch.setattr(store_prepare, "_pdus_from", change_while_read)
    results = _store(tmp_path / "out", files, 1)
    assert [(r.ok, r.sent) for r in results] == [(True, True), (False, False), (True, True)]
    assert results[1].error == (
        f"not sent: {files[1]} changed while it was read to be sent ({files[1]} changed "
        "since it was listed)")
    assert sorted(_stored(tmp_path / "out")) == sorted(
        make_image(n).SOPInstanceUID for n in (0, 2))


def test_a_file_changed_while_converted_is_not_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Converted (the peer takes Implicit VR only): pydicom read it whole; changed
    meanwhile, what it read may mix two states of the file."""
    files = _files(tmp_path / "in", 2)
    convert = store_convert.convert_in_memory

    def convert_then_change(info: Part10Info, target: str) -> bytes:
        data = convert(info, target)
        if info.path == files[0]:
            _append(info.path)
        return data

    monkeypatch.setattr(store_prepare, "convert_in_memory", convert_then_change)
    results = send_files(tmp_path / "out", files, [ImplicitVRLittleEndian])
    assert [(r.ok, r.sent) for r in results] == [(False, False), (True, True)]
    assert results[0].error == f"not sent: {files[0]} changed while it was converted"
    assert sorted(_stored(tmp_path / "out")) == [make_image(1).SOPInstanceUID]
