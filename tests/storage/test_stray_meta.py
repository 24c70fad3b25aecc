"""File Meta Information elements (group 0002) at the start of a data set are no
part of it (PS3.5 7.1, PS3.10 7.1): the SCP stores the file with one meta group,
its own, and the data set without them; the SCU does not send them. Before, the
SCP stored them after its meta group (pydicom then read the file's Transfer
Syntax UID from the second group: a wrong one), and the SCU read the file's
meta group through the second one: its Transfer Syntax UID named the wrong
syntax, and the file was refused ("not sent") or, worse, sent under it."""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomnet.aio.client import open_association
from dicomnet.config import Limits
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
from dicomnet.services.storage import StorageSCP
from dicomnet.services.store_sink import SPILL_THRESHOLD, StoreSink
from dicomnet.storage import completeness
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.part10 import read_part10
from dicomnet.storage.stray_meta import StrayMeta, meta_group_end
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import assert_same_dataset, make_image
from tests.storage.helpers import SECONDARY_CAPTURE, data_set_bytes, send_files, store_data_sets
from tests.storage.stray import (
    assert_one_meta_group,
    inflated,
    meta_elements,
    meta_group_length,
    write_with_stray_meta,
)

SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]
IDS = ["explicit", "implicit", "big-endian"]


def _fed(stray: StrayMeta, data: bytes, step: int) -> bytes:
    return b"".join(bytes(stray.feed(data[i:i + step])) for i in range(0, len(data), step))


@pytest.mark.parametrize("syntax", SYNTAXES, ids=IDS)
@pytest.mark.parametrize("step", [1, 7, 1 << 20])
def test_stray_meta_drops_the_leading_group_in_any_pieces(syntax: str, step: int) -> None:
    ds = make_image(1)
    plain = data_set_bytes(ds, syntax)
    meta = meta_elements(ds, syntax, private_value=512)
    stray = StrayMeta(implicit=syntax == ImplicitVRLittleEndian,
                      big_endian=syntax == ExplicitVRBigEndian)
    assert _fed(stray, meta + plain, step) == plain
    assert stray.done and stray.dropped == len(meta)
    assert stray.tags == [0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010,
                          0x00020013, 0x00020102]


@pytest.mark.parametrize("syntax", SYNTAXES, ids=IDS)
def test_stray_meta_passes_an_ordinary_data_set_as_it_is(syntax: str) -> None:
    plain = data_set_bytes(make_image(1), syntax)
    stray = StrayMeta(implicit=syntax == ImplicitVRLittleEndian,
                      big_endian=syntax == ExplicitVRBigEndian)
    assert _fed(stray, plain, 3) == plain
    assert stray.tags == [] and stray.dropped == 0


def test_stray_meta_cut_inside_an_element_says_so() -> None:
    meta = meta_elements(make_image(1), ExplicitVRLittleEndian)
    stray = StrayMeta(implicit=False)
    assert bytes(stray.feed(meta[:-3])) == b""
    assert not stray.done and stray.cut


def test_meta_group_end_stops_where_a_second_group_starts() -> None:
    ds = make_image(1)
    path_bytes = meta_elements(ds, ExplicitVRLittleEndian)
    head = bytes(132) + path_bytes + path_bytes + data_set_bytes(ds, ExplicitVRLittleEndian)
    assert meta_group_end(head, 132) == 132 + len(path_bytes)


def _only_our_meta(path: Path, syntax: str, plain: bytes | None) -> None:
    """One meta group (ours, naming ``syntax``), then exactly the data set sent
    without its group 0002 elements (``plain``; None: a data set of another
    group first); pydicom reads the same."""
    data = path.read_bytes()
    if plain is None:
        assert data[meta_group_length(data):][:2] == b"\x08\x00"
    else:
        assert data[meta_group_length(data):] == plain
    read = dcmread(path)
    assert read.file_meta.TransferSyntaxUID == syntax
    assert str(read.file_meta.ImplementationVersionName).startswith("DICOMNET")
    assert all(element.tag.group != 0x0002 for element in read)


@pytest.mark.parametrize("syntax", SYNTAXES, ids=IDS)
@pytest.mark.parametrize("size", ["small", "spilled"])
def test_scp_drops_group_0002_from_a_received_data_set(
        root: Path, syntax: str, size: str, caplog: pytest.LogCaptureFixture) -> None:
    # Spilled: past the threshold, the file is written as the data set arrives.
    ds = make_image(1, rows=1024, columns=2 * SPILL_THRESHOLD // 1024) if size == "spilled" \
        else make_image(1)
    plain = data_set_bytes(ds, syntax)
    sent = meta_elements(ds, syntax, private_value=4096) + plain
    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        answers = _store(root, syntax, [(ds.SOPInstanceUID, sent)])
    assert [a.status for a in answers] == [0x0000]
    stored = next(root.rglob(f"{ds.SOPInstanceUID}.dcm"))
    _only_our_meta(stored, syntax, plain)
    assert_same_dataset(ds, stored)
    warnings = [r.getMessage() for r in caplog.records if "File Meta Information" in
                r.getMessage()]
    assert len(warnings) == 1, warnings
    assert ds.SOPInstanceUID in warnings[0] and "@127.0.0.1:" in warnings[0]
    assert "(0002,0000)" in warnings[0] and "(0002,0102)" in warnings[0]
    with StorageIndex(root / "index.sqlite") as index:
        row = index.get_instance(ds.SOPInstanceUID)
    assert row is not None
    assert (row.study_instance_uid, row.series_instance_uid, row.size) == (
        ds.StudyInstanceUID, ds.SeriesInstanceUID, stored.stat().st_size)


def _store(root: Path, syntax: str, data_sets: list[tuple[str, bytes]]) -> list[CStoreRSP]:
    return run(store_data_sets(StorageSCP(root), syntax, data_sets))


def test_scp_refuses_a_data_set_of_group_0002_only(root: Path) -> None:
    ds = make_image(1)
    answers = _store(root, ExplicitVRLittleEndian, [
        (ds.SOPInstanceUID, meta_elements(ds, ExplicitVRLittleEndian))])
    assert [a.status for a in answers] == [0xC000]
    assert "group 0002" in (answers[0].error_comment or "")
    assert not list(root.rglob("*.dcm"))


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
                         ids=IDS[:2])
@pytest.mark.parametrize("accepted", ["as-is", "converted"])
def test_scu_does_not_send_group_0002_after_the_meta_group(
        tmp_path: Path, syntax: str, accepted: str, caplog: pytest.LogCaptureFixture) -> None:
    ds = make_image(2)
    plain = data_set_bytes(ds, syntax)
    path = write_with_stray_meta(tmp_path / "in" / "stray.dcm", ds, syntax, plain)
    info = read_part10(path)
    assert info.transfer_syntax_uid == syntax
    assert info.stray_meta == (0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010,
                               0x00020013)
    assert path.read_bytes()[info.dataset_offset:] == plain
    other = ImplicitVRLittleEndian if syntax == ExplicitVRLittleEndian else ExplicitVRLittleEndian
    expected = syntax if accepted == "as-is" else other
    root = tmp_path / "root"
    with caplog.at_level(logging.WARNING, logger="dicomnet.storage"):
        results = send_files(root, [path], [expected])
    assert [r.status for r in results] == [0x0000], [r.error for r in results]
    stored = next(root.rglob(f"{ds.SOPInstanceUID}.dcm"))
    # Converted, Pixel Data read in Implicit VR is written OW (PS3.5 A.1): not byte for byte.
    _only_our_meta(stored, expected, data_set_bytes(ds, expected) if accepted == "as-is"
                   else None)
    assert_same_dataset(ds, stored)
    assert any("passed over, not sent" in r.getMessage() and str(path) in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("first", [0, 1])
def test_sink_whose_first_write_is_under_two_bytes_drops_nothing(first: int) -> None:
    # An empty PDV, or a 1-byte one (a Maximum Length of 7), leaves the first
    # element undecided: once it is known, nothing was dropped, no stray to report.
    plain = data_set_bytes(make_image(1), ExplicitVRLittleEndian)
    sink = StoreSink(transfer_syntax=ExplicitVRLittleEndian)
    sink.write(plain[:first])
    sink.write(plain[first:])
    assert sink.stray is None
    assert sink.check_complete("1.2.3") and sink.buffer == bytearray(plain)


def test_sink_of_one_byte_says_it_ends_inside_its_first_element() -> None:
    sink = StoreSink(transfer_syntax=ExplicitVRLittleEndian)
    sink.write(b"\x08")
    assert not sink.check_complete("1.2.3")
    assert sink.error == "incomplete data set: it ends inside its first element"


def test_scp_with_pdvs_of_one_byte_logs_no_dropped_meta(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = make_image(1)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)

    async def store() -> int:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[scp], limits=Limits(max_pdu_length=7)) as server:
                assoc = await open_association("127.0.0.1", server.port, contexts=[
                    ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))])
                rq = CStoreRQ(message_id=1, affected_sop_class_uid=SECONDARY_CAPTURE,
                              affected_sop_instance_uid=ds.SOPInstanceUID)
                rsp, _ = await assoc.request_one(
                    rq, assoc.context_for(SECONDARY_CAPTURE).context_id, dataset=plain)
                await assoc.release()
                assert isinstance(rsp, CStoreRSP)
                return rsp.status
        finally:
            scp.close()

    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        assert run(store()) == 0x0000
    assert not [r.getMessage() for r in caplog.records if "File Meta" in r.getMessage()]
    stored = next(root.rglob(f"{ds.SOPInstanceUID}.dcm")).read_bytes()
    assert stored[meta_group_length(stored):] == plain



def _meta_element(number: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0"
    if vr == b"OB":
        return struct.pack("<HH2sHL", 2, number, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 2, number, vr, len(value)) + value


def test_a_meta_group_out_of_order_is_read_whole(tmp_path: Path) -> None:
    # A careless writer's meta group, its elements not ascending (Transfer Syntax
    # UID last): one group all the same, as pydicom reads it. Ended at the first
    # tag not above its predecessor, the file was refused ("File Meta Information
    # lacks TransferSyntaxUID"); a tag seen twice ends it.
    ds = make_image(3)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    body = b"".join([
        _meta_element(0x0001, b"OB", b"\0\1"),
        _meta_element(0x0002, b"UI", str(ds.SOPClassUID).encode()),
        _meta_element(0x0003, b"UI", str(ds.SOPInstanceUID).encode()),
        _meta_element(0x0013, b"SH", b"WRITER"),
        _meta_element(0x0012, b"UI", b"1.2.3.4"),
        _meta_element(0x0010, b"UI", ExplicitVRLittleEndian.encode()),
    ])
    meta = _meta_element(0x0000, b"UL", struct.pack("<L", len(body))) + body
    path = tmp_path / "shuffled.dcm"
    for stray in (b"", meta_elements(ds, ExplicitVRLittleEndian)):
        path.write_bytes(bytes(128) + b"DICM" + meta + stray + plain)
        info = read_part10(path)
        assert info.transfer_syntax_uid == ExplicitVRLittleEndian
        assert info.stray_meta == (() if not stray else (
            0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020013))
        assert path.read_bytes()[info.dataset_offset:] == plain
        assert info.meta.TransferSyntaxUID == ExplicitVRLittleEndian


def _deflated(data: bytes) -> bytes:
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflater.compress(data) + deflater.flush()


@pytest.mark.parametrize("size", ["small", "spilled"])
def test_scp_drops_group_0002_from_a_deflated_data_set(
        root: Path, size: str, caplog: pytest.LogCaptureFixture) -> None:
    """In a deflated data set (PS3.5 A.5) the group 0002 elements are inside the
    deflate stream: the SCP stored them as they came (the uncompressed syntaxes'
    drop did not look there), and pydicom read the second group's Transfer
    Syntax UID. Now the stream is inflated without them and deflated again as
    it arrives; the file's header still says Deflated, its data set inflates to
    exactly the one sent without them."""
    ds = make_image(1, rows=1024, columns=2 * SPILL_THRESHOLD // 1024) if size == "spilled" \
        else make_image(1)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    sent = _deflated(meta_elements(ds, ExplicitVRLittleEndian, private_value=4096) + plain)
    assert (len(sent) > SPILL_THRESHOLD) == (size == "spilled")
    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        answers = _store(root, DeflatedExplicitVRLittleEndian, [(ds.SOPInstanceUID, sent)])
    assert [a.status for a in answers] == [0x0000]
    stored = next(root.rglob(f"{ds.SOPInstanceUID}.dcm"))
    data = stored.read_bytes()
    assert inflated(data[meta_group_length(data):]) == plain
    assert_one_meta_group(stored, ds, DeflatedExplicitVRLittleEndian)
    warnings = [r.getMessage() for r in caplog.records if "File Meta Information" in
                r.getMessage()]
    assert len(warnings) == 1 and "(0002,0102)" in warnings[0], warnings


@pytest.mark.parametrize("step", [1, 7, 1 << 20])
def test_sink_redeflates_in_any_pieces(step: int) -> None:
    ds = make_image(2)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    meta = meta_elements(ds, ExplicitVRLittleEndian)
    sent = _deflated(meta + plain)
    sink = StoreSink(b"HEADER", transfer_syntax=DeflatedExplicitVRLittleEndian)
    for pos in range(0, len(sent), step):
        sink.write(sent[pos:pos + step])
    assert sink.check_complete("1.2.3"), sink.error
    assert isinstance(sink.buffer, bytearray) and sink.buffer[:6] == b"HEADER"
    assert inflated(bytes(sink.buffer[6:])) == plain
    assert sink.stray is not None and sink.stray.dropped == len(meta)
    # A plain deflated data set is stored as it came, byte for byte (its stream
    # padded to an even length, PS3.5 A.5, where it was sent without).
    other = StoreSink(b"HEADER", transfer_syntax=DeflatedExplicitVRLittleEndian)
    stream = _deflated(plain)
    for pos in range(0, len(sent), step):
        other.write(stream[pos:pos + step])
    assert other.check_complete("1.2.3") and other.buffer == bytearray(
        b"HEADER" + stream + b"\x00" * (len(stream) % 2)) and other.stray is None


@pytest.mark.parametrize("how", ["cut", "meta-only", "implicit"])
def test_sink_refuses_a_deflated_data_set_it_cannot_clean(how: str) -> None:
    ds = make_image(3)
    meta = meta_elements(ds, ExplicitVRLittleEndian)
    if how == "implicit":
        sent = _deflated(meta + data_set_bytes(ds, ImplicitVRLittleEndian))
    else:
        sent = _deflated(meta + (b"" if how == "meta-only" else data_set_bytes(
            ds, ExplicitVRLittleEndian)))
        if how == "cut":
            sent = sent[:len(sent) // 2]
    sink = StoreSink(b"HEADER", transfer_syntax=DeflatedExplicitVRLittleEndian)
    sink.write(sent)
    assert not sink.check_complete("1.2.3")
    assert sink.status == 0xC000 and sink.buffer is None
    assert sink.error is not None and {
        "cut": "incomplete data set: the data set ends inside its deflated stream",
        "meta-only": "no data set: File Meta Information elements (group 0002) only",
        "implicit": "data set in Implicit VR"}[how] in sink.error


def test_a_deflate_bomb_behind_group_0002_is_refused_as_one_without(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Past the bound on inflating, a deflated data set is refused Out of Resources
    (A700), said at ERROR with the whole reason (ours, not the sender's fault);
    behind group 0002 (re-deflated) it was said at WARNING, the bound unnamed in
    the log: an operator watching for errors missed it."""
    monkeypatch.setattr(completeness, "MAX_INFLATED", 1 << 20)
    sent, ends = [], []
    for n, meta in enumerate([False, True]):
        ds = make_image(20 + n)
        plain = data_set_bytes(ds, ExplicitVRLittleEndian)
        bomb = struct.pack("<HH2sHL", 0x7FE1, 0x1010, b"OB", 0, 2 << 20) + bytes(2 << 20)
        start = meta_elements(ds, ExplicitVRLittleEndian) if meta else b""
        sent.append((ds.SOPInstanceUID, _deflated(start + plain + bomb)))
        ends.append(len(plain) + len(bomb))  # behind group 0002: counted without it
    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        answers = _store(root, DeflatedExplicitVRLittleEndian, sent)
    assert [(a.status, a.error_comment) for a in answers] == [
        (0xA700, "deflated data set would inflate past 1 MiB, our limit")] * 2
    refusals = [(r.levelno, r.getMessage().partition(" refused, ")[2]) for r in caplog.records
                if " refused, " in r.getMessage()]
    assert refusals == [
        (logging.ERROR, "status 0xA700: its deflated data set would inflate past 1 MiB, the "
         "most dicomnet inflates to check a deflated data set: its element (7FE1,1010) "
         f"ends {end} bytes in; not stored") for end in ends]
    assert not list(root.rglob("*.dcm"))


def _bomb_stream(start: bytes, size: int) -> bytes:
    """A deflate stream of ``start`` then a ``size``-byte OB of zeros: 1 MiB of
    zeros deflated once (its blocks byte-aligned and independent, Z_FULL_FLUSH),
    repeated, so building a GiB costs no CPU. Padded (PS3.5 A.5)."""
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = deflater.compress(start + struct.pack("<HH2sHL", 0x7FE1, 0x1010, b"OB", 0, size))
    head += deflater.flush(zlib.Z_FULL_FLUSH)
    mib = deflater.compress(bytes(1 << 20)) + deflater.flush(zlib.Z_FULL_FLUSH)
    stream = head + mib * (size >> 20) + deflater.flush()
    return stream + b"\x00" * (len(stream) % 2)


@pytest.mark.parametrize("meta", [False, True], ids=["plain", "meta"])
def test_a_deflate_bomb_of_one_value_is_refused_from_its_length(
        inflaters: list[_Counted], meta: bool) -> None:
    """A value whose length takes a deflated data set past the bound on
    inflating (1 GiB, as most deflate bombs: one huge zero value): it was
    inflated up to the bound before being refused, and behind group 0002 also
    deflated again, which cost 3 s of CPU per C-STORE of 1 MB. The refusal is
    certain from its length (the data set inflates past the bound, or ends
    short of that value): it comes then, the same (A700), having inflated
    little (on the re-deflating path too, whose walk sees each element's header
    as it is inflated: at most one 64 KiB piece past it)."""
    ds = make_image(30)
    start = (meta_elements(ds, ExplicitVRLittleEndian) if meta else b"") + data_set_bytes(
        ds, ExplicitVRLittleEndian)
    stream = _bomb_stream(start, completeness.MAX_INFLATED)
    sink = _sink_fed(stream)
    assert not sink.check_complete("1.2.3")
    assert (sink.status, sink.error) == (
        0xA700, "deflated data set would inflate past 1 GiB, our limit")
    assert sink.buffer is None
    given = sum(i.given for i in inflaters)
    assert 0 < given < 64 << 20, given


class _Counted:
    """zlib's raw inflater, counting the bytes it gives (``given``)."""

    made: list[_Counted]
    real = staticmethod(zlib.decompressobj)

    def __init__(self, wbits: int) -> None:
        self.inner, self.given = self.real(wbits), 0
        self.made.append(self)

    def decompress(self, data: bytes, most: int = 0) -> bytes:
        out = self.inner.decompress(data, most)
        self.given += len(out)
        return out

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.fixture
def inflaters(monkeypatch: pytest.MonkeyPatch) -> list[_Counted]:
    """Every raw inflater made while the test runs (zlib.decompressobj counted)."""
    made: list[_Counted] = []
    monkeypatch.setattr(_Counted, "made", made, raising=False)
    monkeypatch.setattr(zlib, "decompressobj", _Counted)
    return made


def _sink_fed(stream: bytes, pdv: int = 16372) -> StoreSink:
    sink = StoreSink(b"HEADER", transfer_syntax=DeflatedExplicitVRLittleEndian)
    for pos in range(0, len(stream), pdv):
        sink.write(stream[pos:pos + pdv])
    return sink


def test_a_redeflated_data_set_is_inflated_once(inflaters: list[_Counted]) -> None:
    """Behind group 0002 a deflated data set is inflated, cleaned and deflated
    again; its walk (storage.completeness) then inflated the new stream a
    second time: 12% of the CPU of receiving it. It now walks the bytes the
    cleaning inflated: one inflater gives the data set, once; the other, the 6
    bytes that tell its first element's VR mode (before group 0002 is known)."""
    ds = make_image(5, rows=1024, columns=2048)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    meta = meta_elements(ds, ExplicitVRLittleEndian, private_value=4096)
    sink = _sink_fed(_deflated(meta + plain))
    assert sink.check_complete("1.2.3"), sink.error
    assert isinstance(sink.buffer, bytearray)
    stored = bytes(sink.buffer[6:])
    assert sorted(i.given for i in inflaters) == [6, len(meta) + len(plain)]
    # No walker of the stream as sent (its inflater made, and dropped unused, before).
    assert len(inflaters) == 2
    # A deflated data set without group 0002: that walker, and the 6 bytes' inflater.
    inflaters.clear()
    sink = _sink_fed(_deflated(plain))
    assert sink.check_complete("1.2.3"), sink.error
    assert sorted(i.given for i in inflaters) == [6, len(plain)]
    assert inflated(stored) == plain  # the test's own inflater, made after the count


def test_a_redeflated_bomb_is_refused_at_its_value_header(inflaters: list[_Counted]) -> None:
    """The walk saw a value's header only once the deflater gave the block
    holding it (4 MiB of a deflate bomb's zeros inflated twice first); it sees
    it as it is inflated: refused (A700) within the first 64 KiB piece."""
    ds = make_image(31)
    start = meta_elements(ds, ExplicitVRLittleEndian) + data_set_bytes(
        ds, ExplicitVRLittleEndian)
    sink = _sink_fed(_bomb_stream(start, completeness.MAX_INFLATED))
    assert not sink.check_complete("1.2.3")
    assert (sink.status, sink.error) == (
        0xA700, "deflated data set would inflate past 1 GiB, our limit")
    given = sum(i.given for i in inflaters)
    assert 0 < given <= 6 + (64 << 10), given


def test_a_redeflated_data_set_malformed_early_is_not_inflated_further(
        inflaters: list[_Counted]) -> None:
    """Behind group 0002, a data set whose walk fails (here a sequence holding
    an Item Delimitation Item, not an item: PS3.5 7.5.2) was still inflated
    and deflated again to its end (its walk of the new stream stopped, the
    cleaning did not): a deflate bomb after it cost its whole size. The
    refusal is certain there: nothing more is inflated (C000, as before)."""
    ds = make_image(32)
    bad = (struct.pack("<HH2sHL", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF)
           + struct.pack("<HHL", 0xFFFE, 0xE00D, 0))
    stream = _bomb_stream(meta_elements(ds, ExplicitVRLittleEndian) + bad, 64 << 20)
    sink = _sink_fed(stream)
    assert not sink.check_complete("1.2.3")
    assert (sink.status, sink.error) == (
        0xC000, "malformed data set: (FFFE,E00D) inside the sequence "
        "(0008,1115)")
    given = sum(i.given for i in inflaters)
    assert 0 < given <= 6 + (64 << 10), given
