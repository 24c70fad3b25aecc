"""Test helper: an independent parser of the one-PDV P-DATA-TF PDUs we send (PS3.8 9.3.5).

Written from the standard rather than shared with the code under test, so a
layout mistake in ``dimse.fragments`` cannot hide behind the same mistake here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PDV:
    """Stands in for ``ul.pdu.PresentationDataValue`` (same four fields)."""

    context_id: int
    is_command: bool
    is_last: bool
    data: bytes


def parse_pdu(pdu: bytes) -> tuple[int, PDV]:
    """Return (PDU length field, the single PDV) of a P-DATA-TF PDU, checking its framing."""
    assert pdu[0] == 0x04, "PDU type must be 04H (P-DATA-TF)"
    assert pdu[1] == 0x00, "reserved byte"
    (pdu_length,) = struct.unpack(">I", pdu[2:6])
    assert pdu_length == len(pdu) - 6, "PDU length counts everything after the 6-byte header"
    (item_length,) = struct.unpack(">I", pdu[6:10])
    assert item_length == pdu_length - 4, "exactly one PDV item fills the PDU"
    control = pdu[11]
    assert control & 0xFC == 0, "bits 2-7 of the message control header are reserved"
    return pdu_length, PDV(pdu[10], bool(control & 0x01), bool(control & 0x02), pdu[12:])
