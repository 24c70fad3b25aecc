"""P-DATA-TF (PS3.8 9.3.5) and its Presentation Data Value items (9.3.5.1, Table
9-23, Annex E.2): the dataclasses and their decoder, and the builders of a
one-PDV P-DATA-TF without dataclasses, for the bulk-data path (``encode_pdata``,
``pdata_header``) and the framer (``borrowed_pdv``, ``borrowed_pdata``).
``dicomnet.ul.pdu`` re-exports the public names.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from dicomnet.errors import ConfigurationError
from dicomnet.ul.codec import (
    _MAX_U32,
    _check_bool,
    _check_int,
    _invalid,
    _norm_bytes,
    _pdu,
    _to_tuple,
)
from dicomnet.ul.pdu_codes import P_DATA_TF

__all__ = [
    "ContinuedPDV",
    "PDataTF",
    "PresentationDataValue",
    "borrowed_pdata",
    "borrowed_pdv",
    "encode_pdata",
    "pdata_header",
]

_PDV_HEADER = struct.Struct(">LBB")  # item length, context ID, message control header
_PDATA_HEADER = struct.Struct(">BBLLBB")  # a P-DATA-TF header + its single PDV header


@dataclass(frozen=True, slots=True, repr=False)
class PresentationDataValue:
    """One Presentation Data Value item (PS3.8 9.3.5.1, Table 9-23, Annex E.2).

    The message control header holds ``is_command`` in bit 0 and ``is_last`` in
    bit 1; its other bits are written as zero and ignored on receipt (PS3.8
    E.2: "always set to 0 by the sender and never checked by the receiver").

    ``data`` is ``bytes`` (other byte buffers given are copied), except in PDVs
    received with ``ULConnection.borrow_pdata``: a view of the receive buffer,
    valid only while the event is handled (:func:`borrowed_pdv`).

    ``continues`` is False here and True in :class:`ContinuedPDV`: the later
    stretches of one PDV that a framer streams (``PDUFramer.receive`` with
    ``stream_pdata``), which are more data of the PDV, not PDVs of their own.
    """

    #: Whether this is a later stretch of a PDV streamed in pieces (ContinuedPDV).
    continues: ClassVar[bool] = False

    context_id: int
    is_command: bool
    is_last: bool
    data: bytes | memoryview

    def __post_init__(self) -> None:
        # One combined test: this runs for every PDV received.
        context_id = self.context_id
        if not (
            type(context_id) is int
            and 0 <= context_id <= 0xFF
            and type(self.is_command) is bool
            and type(self.is_last) is bool
            and type(self.data) is bytes
        ):
            _check_int(context_id, "presentation context ID", 0xFF)
            _check_bool(self.is_command, "is_command")
            _check_bool(self.is_last, "is_last")
            _norm_bytes(self, "data", "PDV data")

    def __repr__(self) -> str:
        # A PDV may carry megabytes; say how many instead of printing them.
        return (
            f"PresentationDataValue(context_id={self.context_id}, "
            f"is_command={self.is_command}, is_last={self.is_last}, "
            f"data=<{len(self.data)} bytes>)"
        )

    def encode(self) -> bytes:
        """The PDV item alone: item length, context ID, message control header, fragment."""
        data = self.data
        if len(data) + 2 > _MAX_U32:
            raise ConfigurationError("PDV fragment is too long for its 4-byte item length")
        header = _PDV_HEADER.pack(
            len(data) + 2, self.context_id, self.is_command | (self.is_last << 1)
        )
        return header + bytes(data)


def borrowed_pdv(context_id: int, is_command: bool, is_last: bool,
                 data: memoryview) -> PresentationDataValue:
    """A received PDV whose ``data`` is a view of the receive buffer, not a copy
    (``PDUFramer.borrow``): valid only until that buffer is reused. The framer has
    checked every field already."""
    pdv = object.__new__(PresentationDataValue)
    object.__setattr__(pdv, "context_id", context_id)
    object.__setattr__(pdv, "is_command", is_command)
    object.__setattr__(pdv, "is_last", is_last)
    object.__setattr__(pdv, "data", data)
    return pdv


@dataclass(frozen=True, slots=True, repr=False)
class ContinuedPDV(PresentationDataValue):
    """A stretch of a PDV's data after its first, as a framer streams them: the
    same PDV's context, flags and following bytes (PS3.8 9.3.5.1), counted by
    DIMSE as part of that PDV, not as one more (``DimseConnection.receive_pdv``'s
    ``continues``): how the bytes were read does not make PDVs."""

    continues: ClassVar[bool] = True


def borrowed_pdata(context_id: int, is_command: bool, is_last: bool,
                   data: bytes | memoryview, continues: bool = False) -> PDataTF:
    """A one-PDV P-DATA-TF made without the PDV's and the PDU's constructors
    (the framer has checked the fields): the framer's, once per received
    stretch of PDV data (``data``: a view of the receive buffer, or its bytes
    copied for a caller that keeps them); a :class:`ContinuedPDV` when the
    stretch ``continues`` one before it."""
    pdv = object.__new__(ContinuedPDV if continues else PresentationDataValue)
    object.__setattr__(pdv, "context_id", context_id)
    object.__setattr__(pdv, "is_command", is_command)
    object.__setattr__(pdv, "is_last", is_last)
    object.__setattr__(pdv, "data", data)
    pdu = object.__new__(PDataTF)
    object.__setattr__(pdu, "pdvs", (pdv,))
    return pdu


@dataclass(frozen=True, slots=True)
class PDataTF:
    """P-DATA-TF PDU, type 0x04 (PS3.8 9.3.5, Table 9-22): one or more PDV items."""

    pdu_type: ClassVar[int] = P_DATA_TF

    pdvs: tuple[PresentationDataValue, ...]

    def __post_init__(self) -> None:
        pdvs = self.pdvs if type(self.pdvs) is tuple else _to_tuple(self, "pdvs")
        if not pdvs:
            raise ConfigurationError("a P-DATA-TF carries one or more PDVs (PS3.8 9.3.5)")
        for pdv in pdvs:
            if type(pdv) is not PresentationDataValue:
                raise ConfigurationError(f"not a PresentationDataValue: {pdv!r}")

    def encode(self) -> bytes:
        return _pdu(P_DATA_TF, b"".join(pdv.encode() for pdv in self.pdvs), "P-DATA-TF")


def _decode_pdata(body: memoryview, pdu_type: int) -> PDataTF:
    pdvs: list[PresentationDataValue] = []
    offset = 0
    end = len(body)
    while offset < end:
        if end - offset < 6:
            raise _invalid(
                f"P-DATA-TF: {end - offset} trailing byte(s) are too short for a PDV item"
            )
        length, context_id, control = _PDV_HEADER.unpack_from(body, offset)
        if length < 2:
            raise _invalid(f"P-DATA-TF: PDV item length {length}, must be at least 2")
        start = offset + 6
        offset += 4 + length
        if offset > end:
            raise _invalid(
                f"P-DATA-TF: PDV item length {length} runs past the end of the PDU "
                f"({end - start + 2} bytes left)"
            )
        pdvs.append(
            PresentationDataValue(
                context_id, bool(control & 1), bool(control & 2), bytes(body[start:offset])
            )
        )
    if not pdvs:
        raise _invalid("P-DATA-TF without any PDV item (PS3.8 9.3.5)")
    return PDataTF(tuple(pdvs))


def pdata_header(context_id: int, is_command: bool, is_last: bool, length: int) -> bytes:
    """The 12 bytes that precede a ``length``-byte fragment in a one-PDV P-DATA-TF.

    For drivers that write ``[header, fragment]`` with scatter-gather I/O and
    never copy the fragment.
    """
    try:
        return _PDATA_HEADER.pack(
            P_DATA_TF, 0, length + 6, length + 2, context_id, is_command | (is_last << 1)
        )
    except struct.error:
        raise ConfigurationError(
            f"bad P-DATA-TF fields: context ID {context_id!r}, fragment length {length!r}"
        ) from None


def encode_pdata(
    context_id: int, is_command: bool, is_last: bool, data: bytes | bytearray | memoryview
) -> bytes:
    """A whole P-DATA-TF PDU carrying one PDV: ``pdata_header(...) + data``.

    The fast path for bulk data: no dataclass, one ``struct.pack`` and one copy
    of ``data``. Equal to ``PDataTF((PresentationDataValue(...),)).encode()``.
    """
    length = len(data) if type(data) is bytes else memoryview(data).nbytes
    try:  # pdata_header's pack, here: one call fewer per PDU sent
        header = _PDATA_HEADER.pack(P_DATA_TF, 0, length + 6, length + 2, context_id,
                                    is_command | (is_last << 1))
    except struct.error:
        return pdata_header(context_id, is_command, is_last, length) + data  # raises
    return header + data
