"""PDUFramer.receive(stream_pdata=True): P-DATA-TF PDVs delivered as they arrive.

Whatever the cuts in the byte stream, the pieces must carry the same bytes, in
the same order, on the same contexts, with the same command flags, and a "last"
mark exactly where the sender put one; other PDUs come whole between them; and
every length is judged at its header, as the whole-PDU framer judges it.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomnet.errors import RemoteProtocolError
from dicomnet.ul.framing import NOT_TAKEN, PDU_ENDED, PDV_ENDED, TAKEN, PDUFramer
from dicomnet.ul.pdu import PDU, PDataTF, PresentationDataValue, ReleaseRQ

pdvs = st.builds(
    PresentationDataValue,
    context_id=st.sampled_from([1, 3, 255]),
    is_command=st.booleans(),
    is_last=st.booleans(),
    data=st.binary(max_size=300),
)
pdus = st.lists(
    st.one_of(st.builds(PDataTF, pdvs=st.lists(pdvs, min_size=1, max_size=4).map(tuple)),
              st.just(ReleaseRQ())),
    min_size=1, max_size=6,
)


def cuts(data: bytes, sizes: list[int]) -> list[bytes]:
    chunks, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        chunks.append(data[pos:pos + size])
        pos += size
    if pos < len(data):
        chunks.append(data[pos:])
    return chunks


@settings(max_examples=300, deadline=None)
@given(pdus, st.lists(st.integers(min_value=1, max_value=700), max_size=40), st.booleans())
def test_streamed_bytes_and_marks_match_whole_pdus(sent: list[PDU], sizes: list[int],
                                                   borrow: bool) -> None:
    """Also when the data is lent (``borrow``), as a server receives it."""
    wire = b"".join(p.encode() for p in sent)
    whole = PDUFramer()
    reference = list(whole.receive(wire))
    streamed_framer = PDUFramer()
    streamed_framer.borrow = borrow
    streamed = [pdu for chunk in cuts(wire, sizes)
                for pdu in streamed_framer.receive(chunk, stream_pdata=True)]
    assert stream_of(streamed) == stream_of(reference)
    assert streamed_framer.completed == whole.completed == len(sent)


def stream_of(received: list[PDU]) -> list[object]:
    """The byte stream as a receiver sees it: other PDUs in place, and for PDV
    data the bytes per (context, command) with a marker after each "last"."""
    out: list[object] = []
    for pdu in received:
        if not isinstance(pdu, PDataTF):
            out.append(pdu)
            continue
        for pdv in pdu.pdvs:
            key = (pdv.context_id, pdv.is_command)
            if out and isinstance(out[-1], list) and out[-1][0] == key:
                out[-1][1] += pdv.data
            elif pdv.data or pdv.is_last:
                out.append([key, bytearray(pdv.data)])
            if pdv.is_last:
                out.append(("LAST", key))
    return [(x[0], bytes(x[1])) if isinstance(x, list) else x for x in out]


def pdata(*items: bytes) -> bytes:
    body = b"".join(items)
    return struct.pack(">BBL", 4, 0, len(body)) + body


def pdv(context_id: int, control: int, data: bytes, length: int | None = None) -> bytes:
    return struct.pack(">LBB", len(data) + 2 if length is None else length,
                       context_id, control) + data


def test_a_large_pdv_comes_in_pieces_as_it_arrives() -> None:
    data = bytes(range(256)) * 40
    wire = pdata(pdv(1, 0b10, data))
    framer = PDUFramer()
    pieces = [p for i in range(0, len(wire), 1000) for p in framer.receive(
        wire[i:i + 1000], stream_pdata=True)]
    assert len(pieces) > 5
    assert all(isinstance(p, PDataTF) and len(p.pdvs) == 1 for p in pieces)
    values = [p.pdvs[0] for p in pieces if isinstance(p, PDataTF)]
    assert b"".join(v.data for v in values) == data
    assert [v.is_last for v in values] == [False] * (len(values) - 1) + [True]
    assert {(v.context_id, v.is_command) for v in values} == {(1, False)}
    assert framer.completed == 1 and not framer.in_pdu


def test_in_pdu_reports_a_pdu_under_way() -> None:
    framer = PDUFramer()
    wire = pdata(pdv(1, 0b10, b"x" * 100))
    assert list(framer.receive(wire[:3], stream_pdata=True)) == []
    assert framer.in_pdu
    got = list(framer.receive(wire[3:50], stream_pdata=True))
    assert framer.in_pdu and framer.completed == 0 and got
    list(framer.receive(wire[50:], stream_pdata=True))
    assert not framer.in_pdu and framer.completed == 1


@pytest.mark.parametrize(("wire", "message"), [
    (pdata(pdv(1, 0, b"abc", length=1)), "must be at least 2"),
    (pdata(pdv(1, 0, b"abcd", length=60)), "runs past the end of the PDU"),
    (pdata(pdv(1, 0, b"abcd"), b"\x00\x00\x00"), "too short for a PDV item"),
])
def test_bad_pdv_headers_are_refused(wire: bytes, message: str) -> None:
    framer = PDUFramer()
    with pytest.raises(RemoteProtocolError, match=message):
        for i in range(len(wire)):
            list(framer.receive(wire[i:i + 1], stream_pdata=True))
    with pytest.raises(RemoteProtocolError, match=message):
        list(framer.receive(b"", stream_pdata=True))  # dead from then on


def test_the_maximum_length_is_judged_at_the_pdu_header() -> None:
    framer = PDUFramer(max_pdata_length=100)
    header = struct.pack(">BBL", 4, 0, 101)
    with pytest.raises(RemoteProtocolError, match="exceeds the maximum length"):
        list(framer.receive(header, stream_pdata=True))


def test_other_pdus_come_whole_between_streamed_ones() -> None:
    wire = pdata(pdv(1, 0b11, b"cmd")) + ReleaseRQ().encode() + pdata(pdv(3, 0b10, b"ds"))
    framer = PDUFramer()
    got = [p for b in wire for p in framer.receive(bytes([b]), stream_pdata=True)]
    assert any(isinstance(p, ReleaseRQ) for p in got)
    assert framer.completed == 3


# -- lending P-DATA (borrow) and the read hints ----------------------------------------


def test_borrowed_pieces_are_views_of_the_memory_received() -> None:
    wire = bytearray(PDataTF((PresentationDataValue(1, False, True, bytes(range(200))),)).encode())
    framer = PDUFramer()
    framer.borrow = True
    head, body = wire[:50], wire[50:]
    pieces = [pdv for chunk in (head, body)
              for pdu in framer.receive(chunk, stream_pdata=True)
              if isinstance(pdu, PDataTF) for pdv in pdu.pdvs]
    assert [type(p.data) for p in pieces] == [memoryview, memoryview]
    assert [p.data.obj for p in pieces if isinstance(p.data, memoryview)] == [head, body]
    assert pieces[0].data.obj is head and pieces[1].data.obj is body  # type: ignore[union-attr]
    assert b"".join(bytes(p.data) for p in pieces) == bytes(range(200))
    assert [p.is_last for p in pieces] == [False, True]
    # Without borrow, copies: the caller may reuse its memory at once.
    plain = PDUFramer()
    copied = [pdv for pdu in plain.receive(bytes(wire), stream_pdata=True)
              if isinstance(pdu, PDataTF) for pdv in pdu.pdvs]
    assert [type(p.data) for p in copied] == [bytes]


def test_the_hints_say_what_comes_next_at_every_byte() -> None:
    """pdv_data_due and header_bytes_due, fed one byte at a time: two P-DATA-TFs
    (one PDV of 100 bytes; PDVs of 50 and 30), then an A-RELEASE-RQ."""
    first = PDataTF((PresentationDataValue(1, False, False, bytes(100)),)).encode()
    second = PDataTF((PresentationDataValue(1, False, False, bytes(50)),
                      PresentationDataValue(1, False, True, bytes(30)))).encode()
    wire = first + second + ReleaseRQ().encode()
    expected: list[tuple[int, int]] = []  # (data due, header bytes due) before each byte
    expected += [(0, 12 - i) for i in range(12)]            # PDU + PDV headers
    expected += [(100 - i, 0) for i in range(100)]
    expected += [(0, 12 - i) for i in range(12)]
    expected += [(50 - i, 0) for i in range(50)]
    expected += [(0, 6 - i) for i in range(6)]               # next PDV header only
    expected += [(30 - i, 0) for i in range(30)]
    expected += [(0, 12 - i) for i in range(6)]              # a PDU header...
    expected += [(0, 0)] * 4                                 # ...of a PDU held whole
    framer = PDUFramer()
    seen = []
    for byte in wire:
        seen.append((framer.pdv_data_due, framer.header_bytes_due))
        list(framer.receive(bytes([byte]), stream_pdata=True))
    assert seen == expected
    assert (framer.pdv_data_due, framer.header_bytes_due) == (0, 12)


# -- take_pdv_data: the middle of a PDV consumed by the caller ----------------------


@settings(max_examples=300, deadline=None)
@given(pdus, st.lists(st.integers(min_value=1, max_value=700), max_size=40),
       st.lists(st.booleans(), max_size=40))
def test_taking_pdv_middles_leaves_the_rest_of_the_stream_as_it_was(
        sent: list[PDU], sizes: list[int], takes: list[bool]) -> None:
    """Chunks the caller takes (only ever strictly inside a PDV's data) vanish from
    what receive() yields; everything else, "last" marks and the PDUs after them
    included, comes exactly as without taking."""
    wire = b"".join(p.encode() for p in sent)
    framer = PDUFramer()
    received: list[PDU] = []
    taken: list[bytes] = []
    for index, chunk in enumerate(cuts(wire, sizes)):
        want = takes[index] if index < len(takes) else False
        if want and framer.take_pdv_data(len(chunk)):
            taken.append(chunk)
            continue
        received += framer.receive(chunk, stream_pdata=True)
    reference = list(PDUFramer().receive(wire))
    # Put the taken bytes back where they were: the stream is the reference's.
    assert framer.completed == len(sent)
    got = b"".join(pdv.data for p in received if isinstance(p, PDataTF) for pdv in p.pdvs)
    expected = b"".join(pdv.data for p in reference if isinstance(p, PDataTF)
                        for pdv in p.pdvs)
    assert len(got) + sum(map(len, taken)) == len(expected)
    marks = [(pdv.context_id, pdv.is_command, pdv.is_last) for p in received
             if isinstance(p, PDataTF) for pdv in p.pdvs if pdv.is_last]
    assert marks == [(pdv.context_id, pdv.is_command, True) for p in reference
                     if isinstance(p, PDataTF) for pdv in p.pdvs if pdv.is_last]
    assert [p for p in received if not isinstance(p, PDataTF)] == [
        p for p in reference if not isinstance(p, PDataTF)]


def test_take_pdv_data_only_inside_and_short_of_the_end() -> None:
    data = bytes(range(200))
    wire = pdata(pdv(3, 0b00, data), pdv(3, 0b10, b"tail"))
    framer = PDUFramer()
    assert not framer.take_pdv_data(10)  # nothing received yet
    assert framer.current_pdv is None
    first = list(framer.receive(wire[:6 + 6 + 50], stream_pdata=True))
    assert [p.pdvs[0].data for p in first if isinstance(p, PDataTF)] == [data[:50]]
    assert framer.current_pdv == (3, False, False)
    assert framer.pdv_data_due == 150
    assert not framer.take_pdv_data(150)  # would end the PDV: receive() marks it
    assert not framer.take_pdv_data(0)
    assert framer.take_pdv_data(100)
    assert framer.pdv_data_due == 50
    rest = list(framer.receive(wire[6 + 6 + 150:], stream_pdata=True))
    values = [p.pdvs[0] for p in rest if isinstance(p, PDataTF)]
    assert [(v.data, v.is_last) for v in values] == [(data[150:], False), (b"tail", True)]
    assert framer.completed == 1 and framer.current_pdv is None


def test_a_command_pdv_says_so() -> None:
    framer = PDUFramer()
    list(framer.receive(pdata(pdv(5, 0b01, b"x" * 40))[:20], stream_pdata=True))
    assert framer.current_pdv == (5, True, False)


# -- end_pdv_data: the end of a PDV consumed by the caller --------------------------


@settings(max_examples=300, deadline=None)
@given(pdus, st.lists(st.integers(min_value=1, max_value=700), max_size=40),
       st.lists(st.booleans(), max_size=40))
def test_taking_pdv_ends_keeps_the_pdus_that_follow(
        sent: list[PDU], sizes: list[int], takes: list[bool]) -> None:
    """Chunks the caller takes whole, middle or end of a PDV's data (the end only
    as exactly the bytes still due), vanish from what receive() yields, and every
    PDU is still counted; what follows (PDV headers of the same PDU, other PDUs)
    comes exactly as without taking."""
    wire = b"".join(p.encode() for p in sent)
    framer = PDUFramer()
    received: list[PDU] = []
    taken = ended = 0
    for index, chunk in enumerate(cuts(wire, sizes)):
        want = takes[index] if index < len(takes) else False
        if want and framer.take_pdv_data(len(chunk)):
            taken += len(chunk)
            continue
        if want and framer.end_pdv_data(len(chunk)):
            taken += len(chunk)
            ended += 1
            continue
        received += framer.receive(chunk, stream_pdata=True)
    reference = list(PDUFramer().receive(wire))
    assert framer.completed == len(sent)
    assert (framer.pdv_data_due, framer.in_pdu) == (0, False)
    got = sum(len(pdv.data) for p in received if isinstance(p, PDataTF) for pdv in p.pdvs)
    expected = sum(len(pdv.data) for p in reference if isinstance(p, PDataTF)
                   for pdv in p.pdvs)
    assert got + taken == expected
    marks = [pdv.is_last for p in received if isinstance(p, PDataTF) for pdv in p.pdvs
             if pdv.is_last]
    assert len(marks) + ended >= sum(1 for p in reference if isinstance(p, PDataTF)
                                     for pdv in p.pdvs if pdv.is_last)
    assert [p for p in received if not isinstance(p, PDataTF)] == [
        p for p in reference if not isinstance(p, PDataTF)]


def test_end_pdv_data_only_for_exactly_the_bytes_due() -> None:
    data = bytes(range(200))
    wire = pdata(pdv(3, 0b10, data), pdv(4, 0b11, b"next")) + pdata(pdv(5, 0b10, b"z"))
    framer = PDUFramer()
    assert not framer.end_pdv_data(10)  # nothing received yet
    list(framer.receive(wire[:6 + 6 + 50], stream_pdata=True))
    assert framer.current_pdv == (3, False, True)
    assert not framer.end_pdv_data(149) and not framer.end_pdv_data(151)
    assert framer.pdv_data_due == 150
    assert framer.end_pdv_data(150)
    assert framer.current_pdv is None and framer.completed == 0  # its PDU goes on
    rest = list(framer.receive(wire[6 + 6 + 200:], stream_pdata=True))
    assert [(p.pdvs[0].context_id, p.pdvs[0].data) for p in rest if isinstance(p, PDataTF)
            ] == [(4, b"next"), (5, b"z")]
    assert framer.completed == 2
    # Ending the last PDV of a PDU completes that PDU.
    framer = PDUFramer()
    list(framer.receive(pdata(pdv(5, 0b10, b"abc"))[:13], stream_pdata=True))
    assert framer.end_pdv_data(2) and framer.completed == 1 and not framer.in_pdu


# -- consume_pdv_data: take_pdv_data and end_pdv_data in one call ------------------


def test_consume_pdv_data_says_what_the_bytes_did() -> None:
    data = bytes(range(200))
    wire = pdata(pdv(3, 0b10, data), pdv(4, 0b11, b"next")) + pdata(pdv(5, 0b10, b"z" * 70))
    framer = PDUFramer()
    assert framer.consume_pdv_data(10) == NOT_TAKEN  # nothing received yet
    list(framer.receive(wire[:6 + 6 + 50], stream_pdata=True))
    assert framer.consume_pdv_data(151) == NOT_TAKEN  # past the PDV's end
    assert framer.consume_pdv_data(0) == NOT_TAKEN
    assert framer.consume_pdv_data(100) == TAKEN and framer.pdv_data_due == 50
    assert framer.consume_pdv_data(50) == PDV_ENDED  # its PDU goes on
    assert framer.current_pdv is None and framer.completed == 0 and framer.in_pdu
    rest = list(framer.receive(wire[6 + 6 + 200:6 + 6 + 200 + 10 + 6 + 6 + 20],
                               stream_pdata=True))
    assert [(p.pdvs[0].context_id, bytes(p.pdvs[0].data)) for p in rest
            if isinstance(p, PDataTF)] == [(4, b"next"), (5, b"z" * 20)]
    assert framer.completed == 1
    # Ending the last PDV of a PDU completes that PDU, and nothing is held.
    assert framer.consume_pdv_data(50) == PDU_ENDED
    assert framer.completed == 2 and not framer.in_pdu
