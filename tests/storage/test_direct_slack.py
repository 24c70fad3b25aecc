"""DirectSpool.reserve lends the whole rest of a PDV that a chunk boundary would
cut a little short (up to SLACK past the chunk): the bytes past the chunk are
moved to the start of the next one when the chunk goes to disk, and the file
holds exactly what was written, whatever the overhang (none, 1 byte, a few
hundred, SLACK, more)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomnet.storage import direct as direct_module
from dicomnet.storage.direct import CHUNK, SLACK, AlignedBuffer, DirectSpool
from tests.storage.test_direct import _supports_direct


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    if not _supports_direct(tmp_path):  # pragma: no cover - tmpfs, some FUSE
        pytest.skip("this file system has no O_DIRECT")
    return tmp_path


class Copies:
    """Bytes AlignedBuffer.append copied (not appended where they already were)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        real = AlignedBuffer.append

        def append(buffer: AlignedBuffer, data: Any) -> None:
            source = memoryview(data).cast("B")
            if len(source) and not (
                    source.obj is buffer._map
                    and ctypes.addressof(ctypes.c_char.from_buffer(source))
                    == buffer.address + buffer.size):
                self.sizes.append(len(source))
            real(buffer, data)

        monkeypatch.setattr(AlignedBuffer, "append", append)


def receive_in_place(spool: DirectSpool, piece: bytes, read_most: int | None = None) -> int:
    """``piece`` (the data of one PDV) received as the association does, into
    what ``reserve`` lends for the rest of it, each read bringing at most
    ``read_most`` bytes; returns how many reads ``reserve`` lent nothing for."""
    at = refused = 0
    while at < len(piece):
        target = spool.reserve(len(piece) - at)
        if target is None:
            refused += 1
            spool.write(piece[at:])
            return refused
        count = len(target) if read_most is None else min(len(target), read_most)
        target[:count] = piece[at:at + count]
        with target[:count] as filled:
            spool.write(filled)
        target.release()
        at += count
    return refused


@contextlib.contextmanager
def spool_at(path: Path) -> Iterator[DirectSpool]:
    """A DirectSpool writing a new file at ``path``, finished at the end."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        spool = DirectSpool.open(fd)
        assert spool is not None
        yield spool
        spool.finish()
    finally:
        os.close(fd)


@pytest.mark.parametrize("over", [0, 1, 376, SLACK - 1, SLACK])
def test_a_pdv_just_past_the_chunk_is_lent_whole_and_lands_exactly(
        folder: Path, over: int, monkeypatch: pytest.MonkeyPatch) -> None:
    copies = Copies(monkeypatch)
    rng = random.Random(over)
    lead = CHUNK - 200_000  # the PDV then starts 200,000 bytes before the boundary
    pieces = [rng.randbytes(lead), rng.randbytes(200_000 + over), rng.randbytes(300_000)]
    path = folder / "out"
    with spool_at(path) as spool:
        spool.write(pieces[0])  # from elsewhere: copied
        lent = spool.reserve(200_000 + over)
        assert lent is not None and len(lent) == 200_000 + over  # the whole rest
        lent.release()
        assert receive_in_place(spool, pieces[1]) == 0
        assert spool.size == CHUNK + over
        assert receive_in_place(spool, pieces[2]) == 0
    assert path.read_bytes() == b"".join(pieces)
    # The lead, then only the overhang, moved to the next chunk.
    assert copies.sizes == [lead] + ([over] if over else [])


def test_a_pdv_further_past_the_chunk_is_cut_at_it(folder: Path) -> None:
    """More than SLACK past the chunk, the rest (over SLACK bytes) is long enough
    to be received in place into the next chunk: nothing is lent past this one."""
    rng = random.Random(5)
    pieces = [rng.randbytes(CHUNK - 100_000), rng.randbytes(100_000 + SLACK + 1)]
    path = folder / "out"
    with spool_at(path) as spool:
        spool.write(pieces[0])
        lent = spool.reserve(100_000 + SLACK + 1)
        assert lent is not None and len(lent) == 100_000
        lent.release()
        assert receive_in_place(spool, pieces[1]) == 0
    assert path.read_bytes() == b"".join(pieces)


@pytest.mark.parametrize("read_most", [16_384, 16_384 + 29, 100_000])
def test_pieces_of_any_size_across_many_boundaries_land_exactly(
        folder: Path, read_most: int) -> None:
    """PDVs of 256 KiB less a few bytes (as a 256 KiB maximum PDU length gives)
    whose ends drift across the chunk boundaries, read in TLS-record-sized or
    larger pieces: byte for byte, through several chunks and the partial last one."""
    rng = random.Random(read_most)
    pieces = [rng.randbytes((256 << 10) - 12) for _ in range(8 * 3 + 5)]
    pieces.append(rng.randbytes(777))
    path = folder / "out"
    with spool_at(path) as spool:
        for piece in pieces:
            receive_in_place(spool, piece, read_most)
    assert path.read_bytes() == b"".join(pieces)


def test_chunks_are_written_whole_and_aligned(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every direct write is one whole chunk at a chunk's offset (O_DIRECT's
    alignment), whatever was lent past the chunk."""
    submitted: list[tuple[int, int]] = []
    real = direct_module._Writes.submit

    def submit(self: Any, fd: int, buffer: AlignedBuffer, offset: int) -> None:
        submitted.append((offset, len(buffer)))
        real(self, fd, buffer, offset)

    monkeypatch.setattr(direct_module._Writes, "submit", submit)
    rng = random.Random(11)
    pieces = [rng.randbytes(CHUNK - 50_000), rng.randbytes(50_000 + 376),
              rng.randbytes(CHUNK - 376 - 10), rng.randbytes(10 + 1), rng.randbytes(5)]
    path = folder / "out"
    with spool_at(path) as spool:
        for piece in pieces:
            receive_in_place(spool, piece)
    assert path.read_bytes() == b"".join(pieces)
    assert submitted == [(0, CHUNK), (CHUNK, CHUNK)]
