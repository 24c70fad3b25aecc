"""A PDV's message control header with its reserved bits set is taken as if they
were 0 (PS3.8 Annex E.2: "Bits 2 through 7 are always set to 0 by the sender and
never checked by the receiver"). Bytes in, message out, by every path a PDV
takes: the whole-PDU decoder, the framer holding a PDU whole, the framer
streaming it (its fast path and, fed a byte at a time, its general one, copied
or lent), and an established association up to the DIMSE message.
"""

from __future__ import annotations

import pytest

from dicomnet.dimse.connection import DimseConnection, MessageReceived
from dicomnet.dimse.messages import CEchoRQ, encode_message
from dicomnet.testing import associated_pair
from dicomnet.ul.events import DataReceived
from dicomnet.ul.framing import PDUFramer
from dicomnet.ul.pdu import PDataTF, decode_pdu

ECHO = CEchoRQ(message_id=7, affected_sop_class_uid="1.2.840.10008.1.1")
COMMAND = encode_message(ECHO)
#: Every control byte whose defined bits say "command, last" (0b11), and whose
#: reserved bits 2-7 are anything: the receiver must see a whole command set.
COMMAND_LAST = [0x03 | reserved << 2 for reserved in range(64)]


def pdata(control: int, data: bytes = COMMAND, context_id: int = 1) -> bytes:
    """A P-DATA-TF of one PDV, by hand (the encoder writes the reserved bits as 0)."""
    item = (2 + len(data)).to_bytes(4, "big") + bytes([context_id, control]) + data
    return bytes([0x04, 0x00]) + len(item).to_bytes(4, "big") + item


def test_the_hand_made_pdu_is_what_the_encoder_writes_with_reserved_bits_clear() -> None:
    from dicomnet.ul.pdu import encode_pdata

    assert pdata(0x03) == encode_pdata(1, True, True, COMMAND)


@pytest.mark.parametrize("control", range(256), ids=lambda c: f"{c:#04x}")
def test_decoder_reads_only_bits_0_and_1(control: int) -> None:
    pdu = decode_pdu(pdata(control, b"xy"))
    assert isinstance(pdu, PDataTF)
    [pdv] = pdu.pdvs
    assert (pdv.context_id, pdv.is_command, pdv.is_last, pdv.data) == (
        1, bool(control & 1), bool(control & 2), b"xy")


@pytest.mark.parametrize("control", [0xFC, 0xFD, 0xFE, 0xFF, 0x04, 0x80])
@pytest.mark.parametrize("path", ["whole", "streamed", "streamed-bytewise", "borrowed"])
def test_framer_reads_only_bits_0_and_1(control: int, path: str) -> None:
    wire = pdata(control, b"payload")
    framer = PDUFramer()
    framer.borrow = path == "borrowed"
    if path == "whole":
        pdus = list(framer.receive(wire))
    elif path == "streamed-bytewise":  # each header pieced together: the general path
        pdus = [p for i in range(len(wire))
                for p in framer.receive(wire[i:i + 1], stream_pdata=True)]
    else:  # both headers in one view: the fast path
        pdus = list(framer.receive(wire, stream_pdata=True))
    assert all(isinstance(pdu, PDataTF) for pdu in pdus)
    pieces = [pdv for pdu in pdus if isinstance(pdu, PDataTF) for pdv in pdu.pdvs]
    assert b"".join(bytes(p.data) for p in pieces) == b"payload"
    assert {(p.context_id, p.is_command) for p in pieces} == {(1, bool(control & 1))}
    assert [p.is_last for p in pieces][-1] is bool(control & 2)
    assert not any(p.is_last for p in pieces[:-1])
    assert framer.completed == 1


@pytest.mark.parametrize("control", COMMAND_LAST[1:], ids=lambda c: f"{c:#04x}")
def test_an_association_delivers_the_message(control: int) -> None:
    """An acceptor in Sta6 given the bytes of a C-ECHO-RQ whose control header has
    reserved bits set: a DataReceived, then the C-ECHO-RQ, no A-ABORT."""
    pair = associated_pair()
    acceptor = pair.acceptor
    acceptor.receive_data(pdata(control), pair.now)
    events: list[DataReceived] = []
    while (event := acceptor.next_event()) is not None:
        assert isinstance(event, DataReceived), event
        events.append(event)
    dimse = DimseConnection()
    received = [m for e in events for pdv in e.pdu.pdvs for m in dimse.receive_pdv(pdv)]
    assert received == [MessageReceived(1, ECHO)]
    assert acceptor.state.name == "Sta6"
    assert acceptor.data_to_send() == b""  # nothing answered: no A-ABORT
