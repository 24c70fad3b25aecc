"""Splitting DIMSE messages into P-DATA-TF PDUs, one PDV each (PS3.7 8, PS3.8 9.3.5, Annex E).

A message is a command set followed, when Command Data Set Type says so, by a
data set; each is sent as a series of presentation data value fragments whose
Message Control Header (PS3.8 E.2) marks command/data (bit 0) and last
fragment (bit 1).

Sizes (PS3.8 9.3.5, D.1): the P-DATA-TF PDU length field counts everything
after the 6-byte PDU header, i.e. for one PDV the 4-byte PDV item length, the
presentation context ID, the message control header and the data. The peer's
Maximum Length Received bounds that field, so with one PDV per PDU each PDV
carries at most ``max_pdu_length - 6`` bytes of data and the PDU length field
is then exactly ``max_pdu_length``. A maximum of 0 means "no limit" (PS3.8
D.1.1); we then send :data:`UNLIMITED_CHUNK` bytes per PDV.

One PDV per PDU wastes nothing worth measuring and keeps the receiver's
buffering simple; data are sliced with ``memoryview`` so a large data set is
copied once, into the PDU that carries it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Final

from dicomnet.errors import ConfigurationError
from dicomnet.ul.pdata import encode_pdata
from dicomnet.ul.pdu_codes import P_DATA_TF

#: A P-DATA-TF header and its one PDV's (PS3.8 9.3.5, E.2): PDU type, reserved,
#: PDU length; item length, context ID, Message Control Header.
_COMMAND_PDU = struct.Struct(">BBLLBB")
#: Message Control Header of a command's last fragment: bits 0 and 1 set (PS3.8 E.2).
_COMMAND_LAST = 0x03

__all__ = [
    "UNLIMITED_CHUNK",
    "command_pdus",
    "dataset_pdus",
    "max_pdv_data_length",
    "stream_dataset_pdus",
]

#: PDV data bytes per PDU when the peer set no maximum length (PS3.8 D.1.1).
UNLIMITED_CHUNK: Final = 1 << 20

# The PDU length field counts the PDV item length field, context ID and control header too.
_PDV_OVERHEAD: Final = 6


def max_pdv_data_length(max_pdu_length: int) -> int:
    """Data bytes one PDV may carry under the peer's Maximum Length Received (PS3.8 D.1).

    Raises :class:`~dicomnet.errors.ConfigurationError` when the maximum leaves
    no room for data (a legal peer never announces less than a few KiB).
    """
    if max_pdu_length == 0:
        return UNLIMITED_CHUNK
    if not _PDV_OVERHEAD < max_pdu_length <= 0xFFFFFFFF:
        raise ConfigurationError(f"maximum PDU length {max_pdu_length} leaves no room for data")
    return max_pdu_length - _PDV_OVERHEAD


def _check_context(context_id: int) -> None:
    # Presentation context IDs are odd integers 1-255 (PS3.8 9.3.2.2).
    if not (1 <= context_id <= 255 and context_id & 1):
        raise ConfigurationError(f"invalid presentation context ID {context_id}")


def command_pdus(context_id: int, command: bytes, max_pdu_length: int) -> list[bytes]:
    """P-DATA-TF PDUs carrying the command set ``command`` (PS3.7 8.1, PS3.8 E.2).

    The last PDV has the last-fragment bit set; an empty command (never a
    valid one) still yields one last PDV so the receiver is never left waiting.
    """
    # Once per message sent (a response per object received): the checks of
    # _check_context and max_pdv_data_length written out for the usual case.
    if not (1 <= context_id <= 255 and context_id & 1):
        _check_context(context_id)
    size = (max_pdu_length - _PDV_OVERHEAD if _PDV_OVERHEAD < max_pdu_length <= 0xFFFFFFFF
            else max_pdv_data_length(max_pdu_length))
    if len(command) <= size:
        if command.__class__ is bytes:  # encode_pdata's pack, here: one call fewer
            length = len(command)
            return [_COMMAND_PDU.pack(P_DATA_TF, 0, length + 6, length + 2, context_id,
                                      _COMMAND_LAST) + command]
        return [encode_pdata(context_id, True, True, command)]
    view = memoryview(command)
    total = len(view)
    return [
        encode_pdata(context_id, True, start + size >= total, view[start : start + size])
        for start in range(0, total, size)
    ]


def dataset_pdus(
    context_id: int, data: bytes | memoryview, max_pdu_length: int, *, last: bool = True
) -> Iterator[bytes]:
    """Yield P-DATA-TF PDUs carrying ``data`` as data set fragments (PS3.7 8.2).

    With ``last=False`` no PDV is marked last, so the caller can continue the
    same data set with more calls; empty data then yields nothing. With
    ``last=True`` empty data yields one empty last PDV, which ends the data set.
    """
    _check_context(context_id)
    size = max_pdv_data_length(max_pdu_length)
    view = memoryview(data).cast("B")
    total = len(view)
    if total == 0:
        if last:
            yield encode_pdata(context_id, False, True, b"")
        return
    for start in range(0, total, size):
        end = start + size
        yield encode_pdata(context_id, False, last and end >= total, view[start:end])


def stream_dataset_pdus(
    context_id: int, chunks: Iterable[bytes | bytearray | memoryview], max_pdu_length: int
) -> Iterator[bytes]:
    """Re-chunk a stream of byte chunks of any sizes into full-size data PDVs (PS3.7 8.2).

    Only the very last PDV is marked last: a full PDV is held back until at
    least one more byte is known to follow, so a stream whose length is an
    exact multiple of the PDV size does not end with an empty PDV. A stream
    with no bytes yields one empty last PDV. Memory use is bounded by the
    largest chunk plus one PDV.
    """
    _check_context(context_id)
    size = max_pdv_data_length(max_pdu_length)
    pending = bytearray()
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        if pending:
            need = size - len(pending)
            if len(view) <= need:
                # Still not more than one PDV's worth: keep it, it may be the last.
                pending += view
                continue
            pending += view[:need]
            view = view[need:]
            yield encode_pdata(context_id, False, False, memoryview(pending))
            pending = bytearray()
        # Strictly more than a PDV left means this one is certainly not the last.
        while len(view) > size:
            yield encode_pdata(context_id, False, False, view[:size])
            view = view[size:]
        pending += view
    yield encode_pdata(context_id, False, True, memoryview(pending))
