"""Fuzz targets of DIMSE (PS3.7): command set decoding and message assembly from
PDVs (``dimse/commands.py``, ``messages.py``, ``connection.py``).

The promise judged: a message or ``RemoteProtocolError``, never another
exception; a decoded message encodes again to itself, and an SCP can answer a
decoded request (``refusal``) with a response it can encode.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from dicomnet.dimse.commands import decode_command
from dicomnet.dimse.connection import DatasetFragment, DimseConnection, MessageReceived
from dicomnet.dimse.messages import (
    CEchoRQ,
    CFindRQ,
    CStoreRQ,
    CStoreRSP,
    DimseMessage,
    NActionRQ,
    NEventReportRSP,
    decode_message,
    encode_message,
    operation_name,
    refusal,
)
from dicomnet.errors import LocalProtocolError, RemoteProtocolError

from .reader import Reader


def command(data: bytes) -> None:
    """``decode_message``: a message or ``RemoteProtocolError``. A message decoded
    encodes to bytes that decode and encode to themselves, and a request is refused with a response
    that encodes."""
    with contextlib.suppress(RemoteProtocolError):
        decode_command(data)
    try:
        message = decode_message(data)
    except RemoteProtocolError:
        return
    operation_name(message)
    if "\ufffd" in (getattr(message, "error_comment", None) or ""):
        # A non-ASCII Error Comment is read with replacement characters, by design
        # (tests/dimse/test_commands.py), and then is no command text to send.
        return
    # Bytes, not objects: text loses its trailing spaces (PS3.5 6.2) on the way.
    try:
        raw = encode_message(message)
    except LocalProtocolError:
        # A value read as sent that we would not send (a UID past 64 characters,
        # PS3.5 9.1): never echoed; the refusal below must encode all the same.
        pass
    else:
        assert encode_message(decode_message(raw)) == raw
    if message.is_request:
        answer = refusal(message, 0xC000, "refused by the fuzz harness " * 3)
        if answer is not None:
            raw = encode_message(answer)
            assert encode_message(decode_message(raw)) == raw
    else:
        status = getattr(message, "status_info")  # noqa: B009 (responses only)
        str(status)
        assert status.description


@dataclass(frozen=True, slots=True)
class _PDV:
    context_id: int
    is_command: bool
    is_last: bool
    data: bytes


def assembly(data: bytes) -> None:
    """``DimseConnection.receive_pdv`` fed PDVs (context, flags, length, data read
    from the input): events or ``RemoteProtocolError``; each message received is
    the command bytes given, decoded; data set fragments follow only a message
    with a data set, on its context."""
    reader = Reader(data)
    conn = DimseConnection(min_fragment_mean=reader.byte())
    command_bytes = bytearray()
    due: int | None = None
    while reader.pos < len(reader.data):
        head = reader.byte()
        pdv = _PDV(head & 0x3F or 1, bool(head & 0x40), bool(head & 0x80),
                   reader.take(reader.byte() + (reader.byte() << 8)))
        try:
            events = conn.receive_pdv(pdv)
        except RemoteProtocolError as exc:
            assert exc.abort_source == 0
            return
        if pdv.is_command:
            command_bytes += pdv.data
        for event in events:
            if isinstance(event, MessageReceived):
                assert event.message == decode_message(bytes(command_bytes))
                command_bytes.clear()
                due = event.context_id if event.message.has_dataset else None
            else:
                assert isinstance(event, DatasetFragment)
                assert due == event.context_id == pdv.context_id
                if event.is_last:
                    due = None
        assert conn.expecting_dataset == (due is not None)


def seeds_commands() -> list[bytes]:
    messages: list[DimseMessage] = [
        CEchoRQ(message_id=1),
        CStoreRQ(message_id=7, affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                 affected_sop_instance_uid="1.2.3.4", move_originator_ae_title="MOVER",
                 move_originator_message_id=3),
        CStoreRSP(message_id_being_responded_to=7, status=0xA700,
                  affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                  affected_sop_instance_uid="1.2.3.4", error_comment="no room",
                  offending_element=(0x00100010,)),
        CFindRQ(message_id=2, affected_sop_class_uid="1.2.840.10008.5.1.4.1.2.2.1"),
        NActionRQ(message_id=5, requested_sop_class_uid="1.2.840.10008.1.20.1",
                  requested_sop_instance_uid="1.2.840.10008.1.20.1.1", action_type_id=1),
        NEventReportRSP(message_id_being_responded_to=4, status=0),
    ]
    return [encode_message(m) for m in messages]


def seeds_assembly() -> list[bytes]:
    out: list[bytes] = []
    for raw in seeds_commands():
        half = len(raw) // 2
        pdvs = bytes([0x41, half & 0xFF, half >> 8]) + raw[:half]
        pdvs += bytes([0xC1, (len(raw) - half) & 0xFF, (len(raw) - half) >> 8]) + raw[half:]
        pdvs += bytes([0x01, 4, 0]) + b"\x08\x00\x10\x00" + bytes([0x81, 4, 0]) + b"\x00" * 4
        out.append(b"\x00" + pdvs)
    return out
