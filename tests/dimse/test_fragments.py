"""Fragmentation into one-PDV P-DATA-TF PDUs (PS3.7 8, PS3.8 9.3.5 and Annex E)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomnet.dimse.fragments import (
    UNLIMITED_CHUNK,
    command_pdus,
    dataset_pdus,
    max_pdv_data_length,
    stream_dataset_pdus,
)
from dicomnet.errors import ConfigurationError
from tests.dimse.pdv import PDV, parse_pdu


def h(text: str) -> bytes:
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


def test_small_pdus_byte_exact() -> None:
    """max 20: the PDU length field may be 20, leaving 20 - 4 - 2 = 14 data bytes per PDV."""
    pdus = list(dataset_pdus(3, b"ABCDEFGHIJKLMNOP", 20))
    assert pdus == [
        h("""
            04 00  00 00 00 14      # P-DATA-TF, reserved, PDU length 20 = the maximum
            00 00 00 10             # PDV item length 16 = context ID + control + 14 data
            03 00                   # context 3; control 00 = data, not last
        """)
        + b"ABCDEFGHIJKLMN",
        h("""
            04 00  00 00 00 08      # PDU length 8 = 4 (item length field) + 2 + 2 data
            00 00 00 04             # PDV item length 4 = 2 + 2 data
            03 02                   # context 3; control 02 = data, last fragment
        """)
        + b"OP",
    ]


def test_pdv_item_length_counts_context_and_control() -> None:
    (pdu,) = list(dataset_pdus(1, b"xyz", 100))
    assert pdu == h("04 00 00000009  00000005 01 02") + b"xyz"


def test_command_control_bits() -> None:
    pdus = command_pdus(5, bytes(range(30)), 20)
    assert [p[11] for p in pdus] == [0x01, 0x01, 0x03]  # command; command+last on the final one
    assert [p[10] for p in pdus] == [5, 5, 5]
    assert b"".join(p[12:] for p in pdus) == bytes(range(30))


def test_command_fits_in_one_pdu() -> None:
    assert command_pdus(1, b"\x01\x02", 16384) == [h("04 00 00000008 00000004 01 03 01 02")]


def _check(pdus: list[bytes], max_pdu_length: int, context_id: int, command: bool) -> bytes:
    """Check framing of every PDU; return the reassembled data."""
    capacity = max_pdu_length - 6 if max_pdu_length else UNLIMITED_CHUNK
    parsed: list[tuple[int, PDV]] = [parse_pdu(p) for p in pdus]
    for i, (length, pdv) in enumerate(parsed):
        final = i == len(parsed) - 1
        assert pdv.context_id == context_id
        assert pdv.is_command is command
        assert pdv.is_last is final
        if max_pdu_length:
            assert length <= max_pdu_length
        if not final:
            assert len(pdv.data) == capacity, "all but the last PDV are full"
            if max_pdu_length:
                assert length == max_pdu_length
    return b"".join(pdv.data for _, pdv in parsed)


@pytest.mark.parametrize("max_pdu_length", [16384, 20])
@pytest.mark.parametrize("which", ["0", "1", "cap-1", "cap", "cap+1", "3cap+7", "max", "max+1"])
def test_dataset_boundaries(max_pdu_length: int, which: str) -> None:
    cap = max_pdu_length - 6
    size = {
        "0": 0,
        "1": 1,
        "cap-1": cap - 1,
        "cap": cap,
        "cap+1": cap + 1,
        "3cap+7": 3 * cap + 7,
        "max": max_pdu_length,
        "max+1": max_pdu_length + 1,
    }[which]
    data = bytes(i % 251 for i in range(size))
    pdus = list(dataset_pdus(1, data, max_pdu_length))
    assert len(pdus) == max(1, -(-size // cap))
    assert _check(pdus, max_pdu_length, 1, command=False) == data
    for pdu in pdus:
        assert len(pdu) <= max_pdu_length + 6


@pytest.mark.parametrize("size", [0, 1, 13, 14, 15, 49])
def test_command_boundaries_small(size: int) -> None:
    data = bytes(range(size))
    pdus = command_pdus(7, data, 20)
    assert len(pdus) == max(1, -(-size // 14))
    assert _check(pdus, 20, 7, command=True) == data


def test_dataset_not_last_leaves_last_bit_clear() -> None:
    pdus = list(dataset_pdus(1, b"a" * 30, 20, last=False))
    assert [p[11] for p in pdus] == [0, 0, 0]
    assert list(dataset_pdus(1, b"", 20, last=False)) == []


def test_dataset_accepts_memoryview_of_any_format() -> None:
    import array

    words = array.array("H", [1, 2, 3])
    (pdu,) = list(dataset_pdus(1, memoryview(words), 100))
    assert pdu[12:] == words.tobytes()


def test_unlimited_max_length_uses_a_fixed_chunk() -> None:
    assert max_pdv_data_length(0) == UNLIMITED_CHUNK
    data = bytes(UNLIMITED_CHUNK + 1)
    pdus = list(dataset_pdus(1, data, 0))
    assert len(pdus) == 2
    assert parse_pdu(pdus[0])[0] == UNLIMITED_CHUNK + 6
    assert _check(pdus, 0, 1, command=False) == data


@pytest.mark.parametrize("bad", [1, 6, -1, 0x1_0000_0000])
def test_unusable_max_length(bad: int) -> None:
    with pytest.raises(ConfigurationError):
        max_pdv_data_length(bad)
    with pytest.raises(ConfigurationError):
        command_pdus(1, b"x", bad)


def test_smallest_usable_max_length() -> None:
    pdus = list(dataset_pdus(1, b"abc", 7))
    assert [parse_pdu(p)[1].data for p in pdus] == [b"a", b"b", b"c"]


@pytest.mark.parametrize("context_id", [0, 2, 256, -1])
def test_invalid_context_id(context_id: int) -> None:
    with pytest.raises(ConfigurationError):
        command_pdus(context_id, b"x", 100)
    with pytest.raises(ConfigurationError):
        list(dataset_pdus(context_id, b"x", 100))
    with pytest.raises(ConfigurationError):
        list(stream_dataset_pdus(context_id, [b"x"], 100))


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([], [b""]),  # nothing at all: one empty last PDV ends the data set
        ([b"", b""], [b""]),
        ([b"a" * 14], [b"a" * 14]),  # exactly one PDV: no trailing empty PDV
        ([b"a" * 7, b"b" * 7], [b"a" * 7 + b"b" * 7]),
        ([b"a" * 7, b"b" * 7, b""], [b"a" * 7 + b"b" * 7]),
        ([b"a" * 14, b"b"], [b"a" * 14, b"b"]),
        ([b"a" * 10, b"b" * 10, b"c" * 10], [b"a" * 10 + b"bbbb", b"b" * 6 + b"c" * 8, b"cc"]),
        ([b"x" * 40], [b"x" * 14, b"x" * 14, b"x" * 12]),
    ],
)
def test_stream_rechunks(chunks: list[bytes], expected: list[bytes]) -> None:
    pdus = list(stream_dataset_pdus(1, iter(chunks), 20))
    assert [parse_pdu(p)[1].data for p in pdus] == expected
    _check(pdus, 20, 1, command=False)


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=300),
    cuts=st.lists(st.integers(0, 300), max_size=10),
    max_pdu_length=st.integers(7, 64),
)
def test_stream_matches_whole_buffer_fragmentation(
    data: bytes, cuts: list[int], max_pdu_length: int
) -> None:
    """However the input is chunked, the PDUs equal those of the whole buffer, byte for byte."""
    bounds = sorted({0, len(data), *(cut for cut in cuts if cut <= len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    streamed = list(stream_dataset_pdus(1, chunks, max_pdu_length))
    assert streamed == list(dataset_pdus(1, data, max_pdu_length))


def test_stream_is_lazy() -> None:
    """PDUs come out while the input is still being produced (constant memory)."""
    produced: list[int] = []

    def source() -> Iterator[bytes]:
        for i in range(100):
            produced.append(i)
            yield b"z" * 100

    stream = stream_dataset_pdus(1, source(), 106)
    first = next(stream)
    assert parse_pdu(first)[1].data == b"z" * 100
    assert len(produced) <= 2


def test_a_command_in_one_pdu_is_packed_as_encode_pdata_packs_it() -> None:
    """command_pdus packs a command set that fits one PDV itself (its call count:
    test_messages_calls): encode_pdata's bytes, for any context and limit."""
    from dicomnet.ul.pdata import encode_pdata

    for context_id, command, limit in ((1, bytes(range(40)), 16384), (255, b"", 0),
                                       (7, b"\xff" * 130, 136), (3, b"ab", 0xFFFFFFFF)):
        assert command_pdus(context_id, command, limit) == [
            encode_pdata(context_id, True, True, command)]
    assert command_pdus(5, bytearray(b"xy"), 16384) == [  # type: ignore[arg-type]
        encode_pdata(5, True, True, b"xy")]
