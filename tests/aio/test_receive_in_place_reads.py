"""Reads bounded around data sets received in place (``InPlaceReceiving``,
``StoreSink.reserve``): once a data set of an association went in place, no read
passes the start of the next long PDV's data, so that each following data set
is received in place from its first long PDV; before, the read that brought a
command took up to 256 KiB of the next data set with it, through the
transport's buffer, and the sink copied them (callgrind: 262 KB of memcpy per
512 KB image, docs/benchmarks.md, session 37). Small messages keep their
unbounded reads."""

from __future__ import annotations

import ctypes
import zlib
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicomnet.aio.in_place import InPlaceReceiving
from dicomnet.services import store_sink
from dicomnet.services.storage import StorageSCP
from dicomnet.services.store_sink import ALIGNED_FROM, SPILL_THRESHOLD, StoreSink
from dicomnet.storage.direct import AlignedBuffer
from dicomnet.storage.part10 import part10_header, read_part10
from tests.aio.helpers import Pki, PkiFactory, run, running_server
from tests.aio.test_receive_in_place import assert_stored_whole, store_folder
from tests.storage.dicomfiles import make_image, write_part10
from tests.storage.test_direct import _supports_direct

HEADER = part10_header(sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                       sop_instance_uid="1.2.826.0.1.3680043.8.498.9.8",
                       transfer_syntax_uid=ExplicitVRLittleEndian,
                       implementation_class_uid="1.2.3.4",
                       implementation_version_name="V1", source_ae_title="PEER")
#: A data set's first element header: (0008,0016) UI, 26 bytes, explicit VR.
FIRST = b"\x08\x00\x16\x00UI\x1a\x00" + b"1.2.840.10008.5.1.4.1.1.7\x00"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return PkiFactory(tmp_path_factory.mktemp("in-place-reads-pki"))("ecdsa")


@pytest.mark.parametrize("secure", [True, False], ids=["tls", "plain"])
def test_each_image_of_an_association_is_received_in_place_from_its_first_long_pdv(
        tmp_path: Path, pki: Pki, secure: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight 300 KB images on one association: once one of them went in place,
    the bytes of each that the sink copies into its page-aligned buffer, rather
    than finding them where TLS or the socket put them, are only its header and
    its first bytes (the start the sink looks at, ``_START_READ``); every image
    is stored byte for byte."""
    copied: list[int] = []
    in_place: list[int] = []
    real_append = AlignedBuffer.append

    def append(self: AlignedBuffer, data: Any) -> None:
        source = memoryview(data).cast("B")
        there = (source.obj is self._map and len(source) > 0
                 and ctypes.addressof(ctypes.c_char.from_buffer(source))
                 == self.address + self.size)
        (in_place if there else copied).append(len(source))
        real_append(self, data)

    monkeypatch.setattr(AlignedBuffer, "append", append)
    count = 8
    sources = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n, rows=600, columns=500),
                            str(ExplicitVRLittleEndian)) for n in range(count)]
    root = tmp_path / "store"
    assert store_folder(root, tmp_path / "in", pki, secure)
    for n, source in enumerate(sources):
        assert_stored_whole(root, n, source)
    total = sum(read_part10(s).dataset_length for s in sources)
    assert sum(copied) + sum(in_place) >= total
    # Copied whole: the first image's bytes of its first read or two (no data set
    # of the association had gone in place yet), and the second's first read.
    # From then on only the header and the start of each (~1.4 KiB).
    large = [n for n in copied if n > 2 << 10]
    assert len(large) <= 3, copied
    assert sum(in_place) >= total * 3 // 5, (sum(in_place), total)


def record_targets(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every answer of ``InPlaceReceiving._receive_target`` from now on (a view:
    in place; a count: a bounded read; None: the transport's usual read)."""
    answers: list[object] = []
    real = InPlaceReceiving._receive_target

    def spy(self: InPlaceReceiving) -> object:
        target = real(self)
        answers.append(target)
        return target

    monkeypatch.setattr(InPlaceReceiving, "_receive_target", spy)
    return answers


@pytest.mark.parametrize("secure", [True, False], ids=["tls", "plain"])
def test_small_objects_after_a_large_one_are_read_many_at_a_time(
        tmp_path: Path, pki: Pki, secure: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 900 KB image, then forty small ones, on one association: the bounds the
    image set are lifted by the first small data set, so the small ones are not
    read a few bytes at a time (the transport's buffer, several per read)."""
    asked = record_targets(monkeypatch)
    # 900 KB: past the first read (256 KiB), so that its rest goes in place.
    write_part10(tmp_path / "in" / "0.dcm", make_image(0, rows=1000, columns=900),
                 str(ExplicitVRLittleEndian))
    for n in range(1, 41):
        write_part10(tmp_path / "in" / f"{n:02}.dcm", make_image(n),
                     str(ExplicitVRLittleEndian))
    root = tmp_path / "store"
    assert store_folder(root, tmp_path / "in", pki, secure)
    assert len([p for p in root.rglob("*.dcm")]) == 41
    bounded = [t for t in asked if isinstance(t, int)]
    # The image's: a few per PDV (its start, the headers between PDVs, its tail,
    # the next command's); none once a small data set ended unbounded.
    assert 0 < len(bounded) <= 12, asked


def started(sink: StoreSink) -> None:
    """Feed the sink a data set's first bytes, as the bounded first read does."""
    target = sink.reserve(200_000)
    assert target == store_sink._START_READ  # its start is looked at first
    sink.write(FIRST)
    assert not sink._starting


def test_the_start_of_a_long_data_set_is_read_bounded_then_received_in_place(
        tmp_path: Path) -> None:
    """``reserve`` answers a count while the data set's start is looked at, then,
    for a PDV that takes the data set past ALIGNED_FROM, memory of a page-aligned
    buffer holding the header and the start (copied once, they alone); the PDV
    received there follows them byte for byte, and the data set is whole."""
    if not _supports_direct(tmp_path):  # pragma: no cover - tmpfs, some FUSE
        pytest.skip("this file system has no O_DIRECT")
    sink = StoreSink(HEADER, (tmp_path, "in-progress"), durable=True,
                     transfer_syntax=ExplicitVRLittleEndian)
    started(sink)
    assert isinstance(sink.buffer, bytearray)
    view = sink.reserve(200_000)
    assert isinstance(view, memoryview) and len(view) == 200_000
    assert isinstance(sink.buffer, AlignedBuffer)
    assert bytes(sink.buffer.view()) == HEADER + FIRST  # copied once, the start only
    pixels = b"\xe0\x7f\x10\x00OB\x00\x00" + (200_000 - 12).to_bytes(4, "little")
    body = pixels + bytes(range(256)) * ((200_000 - 12) // 256) + b"\x01" * ((200_000 - 12) % 256)
    view[:] = body
    sink.write(view)
    view.release()
    assert bytes(sink.buffer.view()) == HEADER + FIRST + body
    assert sink.check_complete("1.2.826.0.1.3680043.8.498.9.8") and sink.error is None
    sink.abort()


def test_a_pdv_past_the_spill_threshold_at_the_start_spills_at_once(tmp_path: Path) -> None:
    """A first long PDV that takes the data set past SPILL_THRESHOLD: the sink goes
    to its file before the PDV arrives, which is then received into the
    writer's memory, not into a page-aligned buffer it would leave at once."""
    sink = StoreSink(HEADER, (tmp_path, "in-progress"), durable=True,
                     transfer_syntax=ExplicitVRLittleEndian)
    target = sink.reserve(SPILL_THRESHOLD * 2)
    assert target == store_sink._START_READ
    sink.write(FIRST)
    view = sink.reserve(SPILL_THRESHOLD * 2)
    assert sink.writer is not None and sink.buffer is None
    assert view is None or isinstance(view, memoryview)  # None: no O_DIRECT here
    if view is not None:
        view.release()
    sink.abort()
    assert [p for p in tmp_path.iterdir()] == []


def test_short_data_sets_and_sinks_without_a_file_keep_their_bytearray(tmp_path: Path) -> None:
    """A PDV under ALIGNED_FROM is never asked for (the association lends from
    64 KiB); a sink with no provisional file keeps the data set as it was."""
    assert ALIGNED_FROM <= 64 << 10
    sink = StoreSink(HEADER, None, durable=False, transfer_syntax=ExplicitVRLittleEndian)
    started(sink)
    assert sink.reserve(200_000) is None
    assert isinstance(sink.buffer, bytearray)
    sink.abort()


def test_a_redeflated_data_set_is_never_read_in_place(tmp_path: Path) -> None:
    """A deflated data set that starts with group 0002 elements is inflated and
    deflated again as it arrives: every byte goes through ``write`` unbounded
    (reserve answers None), not a count, once that is known."""
    meta = b"\x02\x00\x10\x00UI\x14\x001.2.840.10008.1.2.1\x00"
    compress = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = compress.compress(meta + FIRST) + compress.flush()
    sink = StoreSink(part10_header(sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                                   sop_instance_uid="1.2.826.0.1.3680043.8.498.9.9",
                                   transfer_syntax_uid=DeflatedExplicitVRLittleEndian,
                                   implementation_class_uid="1.2.3.4",
                                   implementation_version_name="V1", source_ae_title="PEER"),
                     (tmp_path, "in-progress"), durable=False,
                     transfer_syntax=DeflatedExplicitVRLittleEndian)
    assert sink.reserve(200_000) == store_sink._START_READ
    sink.write(deflated)
    assert sink._redeflate is not None and sink._starting
    assert sink.reserve(200_000) is None
    sink.abort()


def test_short_pdvs_after_a_data_set_in_place_are_read_many_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A raw peer sends a 300 KB image in one PDV (received in place: reads are
    bounded from then on), then a 1 MB one cut into 300-byte PDVs, fifty per
    P-DATA-TF. Those PDVs are read as usual, many per read, not one read each,
    and none is split into two stretches: the second image is stored and
    answered Success, not aborted as a flood of PDVs (DIMSE expects at least
    256 bytes per PDV on average past 1,024 of them), as it was when each
    short PDV was read with the 12 bytes after it."""
    from dicomnet.ul.negotiation import ContextRequest
    from dicomnet.ul.pdu import encode_pdata
    from tests.storage.dicomfiles import SECONDARY_CAPTURE
    from tests.storage.rawscu import RawAssociation, store_command

    def image(number: int, rows: int, columns: int) -> tuple[bytes, bytes]:
        data = make_image(number, rows=rows, columns=columns)
        source = write_part10(tmp_path / "in" / f"{number}.dcm", data,
                              str(ExplicitVRLittleEndian))
        return (data.SOPInstanceUID.encode(),
                source.read_bytes()[read_part10(source).dataset_offset:])

    first_uid, first = image(1, 600, 500)
    second_uid, second = image(2, 1000, 1000)
    scp = StorageSCP(tmp_path / "store")

    async def scenario() -> tuple[object, object, int]:
        try:
            async with running_server(providers=[scp], ae_title="DICOMNET") as srv:
                assoc = await RawAssociation.open(srv.port, [
                    ContextRequest(SECONDARY_CAPTURE, (str(ExplicitVRLittleEndian),))])
                ctx = assoc.context_id(SECONDARY_CAPTURE)
                await assoc.send_store(ctx, store_command(SECONDARY_CAPTURE.encode(), first_uid),
                                       first)
                answer_first = await assoc.read_message()
                before = len(targets)
                pieces = [second[i:i + 300] for i in range(0, len(second), 300)]
                pdus = []
                for start in range(0, len(pieces), 50):
                    items = b"".join(
                        (len(piece) + 2).to_bytes(4, "big")
                        + bytes([ctx, 0x02 if start + k == len(pieces) - 1 else 0x00]) + piece
                        for k, piece in enumerate(pieces[start:start + 50]))
                    pdus.append(b"\x04\x00" + len(items).to_bytes(4, "big") + items)
                await assoc.send(encode_pdata(ctx, True, True, store_command(
                    SECONDARY_CAPTURE.encode(), second_uid, 2)), *pdus)
                answer_second = await assoc.read_message()
                bounded = sum(isinstance(t, int) for t in targets[before:])
                await assoc.release()
                return answer_first, answer_second, bounded
        finally:
            scp.close()

    targets = record_targets(monkeypatch)
    answer_first, answer_second, bounded = run(scenario())
    assert getattr(answer_first, "status", None) == 0
    assert getattr(answer_second, "status", None) == 0, answer_second
    assert any(type(t) is memoryview for t in targets)  # the first image went in place
    assert bounded <= 10, bounded  # 3,336 PDVs
    stored = sorted(p.name for p in (tmp_path / "store").rglob("*.dcm"))
    assert stored == sorted(f"{u.decode()}.dcm" for u in (first_uid, second_uid))
