"""DIMSE's guard against a flood of small PDVs counts PDVs, not the stretches the
Upper Layer streams them in (``PDUFramer.receive(stream_pdata=True)``): a PDV
whose data arrives in many small reads (small TLS records, a slow link) is one
PDV. Before, each stretch counted as a PDV, and a server aborted a sender of
large PDVs whose bytes came a few hundred at a time ("a flood of PDVs"), found
by the ``server_receive`` fuzz target (tests/fuzz_harness/server.py)."""

from __future__ import annotations

import pytest

from dicomnet.dimse.connection import (
    FREE_FRAGMENTS,
    DatasetFragment,
    DimseConnection,
    DimseEvent,
    MessageReceived,
)
from dicomnet.dimse.messages import CStoreRQ, encode_message
from dicomnet.errors import RemoteProtocolError
from dicomnet.ul.framing import PDUFramer
from dicomnet.ul.pdata import ContinuedPDV, PresentationDataValue
from dicomnet.ul.pdu import PDataTF, encode_pdata

STORE = CStoreRQ(message_id=3, affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                 affected_sop_instance_uid="1.2.3.4.5.6")


def streamed(stream: bytes, piece: int) -> list[PresentationDataValue]:
    """The PDVs (stretches) a framer streams from ``stream`` given ``piece`` bytes
    at a time."""
    framer = PDUFramer()
    out: list[PresentationDataValue] = []
    for start in range(0, len(stream), piece):
        for pdu in framer.receive(stream[start:start + piece], stream_pdata=True):
            assert isinstance(pdu, PDataTF)
            out.extend(pdu.pdvs)
    return out


def received(pdvs: list[PresentationDataValue]) -> tuple[list[DimseEvent], bytes]:
    conn = DimseConnection()
    events: list[DimseEvent] = []
    for pdv in pdvs:
        events += conn.receive_pdv(pdv, continues=pdv.continues)
    data = b"".join(bytes(e.data) for e in events if isinstance(e, DatasetFragment))
    return events, data


def test_a_stretch_after_the_first_of_its_pdv_says_it_continues_it() -> None:
    stream = encode_pdata(1, False, False, bytes(1000)) + encode_pdata(1, False, True, bytes(10))
    pdvs = streamed(stream, 300)
    assert [(len(p.data), p.continues, p.is_last) for p in pdvs] == [
        (288, False, False), (300, True, False), (300, True, False), (112, True, False),
        (10, False, True)]
    assert all(type(p) is (ContinuedPDV if p.continues else PresentationDataValue)
               for p in pdvs)
    assert not PresentationDataValue(1, False, False, b"").continues


@pytest.mark.parametrize("piece", [100, 255])
def test_a_long_pdv_read_a_few_hundred_bytes_at_a_time_is_one_pdv(piece: int) -> None:
    """A C-STORE whose 400 KB data set is one PDV, streamed in reads of 100 or 255
    bytes: some 4,000 stretches, taken whole."""
    data = bytes(range(256)) * 1600
    stream = (encode_pdata(1, True, True, encode_message(STORE))
              + encode_pdata(1, False, False, data[:300_000])
              + encode_pdata(1, False, True, data[300_000:]))
    pdvs = streamed(stream, piece)
    assert len(pdvs) > FREE_FRAGMENTS
    events, got = received(pdvs)
    assert events[0] == MessageReceived(1, STORE)
    assert got == data


def test_a_flood_of_small_pdvs_is_refused_however_it_is_read() -> None:
    """1,100 PDVs of 10 bytes each, read whole or 3 bytes at a time: refused at the
    1,025th PDV either way (its 3,600-odd stretches do not count on their own)."""
    stream = (encode_pdata(1, True, True, encode_message(STORE))
              + b"".join(encode_pdata(1, False, False, bytes(10)) for _ in range(1100)))
    for piece in (len(stream), 3):
        with pytest.raises(RemoteProtocolError,
                           match=r"data set cut into 1025 PDVs of (9|10) bytes"):
            received(streamed(stream, piece))
