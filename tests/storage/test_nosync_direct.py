"""A server without fsync (``StorageSCP(durable=False)``, ``serve --no-fsync``)
writes large data sets around the page cache, as a durable one does.

It used to write them through the page cache, on the reasoning that without
fsync the answer need not wait for the disk. Measured, the page-cache copy cost
more than the wait: 256 MB objects over TLS went at 356 MB/s without fsync
against 847 with it, 512 KB images 275 against 364 (docs/benchmarks.md, the
forty-first session's run RA). Only the fsyncs now tell the two modes apart.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP
from dicomnet.storage import direct
from dicomnet.storage.direct import DirectBatch, DirectSpool
from tests.aio.test_receive_in_place import assert_stored_whole, send_with
from tests.storage.dicomfiles import make_image, write_part10


def test_without_fsync_large_data_sets_go_around_the_page_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two 700 KB images (held in memory: one direct write each, in the store
    thread's round) and a 1.5 MB one (spilled to a file written in direct
    chunks): every one through O_DIRECT, stored byte for byte, and nothing
    fsynced."""
    batched: list[int] = []
    real_add = DirectBatch.add

    def add(self: DirectBatch, fd: int, buffer: direct.AlignedBuffer) -> bool:
        taken = real_add(self, fd, buffer)
        if taken:
            batched.append(buffer.size)
        return taken

    spools: list[int] = []
    real_open = DirectSpool.open.__func__  # type: ignore[attr-defined]

    def spool_open(cls: type[DirectSpool], fd: int) -> DirectSpool | None:
        spool: DirectSpool | None = real_open(cls, fd)
        if spool is not None:
            spools.append(fd)
        return spool

    monkeypatch.setattr(DirectBatch, "add", add)
    monkeypatch.setattr(DirectSpool, "open", classmethod(spool_open))
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    monkeypatch.setattr(os, "fdatasync", synced.append)
    sources = [write_part10(tmp_path / "in" / f"{n}.dcm",
                            make_image(n, rows=1000, columns=700 if n < 2 else 1500),
                            str(ExplicitVRLittleEndian)) for n in range(3)]
    root = tmp_path / "store"
    assert send_with(StorageSCP(root, durable=False), tmp_path / "in")
    for n, source in enumerate(sources):
        assert_stored_whole(root, n, source)
    assert len(batched) == 2 and min(batched) > 600_000, batched
    assert len(spools) == 1, spools
    assert not synced
