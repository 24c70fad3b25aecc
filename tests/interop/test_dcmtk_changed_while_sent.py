"""store_paths against real peers (DCMTK's storescp, ``dicomnet serve`` as a
program) with files that change under it: one grown after the run listed it is
stored whole, not as the prefix listed; one changed while its data set goes out
makes the client abort the association (PS3.8 7.3), and the peer stores
nothing of it. storescp, in memory (its default) or writing as it receives
(``+B``, bit-preserving), drops the object of an aborted association, as
``dicomnet serve`` does."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.errors import AssociationAborted
from dicomnet.services import store_prepare, store_scu
from dicomnet.services.storage import StoreResult, store_paths
from dicomnet.storage.part10 import Part10Info, read_part10
from tests.aio.helpers import LOOPBACK, background_process, free_port, run, wait_output
from tests.interop.conftest import Dcmtk, dicomnet_serve_plain
from tests.storage.dicomfiles import make_image, write_part10

pytestmark = pytest.mark.interop

#: (7FE0,0010) Pixel Data's tag in Little Endian: the last element of make_image's.
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"


@contextlib.contextmanager
def _peer(kind: str, dcmtk: Dcmtk, tmp_path: Path, *, until: str | None = None
          ) -> Iterator[tuple[int, Path]]:
    """(port, folder it stores into) of a running peer of ``kind``; storescp is
    stopped once its log says ``until``, if given (it may clean up after that)."""
    out = tmp_path / f"{kind}-out"
    out.mkdir()
    if kind == "dicomnet-serve":
        with dicomnet_serve_plain(out) as (port, _, _):
            yield port, out
        return
    port = free_port()
    options = ["+B"] if kind == "storescp-bit-preserving" else []
    with background_process(dcmtk.storescp, *options, "-v", "-od", out, str(port),
                            log_path=tmp_path / "storescp.log", port=port) as peer:
        yield port, out
        if until is not None:
            wait_output(peer, until)


PEERS = pytest.mark.parametrize(
    "kind", ["storescp", "storescp-bit-preserving", "dicomnet-serve"])


def _sop_uids(out: Path) -> dict[str, Path]:
    found = {}
    for path in out.rglob("*"):
        if path.is_file() and path.suffix != ".json":
            with contextlib.suppress(Exception):
                found[str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
    return found


@PEERS
def test_a_file_grown_after_listing_is_stored_whole(
        kind: str, dcmtk: Dcmtk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n, rows=64, columns=64),
                          ExplicitVRLittleEndian) for n in (40, 41)]
    grown = files[1]
    whole = grown.read_bytes()
    read = read_part10

    def listing(path: Path) -> Part10Info:
        if Path(path) != grown:
            return read(path)
        # Listed while its writer was at Pixel Data, which it wrote afterwards.
        grown.write_bytes(whole[:whole.rindex(PIXEL_DATA_TAG)])
        info = read(path)
        grown.write_bytes(whole)
        return info

    monkeypatch.setattr(store_scu, "read_part10", listing)
    with _peer(kind, dcmtk, tmp_path) as (port, out):
        results = run(store_paths(LOOPBACK, port, files), timeout=60)
    assert [r.ok for r in results] == [True, True]
    kept = dcmread(_sop_uids(out)[make_image(41).SOPInstanceUID])
    assert kept.PixelData == make_image(41, rows=64, columns=64).PixelData
    assert results[1].note == f"{grown} changed since it was listed: sent as it is now"


@PEERS
def test_a_file_changed_while_sent_is_aborted_and_not_stored(
        kind: str, dcmtk: Dcmtk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large enough for several PDUs at either peer's maximum (16 KiB for
    storescp, 1 MiB for dicomnet serve); appended to after its first PDU."""
    files = [write_part10(tmp_path / "in" / f"{n}.dcm",
                          make_image(n, rows=1024, columns=1536), ExplicitVRLittleEndian)
             for n in (50, 51, 52)]
    pdus = store_prepare.file_pdus

    def grow_after_first(info: Part10Info, *args: Any) -> Iterator[Any]:
        produced = pdus(info, *args)
        yield next(produced)
        if info.path == files[1]:
            with info.path.open("ab") as fp:
                fp.write(b"\x00" * 64)
        yield from produced

    monkeypatch.setattr(store_prepare, "file_pdus", grow_after_first)
    reported: dict[Path, StoreResult] = {}
    with (_peer(kind, dcmtk, tmp_path, until="Association Aborted") as (port, out),
          contextlib.suppress(AssociationAborted)):
        # One at a time: the first is answered before the second goes.
        run(store_paths(LOOPBACK, port, files, max_async_operations=1,
                        on_progress=lambda r: reported.update({r.path: r})), timeout=60)
    changed = reported[files[1]]
    # Cut before its last fragment: not sent, the peer cannot hold a partial object.
    assert (changed.ok, changed.sent, changed.status, changed.retryable) == (
        False, False, None, False)
    assert changed.error == (f"{files[1]} changed while it was sent: association aborted so "
                             "that the peer does not keep a partial object")
    assert reported[files[0]].ok
    assert reported[files[2]].retryable and not reported[files[2]].sent
    assert set(_sop_uids(out)) == {make_image(50).SOPInstanceUID}
    # No file of it at all, under a final name or a temporary one.
    leftovers = [p for p in out.rglob("*") if p.is_file() and p.suffix != ".json"
                 and not p.name.startswith("index.sqlite")]  # dicomnet serve's index
    assert len(leftovers) == 1, leftovers
    assert os.path.getsize(files[1]) == os.path.getsize(files[0]) + 64
