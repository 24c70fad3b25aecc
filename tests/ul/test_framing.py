"""``PDUFramer``: incremental framing of a byte stream into PDUs (PS3.8 9.3.1)."""

from __future__ import annotations

import random
import time
import tracemalloc

import pytest

from dicomnet.errors import RemoteProtocolError
from dicomnet.ul.framing import PDUFramer, describe_foreign_bytes
from dicomnet.ul.pdu import PDU, PDataTF, PresentationDataValue, encode_pdata

from . import vectors as v

STREAM = b"".join(vector.data for vector in v.PDU_VECTORS)
EXPECTED = [vector.obj for vector in v.PDU_VECTORS]


def drain(framer: PDUFramer) -> list[PDU]:
    pdus = []
    while (pdu := framer.next_pdu()) is not None:
        pdus.append(pdu)
    return pdus


def test_empty_framer_needs_data() -> None:
    framer = PDUFramer()
    assert framer.next_pdu() is None
    assert framer.buffered == 0
    assert framer.peek_header() is None


def test_stream_fed_whole() -> None:
    framer = PDUFramer()
    framer.feed(STREAM)
    assert drain(framer) == EXPECTED
    assert framer.buffered == 0


def test_stream_fed_one_byte_at_a_time() -> None:
    framer = PDUFramer()
    pdus = []
    for i in range(len(STREAM)):
        framer.feed(STREAM[i : i + 1])
        pdus += drain(framer)
    assert pdus == EXPECTED


@pytest.mark.parametrize("seed", range(20))
def test_stream_split_at_random_points(seed: int) -> None:
    rng = random.Random(seed)
    framer = PDUFramer()
    pdus: list[PDU] = []
    position = 0
    while position < len(STREAM):
        step = rng.randint(1, 80)
        framer.feed(memoryview(STREAM)[position : position + step])
        position += step
        pdus += drain(framer)
    assert pdus == EXPECTED


def test_buffered_counts_bytes_not_yet_returned() -> None:
    framer = PDUFramer()
    framer.feed(v.RELEASE_RQ_BYTES + v.ABORT_USER_BYTES[:3])
    assert framer.buffered == 13
    assert framer.next_pdu() == v.RELEASE_RQ
    assert framer.buffered == 3
    assert framer.next_pdu() is None
    framer.feed(v.ABORT_USER_BYTES[3:])
    assert framer.next_pdu() == v.ABORT_USER
    assert framer.buffered == 0


def test_peek_header_once_six_bytes_are_in() -> None:
    framer = PDUFramer()
    framer.feed(v.ASSOCIATE_RQ_BYTES[:5])
    assert framer.peek_header() is None
    framer.feed(v.ASSOCIATE_RQ_BYTES[5:6])
    assert framer.peek_header() == (0x01, 288)
    assert framer.next_pdu() is None


def test_feed_copies_a_reused_buffer() -> None:
    # asyncio.BufferedProtocol hands over a view of a buffer it then reuses.
    buffer = bytearray(v.P_DATA_TF_BYTES)
    framer = PDUFramer()
    framer.feed(memoryview(buffer)[:40])
    buffer[:] = bytes(len(buffer))
    framer.feed(v.P_DATA_TF_BYTES[40:])
    assert framer.next_pdu() == v.P_DATA_TF


def test_returned_pdv_data_does_not_change_with_later_feeds() -> None:
    framer = PDUFramer()
    framer.feed(v.P_DATA_TF_BYTES)
    pdu = framer.next_pdu()
    framer.feed(b"\x05\x00\x00\x00\x00\x04" + b"\xff" * 4)
    assert framer.next_pdu() == v.RELEASE_RQ
    assert isinstance(pdu, PDataTF)
    assert pdu.pdvs[0].data == v.C_ECHO_RQ_COMMAND


# ------------------------------------------------------- judged from the header


def test_p_data_tf_over_max_pdata_length_is_refused_from_its_header() -> None:
    framer = PDUFramer(max_pdata_length=16384)
    header = encode_pdata(1, False, True, b"\x00" * 16385)[:6]  # PDU length 16391
    framer.feed(header)
    with pytest.raises(RemoteProtocolError) as err:
        framer.next_pdu()
    assert (err.value.abort_source, err.value.abort_reason) == (2, 6)
    assert "16391" in str(err.value) and "16384" in str(err.value)


def test_p_data_tf_at_max_pdata_length_is_accepted() -> None:
    framer = PDUFramer(max_pdata_length=16384)
    framer.feed(encode_pdata(1, False, True, b"\x00" * (16384 - 6)))
    pdu = framer.next_pdu()
    assert isinstance(pdu, PDataTF)
    assert len(pdu.pdvs[0].data) == 16378


def test_max_pdata_length_can_be_set_after_negotiation() -> None:
    framer = PDUFramer()
    framer.feed(encode_pdata(1, False, True, b"\x00" * 100))
    assert framer.next_pdu() is not None  # no limit yet
    framer.max_pdata_length = 50
    framer.feed(encode_pdata(1, False, True, b"\x00" * 100)[:6])
    with pytest.raises(RemoteProtocolError):
        framer.next_pdu()


def test_associate_rq_over_1_mib_is_refused_from_its_header() -> None:
    framer = PDUFramer()
    framer.feed(bytes.fromhex("01 00 00 10 00 01"))  # A-ASSOCIATE-RQ, PDU length 2**20 + 1
    with pytest.raises(RemoteProtocolError) as err:
        framer.next_pdu()
    assert (err.value.abort_source, err.value.abort_reason) == (2, 6)
    assert framer.buffered == 0


def test_associate_ac_over_its_cap_is_refused_from_its_header() -> None:
    framer = PDUFramer(max_associate_length=1000)
    framer.feed(bytes.fromhex("02 00 00 00 03 e9"))  # A-ASSOCIATE-AC, PDU length 1001
    with pytest.raises(RemoteProtocolError, match="1001"):
        framer.next_pdu()


def test_associate_rq_at_its_cap_waits_for_the_body() -> None:
    framer = PDUFramer(max_associate_length=len(v.ASSOCIATE_RQ_BYTES) - 6)
    framer.feed(v.ASSOCIATE_RQ_BYTES[:6])
    assert framer.next_pdu() is None
    framer.feed(v.ASSOCIATE_RQ_BYTES[6:])
    assert framer.next_pdu() == v.ASSOCIATE_RQ


@pytest.mark.parametrize("pdu_type", [3, 5, 6, 7])
@pytest.mark.parametrize("length", [0, 3, 5, 0xFFFFFFFF])
def test_fixed_size_pdu_with_another_length_is_refused_from_its_header(
    pdu_type: int, length: int
) -> None:
    framer = PDUFramer()
    framer.feed(bytes((pdu_type, 0)) + length.to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError) as err:
        framer.next_pdu()
    assert err.value.abort_reason == 6


@pytest.mark.parametrize("length", [0, 5])
def test_p_data_tf_too_short_for_a_pdv_is_refused_from_its_header(length: int) -> None:
    framer = PDUFramer()
    framer.feed(bytes((4, 0)) + length.to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError):
        framer.next_pdu()


@pytest.mark.parametrize("pdu_type", [1, 2])
def test_associate_shorter_than_its_fixed_fields_is_refused_from_its_header(
    pdu_type: int,
) -> None:
    framer = PDUFramer()
    framer.feed(bytes((pdu_type, 0, 0, 0, 0, 67)))
    with pytest.raises(RemoteProtocolError):
        framer.next_pdu()


# --------------------------------------------------------------------- after errors


def test_framer_is_dead_after_an_error() -> None:
    framer = PDUFramer()
    framer.feed(b"\x09")
    with pytest.raises(RemoteProtocolError) as first:
        framer.next_pdu()
    with pytest.raises(RemoteProtocolError) as again:
        framer.next_pdu()
    assert again.value is first.value
    with pytest.raises(RemoteProtocolError):
        framer.feed(v.RELEASE_RQ_BYTES)
    with pytest.raises(RemoteProtocolError):
        framer.peek_header()
    assert framer.buffered == 0


def test_error_in_a_body_kills_the_framer_too() -> None:
    data = bytearray(v.RELEASE_RQ_BYTES + v.P_DATA_TF_BYTES)
    data[10 + 9] = 0xFF  # PDV item length runs past the PDU
    framer = PDUFramer()
    framer.feed(data)
    assert framer.next_pdu() == v.RELEASE_RQ
    with pytest.raises(RemoteProtocolError):
        framer.next_pdu()
    with pytest.raises(RemoteProtocolError):
        framer.next_pdu()


def test_describe_foreign_bytes_is_exported_here() -> None:
    assert describe_foreign_bytes(b"\x16\x03\x01") is not None
    assert describe_foreign_bytes(v.ASSOCIATE_RQ_BYTES) is None
    assert describe_foreign_bytes(b"") is None


# ------------------------------------------------------------------------- cost


def test_one_mib_p_data_tf_in_64_kib_chunks_is_copied_once_per_chunk() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    data = encode_pdata(1, False, True, payload)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    framer = PDUFramer(max_pdata_length=len(data))
    tracemalloc.start()
    try:
        for chunk in chunks[:-1]:
            framer.feed(chunk)
            assert framer.next_pdu() is None
        framer.feed(chunks[-1])
        pdu = framer.next_pdu()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(pdu, PDataTF)
    assert pdu.pdvs[0].data == payload
    assert framer.buffered == 0
    # The buffer (1 MiB, plus bytearray over-allocation) and the PDV's own copy
    # (1 MiB): no second copy of the buffer, no copy of the buffer per chunk.
    assert peak < 2.6 * len(data), peak


def test_many_pdus_in_one_feed_cost_linear_time() -> None:
    one = encode_pdata(1, False, False, b"\x00" * 100)
    count = 50_000  # 5.6 MB in one feed: re-copying the rest per PDU would take minutes
    framer = PDUFramer()
    framer.feed(one * count)
    start = time.perf_counter()
    seen = 0
    while framer.next_pdu() is not None:
        seen += 1
    elapsed = time.perf_counter() - start
    assert seen == count
    assert elapsed < 5.0, elapsed


def test_huge_p_data_tf_in_small_chunks_costs_linear_time() -> None:
    payload = b"\x00" * (16 << 20)  # 16 MiB in 4 KiB chunks: 4096 feeds
    data = encode_pdata(1, False, True, payload)
    framer = PDUFramer()
    start = time.perf_counter()
    view = memoryview(data)
    for i in range(0, len(data), 4096):
        framer.feed(view[i : i + 4096])
        pdu = framer.next_pdu()
    elapsed = time.perf_counter() - start
    assert pdu == PDataTF((PresentationDataValue(1, False, True, payload),))
    assert elapsed < 5.0, elapsed
