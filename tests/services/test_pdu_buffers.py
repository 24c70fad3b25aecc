"""PduBuffers and the SCU's file PDUs: memory is used again only when nothing
holds it, so a PDU still queued (or viewed) is never overwritten by the next."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.store_prepare import PduBuffers, file_pdus
from dicomnet.storage import Part10Info, read_part10
from tests.storage.dicomfiles import make_image, write_part10

from ..storage.helpers import make_dataset, write_part10_file

# A peer maximum that makes PDUs of 96 KiB + 12: pooled (>= 64 KiB), several per file.
MAX_PDU = (96 << 10) + 6


def test_an_idle_buffer_is_handed_out_again() -> None:
    pool = PduBuffers()
    first = pool.get(100_000)
    first_id = id(first)
    del first
    again = pool.get(100_000)
    assert id(again) == first_id


def test_a_buffer_still_referenced_or_viewed_is_not() -> None:
    pool = PduBuffers()
    held = pool.get(100_000)
    other = pool.get(100_000)
    assert other is not held  # ``held`` is still referenced here
    view = memoryview(other)[:10]
    del other
    third = pool.get(100_000)
    assert third is not held and view.obj is not third  # the view keeps its buffer busy
    view.release()


def test_another_capacity_gets_its_own_buffer_and_the_pool_stays_bounded() -> None:
    pool = PduBuffers(keep=2)
    small = pool.get(10)
    assert len(small) == 10
    big = pool.get(20)
    assert len(big) == 20 and big is not small
    held = [pool.get(20) for _ in range(5)]  # all busy: fresh ones, only two kept
    assert len({id(b) for b in held}) == 5
    assert len(pool._buffers) == 2


def _file(tmp_path: Path, size: int) -> Path:
    ds = make_dataset()
    ds.Rows, ds.Columns = 1000, size // 1000
    ds.PixelData = os.urandom(1000 * (size // 1000))
    return write_part10_file(tmp_path / "big.dcm", ds, ExplicitVRLittleEndian)


def _file_and_data(tmp_path: Path) -> tuple[Part10Info, bytes]:
    """A file of several pooled PDUs, and its data set's bytes as on disk."""
    info = read_part10(_file(tmp_path, 500_000))
    with open(info.path, "rb") as fp:
        fp.seek(info.dataset_offset)
        return info, fp.read()


def _check(pdus: list[bytes], data: bytes) -> None:
    """Each PDU is one P-DATA-TF with one data PDV (PS3.8 9.3.5), only the last marked last."""
    got = b""
    for index, pdu in enumerate(pdus):
        pdu_type, pdu_length, pdv_length, context, control = struct.unpack(">BxLLBB", pdu[:12])
        assert (pdu_type, context) == (0x04, 1)
        assert pdu_length == len(pdu) - 6 and pdv_length == len(pdu) - 10
        assert control == (0x02 if index == len(pdus) - 1 else 0x00)
        got += pdu[12:]
    assert got == data


def test_pdus_held_together_keep_their_own_bytes(tmp_path: Path) -> None:
    info, data = _file_and_data(tmp_path)
    pool = PduBuffers()
    # Kept all at once (as a transport with a long backlog would): none is reused.
    kept = list(file_pdus(info, 1, MAX_PDU, pool))
    assert len(kept) > 4 and all(len(p) >= 64 << 10 for p in kept[:-1])
    pooled = [p for p in kept if isinstance(p, memoryview)]
    assert len(pooled) == len(kept) - 1  # the short last one is a bytearray of its own
    assert len({id(p.obj) for p in pooled}) == len(pooled)
    _check([bytes(p) for p in kept], data)


def test_pdus_written_one_by_one_share_a_few_buffers(tmp_path: Path) -> None:
    info, data = _file_and_data(tmp_path)
    pool = PduBuffers()
    buffers: set[int] = set()
    sent: list[bytes] = []
    for pdu in file_pdus(info, 1, MAX_PDU, pool):
        if isinstance(pdu, memoryview):
            buffers.add(id(pdu.obj))
        sent.append(bytes(pdu))  # "written": the copy is what went out
    _check(sent, data)
    assert len(buffers) <= 2  # the generator's own reference keeps one busy at a time
    # The same file again, through the same pool: no new buffer.
    again = [id(p.obj) for p in file_pdus(info, 1, MAX_PDU, pool) if isinstance(p, memoryview)]
    assert len(again) == 5 and set(again) <= buffers


def test_small_pdus_are_not_pooled(tmp_path: Path) -> None:
    info = read_part10(_file(tmp_path, 1_000))
    pool = PduBuffers()
    (pdu,) = list(file_pdus(info, 1, MAX_PDU, pool))
    assert isinstance(pdu, bytearray) and not pool._buffers


def test_huge_pdus_keep_only_two_buffers() -> None:
    pool = PduBuffers()
    held = [pool.get(12 << 20) for _ in range(3)]
    assert len(pool._buffers) == 2 and all(len(b) == 12 << 20 for b in held)


def test_a_file_s_pdus_cost_few_python_calls(tmp_path: Path) -> None:
    """Per object sent from its file (~one PDU for a 512 KiB image): its path's
    text taken once (open() of a Path made two calls more; ``store_paths`` reads
    its files by their text, kept as such: ``Part10Info.path_text``), no property
    for the data set's length, the PDV size and the PDU header worked out inline
    (14 calls before, 9 now: the generators' entries and resumptions, the two
    looks at the file, the pool). The same PDUs."""
    from tests.aio.test_receive_path_calls import python_calls

    image = write_part10(tmp_path / "a.dcm", make_image(1, rows=512, columns=512),
                         ExplicitVRLittleEndian)
    info = read_part10(str(image))
    pool = PduBuffers()
    expected = [bytes(p) for p in file_pdus(info, 1, 1 << 20, pool)]
    got: list[bytes | bytearray | memoryview] = []
    calls = python_calls(lambda: got.extend(file_pdus(info, 1, 1 << 20, pool)))
    assert [bytes(p) for p in got] == expected and len(expected) == 1
    assert calls == ["file_pdus", "Part10Info.path_text", "changed", "_pdus_from",
                     "PduBuffers.get", "file_pdus.<locals>.unchanged", "changed",
                     "file_pdus", "_pdus_from"]


def test_prepare_file_finds_its_context_without_a_generator(tmp_path: Path) -> None:
    """The context a file goes on as it is, looked for in a loop written out (a
    generator and ``next`` before: two Python calls per object); the first
    matching one, as before."""
    import asyncio
    import sys
    import types
    from types import SimpleNamespace

    from dicomnet.services.store_prepare import Prepared, prepare_file
    from dicomnet.services.store_result import StoreResult
    from dicomnet.ul.negotiation import AcceptedContext

    image = write_part10(tmp_path / "a.dcm", make_image(1, rows=512, columns=512),
                         ExplicitVRLittleEndian)
    info = read_part10(image)
    contexts = {1: AcceptedContext(1, info.sop_class_uid, "1.2.840.10008.1.2"),
                3: AcceptedContext(3, "1.2.3", ExplicitVRLittleEndian),
                5: AcceptedContext(5, info.sop_class_uid, ExplicitVRLittleEndian),
                7: AcceptedContext(7, info.sop_class_uid, ExplicitVRLittleEndian)}
    assoc = SimpleNamespace(contexts=contexts, dimse=SimpleNamespace(next_message_id=lambda: 9),
                            ul=SimpleNamespace(peer_max_pdu_length=1 << 20))
    called: set[str] = set()

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "call":
            called.add(frame.f_code.co_qualname)

    async def main() -> Prepared | None:
        sys.setprofile(profile)
        try:
            return await prepare_file(assoc, info, StoreResult(path=image),  # type: ignore[arg-type]
                                      PduBuffers())
        finally:
            sys.setprofile(None)

    prepared = asyncio.run(main())
    assert prepared is not None
    rq, context_id, pdus, data = prepared
    assert context_id == 5 and data is None and rq.message_id == 9
    assert pdus is not None
    pdus.close()
    assert "prepare_file.<locals>.<genexpr>" not in called
