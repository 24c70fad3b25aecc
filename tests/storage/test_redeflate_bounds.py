"""A deflated data set that starts with File Meta Information elements (group
0002) is inflated, cleaned of them and deflated again (storage.stray_meta
DeflatedStrayMeta). On that path a deflate bomb of many values, each under the
1 GiB bound, cost eight times the CPU it costs a deflated data set stored as it
came (deflated again at zlib level 6). The new stream is now deflated at level
1, and past 256 MiB inflated at over 250:1 the data set is refused (Out of
Resources); a data set at a real ratio is stored as before, and nothing of a
refused or aborted one is left on disk."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import struct
import zlib
from pathlib import Path

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicomnet.dimse.messages import CStoreRSP
from dicomnet.services import store_sink
from dicomnet.services.storage import INDEX_NAME, StorageSCP
from dicomnet.services.store_sink import SPILL_THRESHOLD, StoreSink
from dicomnet.storage import stray_meta
from dicomnet.storage.files import AtomicWriter
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import encode_pdata
from tests.aio.helpers import run, running_server, wait_until
from tests.storage.dicomfiles import SECONDARY_CAPTURE, assert_same_dataset, make_image
from tests.storage.helpers import data_set_bytes, store_data_sets
from tests.storage.rawscu import RawAssociation, store_command
from tests.storage.stray import inflated, meta_elements, meta_group_length

INDEX_FILES = {INDEX_NAME, INDEX_NAME + "-wal", INDEX_NAME + "-shm"}


def _leftovers(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - INDEX_FILES


def _open_below(root: Path) -> list[str]:
    """This process's open files under ``root`` (an unnamed O_TMPFILE one too)."""
    fds = Path("/proc/self/fd")
    links = []
    for fd in fds.iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
    return [link for link in links if link.startswith(str(root))]


@pytest.fixture
def writers(monkeypatch: pytest.MonkeyPatch) -> list[AtomicWriter]:
    """Every AtomicWriter a StoreSink makes (a data set spilled to a file)."""
    made: list[AtomicWriter] = []

    class Recorded(AtomicWriter):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    monkeypatch.setattr(store_sink, "AtomicWriter", Recorded)
    return made


def _bomb(start: bytes, values: int) -> bytes:
    """A deflate stream of ``start`` then ``values`` OB values of 1 MiB of zeros
    (each one far under the 1 GiB bound), padded (PS3.5 A.5). Each MiB deflated
    once (Z_FULL_FLUSH: byte-aligned, independent blocks) and repeated: building
    it costs no CPU; it deflates 990:1, as a bomb."""
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [deflater.compress(start), deflater.flush(zlib.Z_FULL_FLUSH)]
    zeros = deflater.compress(bytes(1 << 20)) + deflater.flush(zlib.Z_FULL_FLUSH)
    for number in range(values):
        parts.append(deflater.compress(struct.pack("<HH2sHL", 0x7FE1, 0x1000 + number, b"OB",
                                                   0, 1 << 20)))
        parts += [deflater.flush(zlib.Z_FULL_FLUSH), zeros]
    stream = b"".join(parts) + deflater.flush()
    return stream + b"\x00" * (len(stream) % 2)


def _deflated(data: bytes, level: int = 6) -> bytes:
    deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = deflater.compress(data) + deflater.flush()
    return stream + b"\x00" * (len(stream) % 2)


def test_a_bomb_of_many_values_behind_group_0002_is_refused_at_its_ratio(
        root: Path, writers: list[AtomicWriter], caplog: pytest.LogCaptureFixture) -> None:
    """300 values of 1 MiB of zeros (300 MiB, 990:1): without group 0002 it is
    stored as it came (only inflated, to walk it: unchanged); behind group 0002
    it was inflated and deflated again whole, and stored. It is refused past
    256 MiB, Out of Resources, and answered; what it had spilled (the new
    stream, past 1 MiB) is removed: no file under a final name, no temporary
    file, nothing left open."""
    ds, other = make_image(40), make_image(41)
    plain = _bomb(data_set_bytes(other, ExplicitVRLittleEndian), 300)
    bomb = _bomb(meta_elements(ds, ExplicitVRLittleEndian)
                 + data_set_bytes(ds, ExplicitVRLittleEndian), 300)
    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        answers = run(store_data_sets(StorageSCP(root), DeflatedExplicitVRLittleEndian, [
            (other.SOPInstanceUID, plain), (ds.SOPInstanceUID, bomb)]), timeout=120)
    assert [(a.status, a.error_comment) for a in answers] == [
        (0x0000, None),
        (0xA700, "deflated data set inflates over 250:1 past 256 MiB; not stored")]
    refusals = [(r.levelno, r.getMessage().partition(" refused, ")[2]) for r in caplog.records
                if " refused, " in r.getMessage()]
    assert [level for level, _ in refusals] == [logging.ERROR], refusals
    assert re.fullmatch(
        r"status 0xA700: its deflated data set, deflated again without the File Meta "
        r"Information elements it starts with, inflates past 256 MiB at over 250 times the "
        r"(\d+) compressed bytes received by then: a deflate bomb's ratio, which dicomnet "
        r"does not deflate again; not stored", refusals[0][1]), refusals
    # Only the plain one, as it came (after our meta group).
    assert [Path(p).name for p in _leftovers(root)] == [f"{other.SOPInstanceUID}.dcm"]
    stored = next(root.rglob("*.dcm")).read_bytes()
    assert stored[meta_group_length(stored):] == plain
    # One spilled: the bomb's new stream (level 1 deflates zeros 230:1), not the
    # plain one (0.3 MB); else the test proves less.
    assert len(writers) == 1
    assert _open_below(root) == []


def test_a_data_set_behind_group_0002_at_a_real_ratio_is_stored_deflated_at_level_1(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the floor (here lowered to 1 MiB) at a real ratio (about 4:1), the
    data set is stored: one meta group (ours), its data set the source's
    without group 0002, in a valid deflate stream, which is the source's data
    set deflated at level 1 (level 6 before: its CPU, for nothing PS3.5 A.5
    asks). The same size at a bomb's ratio is refused: the ratio decides."""
    monkeypatch.setattr(stray_meta, "BOMB_FLOOR", 1 << 20)
    ds = make_image(42, rows=1024, columns=3072)
    rng = random.Random(42)
    # Real pixels: runs of a few grey levels, as an image's background and edges.
    ds.PixelData = b"".join(bytes([rng.randrange(4)]) * rng.randrange(1, 8)
                            for _ in range(1 << 20))[:1024 * 3072]
    source = data_set_bytes(ds, ExplicitVRLittleEndian)
    sent = _deflated(meta_elements(ds, ExplicitVRLittleEndian, private_value=4096) + source)
    assert 2 < len(source) / len(sent) < 20
    bomb = make_image(43)
    answers: list[CStoreRSP] = run(store_data_sets(
        StorageSCP(root), DeflatedExplicitVRLittleEndian, [
            (ds.SOPInstanceUID, sent),
            (bomb.SOPInstanceUID, _bomb(meta_elements(bomb, ExplicitVRLittleEndian)
                                        + data_set_bytes(bomb, ExplicitVRLittleEndian), 3))]),
        timeout=120)
    assert [(a.status, a.error_comment) for a in answers] == [
        (0x0000, None),
        (0xA700, "deflated data set inflates over 250:1 past 1 MiB; not stored")]
    path = next(root.rglob(f"{ds.SOPInstanceUID}.dcm"))
    data = path.read_bytes()
    stream = data[meta_group_length(data):]
    assert inflated(stream) == source
    assert stream == _deflated(source, level=1)
    assert_same_dataset(ds, path)
    assert [Path(p).name for p in _leftovers(root)] == [f"{ds.SOPInstanceUID}.dcm"]


def test_the_sink_deflates_again_at_level_1_in_any_pieces() -> None:
    """The re-deflated stream, fed in PDVs of any size, is one valid deflate
    stream: the data set without group 0002, deflated at level 1, padded."""
    ds = make_image(44, rows=256, columns=256)
    source = data_set_bytes(ds, ExplicitVRLittleEndian)
    sent = _deflated(meta_elements(ds, ExplicitVRLittleEndian) + source)
    for step in (1, 7, 16372):
        sink = StoreSink(b"HEADER", transfer_syntax=DeflatedExplicitVRLittleEndian)
        for pos in range(0, len(sent), step):
            sink.write(sent[pos:pos + step])
        assert sink.check_complete("1.2.3"), sink.error
        assert isinstance(sink.buffer, bytearray)
        stream = bytes(sink.buffer[6:])
        assert inflated(stream) == source
        assert stream == _deflated(source, level=1)


def test_an_abort_while_deflating_again_leaves_nothing(
        root: Path, writers: list[AtomicWriter]) -> None:
    """The peer aborts half way through a data set being deflated again, past
    the spill threshold: its temporary file is removed and closed, nothing is
    stored under a final name."""
    ds = make_image(45, rows=1024, columns=4 * SPILL_THRESHOLD // 1024)  # random pixels
    sent = _deflated(meta_elements(ds, ExplicitVRLittleEndian)
                     + data_set_bytes(ds, ExplicitVRLittleEndian))
    command = store_command(SECONDARY_CAPTURE.encode(), str(ds.SOPInstanceUID).encode())

    async def scenario() -> None:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[scp]) as server:
                raw = await RawAssociation.open(server.port, [
                    ContextRequest(SECONDARY_CAPTURE, (DeflatedExplicitVRLittleEndian,))])
                ctx = raw.context_id(SECONDARY_CAPTURE)
                size = raw.fragment_size
                half = sent[:len(sent) // 2]
                await raw.send(encode_pdata(ctx, True, True, command), *(
                    encode_pdata(ctx, False, False, half[start:start + size])
                    for start in range(0, len(half), size)))
                await wait_until(lambda: bool(writers), "the new stream's spill")
                await raw.abort()
                await wait_until(lambda: not server._tasks, "the association's end")
                await asyncio.sleep(0)
        finally:
            scp.close()

    run(scenario(), timeout=60)
    assert _leftovers(root) == set()
    assert _open_below(root) == []


@pytest.mark.parametrize(("inflated", "cut", "problem"), [
    (None, False, "the data set ends inside its deflated stream"),  # no byte at all
    (b"\x08\x00", False, "the data set ends inside an element header"),
    (b"\x08\x00\x05\x00C", False, "the data set ends inside an element header"),
    (b"\x08\x00\x05\x00CS\x02\x00AB", True, "the data set ends inside an element header"),
], ids=["empty", "2-bytes", "5-bytes", "cut-stream"])
@pytest.mark.parametrize("pdv", [1, 16372])
def test_a_deflated_data_set_ending_before_its_first_element_is_known_is_refused(
        inflated: bytes | None, cut: bool, problem: str, pdv: int) -> None:
    """Its walker (of the stream as sent) is made once the start is known not
    to be group 0002, from what the sink holds; a data set that ends before
    that (under 6 bytes inflated) is walked all the same: refused, not stored
    unchecked."""
    stream = b"" if inflated is None else _deflated(inflated)
    stream = stream[:3] if cut else stream
    sink = StoreSink(b"HEADER", transfer_syntax=DeflatedExplicitVRLittleEndian)
    for pos in range(0, len(stream), pdv):
        sink.write(stream[pos:pos + pdv])
    assert not sink.check_complete("1.2.3")
    assert (sink.status, sink.error, sink.buffer) == (
        0xC000, f"incomplete data set: {problem}", None)
