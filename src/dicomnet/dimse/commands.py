"""Command set codec: group 0000 in Implicit VR Little Endian (PS3.7 6.3.1, Annex E).

A command set is a flat list of group-0000 elements, always encoded Implicit VR
Little Endian whatever transfer syntax the presentation context negotiated
(PS3.7 6.3.1). This module is deliberately *not* a dataset codec - pydicom is
that - but a small table-driven encoder/decoder for the handful of command
elements of PS3.7 Annex E, written with :mod:`struct` because every DIMSE
message goes through it.

Values, by VR:

==========  ===============================================================
UL, US      ``int``
UI          ``str``; encoded NUL-padded to even length (PS3.5 6.2)
AE, LO      ``str``; encoded space-padded to even length
AT          ``tuple[int, ...]`` of 32-bit tags ``0xGGGGEEEE``
==========  ===============================================================

Decisions (documented because the standard leaves them to us):

* **Group length.** :func:`encode_command` always computes Command Group
  Length (0000,0000) and writes it first, ignoring any value passed in.
  :func:`decode_command` checks it against the bytes that follow when present
  and leaves it out of the result; a missing one is tolerated (older peers
  omit it; the PDV already delimits the command set).
* **Unknown group-0000 tags** (retired ACR-NEMA elements such as
  (0000,0001) Command Length to End, or a newer edition's additions) are *kept*
  as raw ``bytes`` so a decode/encode round trip is lossless; the encoder
  writes ``bytes`` values verbatim (NUL-padded to even length) for any tag.
* **Strictness.** Elements must be in strictly ascending tag order (PS3.5 7.1
  requires it, and it rules out duplicates), each length must fit in what is
  left, fixed-size VRs must have their exact size, and every tag must be in
  group 0000. Any violation raises :class:`~dicomnet.errors.RemoteProtocolError`
  with abort reason 6 (invalid PDU parameter value).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from dicomnet.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "COMMAND_ELEMENTS",
    "AFFECTED_SOP_CLASS_UID",
    "REQUESTED_SOP_CLASS_UID",
    "COMMAND_FIELD",
    "COMMAND_GROUP_LENGTH",
    "MESSAGE_ID",
    "MESSAGE_ID_BEING_RESPONDED_TO",
    "MOVE_DESTINATION",
    "PRIORITY",
    "COMMAND_DATA_SET_TYPE",
    "STATUS",
    "OFFENDING_ELEMENT",
    "ERROR_COMMENT",
    "ERROR_ID",
    "AFFECTED_SOP_INSTANCE_UID",
    "REQUESTED_SOP_INSTANCE_UID",
    "EVENT_TYPE_ID",
    "ATTRIBUTE_IDENTIFIER_LIST",
    "ACTION_TYPE_ID",
    "NUMBER_OF_REMAINING_SUBOPERATIONS",
    "NUMBER_OF_COMPLETED_SUBOPERATIONS",
    "NUMBER_OF_FAILED_SUBOPERATIONS",
    "NUMBER_OF_WARNING_SUBOPERATIONS",
    "MOVE_ORIGINATOR_AE_TITLE",
    "MOVE_ORIGINATOR_MESSAGE_ID",
    "CommandValue",
    "decode_command",
    "element_encoder",
    "encode_command",
]

# Tags of PS3.7 Annex E, Table E.1-1 (retired elements are left to the raw path).
COMMAND_GROUP_LENGTH: Final = 0x0000_0000
AFFECTED_SOP_CLASS_UID: Final = 0x0000_0002
REQUESTED_SOP_CLASS_UID: Final = 0x0000_0003
COMMAND_FIELD: Final = 0x0000_0100
MESSAGE_ID: Final = 0x0000_0110
MESSAGE_ID_BEING_RESPONDED_TO: Final = 0x0000_0120
MOVE_DESTINATION: Final = 0x0000_0600
PRIORITY: Final = 0x0000_0700
COMMAND_DATA_SET_TYPE: Final = 0x0000_0800
STATUS: Final = 0x0000_0900
OFFENDING_ELEMENT: Final = 0x0000_0901
ERROR_COMMENT: Final = 0x0000_0902
ERROR_ID: Final = 0x0000_0903
AFFECTED_SOP_INSTANCE_UID: Final = 0x0000_1000
REQUESTED_SOP_INSTANCE_UID: Final = 0x0000_1001
EVENT_TYPE_ID: Final = 0x0000_1002
ATTRIBUTE_IDENTIFIER_LIST: Final = 0x0000_1005
ACTION_TYPE_ID: Final = 0x0000_1008
NUMBER_OF_REMAINING_SUBOPERATIONS: Final = 0x0000_1020
NUMBER_OF_COMPLETED_SUBOPERATIONS: Final = 0x0000_1021
NUMBER_OF_FAILED_SUBOPERATIONS: Final = 0x0000_1022
NUMBER_OF_WARNING_SUBOPERATIONS: Final = 0x0000_1023
MOVE_ORIGINATOR_AE_TITLE: Final = 0x0000_1030
MOVE_ORIGINATOR_MESSAGE_ID: Final = 0x0000_1031

#: tag -> (keyword, VR, VM) for the command elements of PS3.7 Annex E.
COMMAND_ELEMENTS: Final[Mapping[int, tuple[str, str, str]]] = {
    COMMAND_GROUP_LENGTH: ("CommandGroupLength", "UL", "1"),
    AFFECTED_SOP_CLASS_UID: ("AffectedSOPClassUID", "UI", "1"),
    REQUESTED_SOP_CLASS_UID: ("RequestedSOPClassUID", "UI", "1"),
    COMMAND_FIELD: ("CommandField", "US", "1"),
    MESSAGE_ID: ("MessageID", "US", "1"),
    MESSAGE_ID_BEING_RESPONDED_TO: ("MessageIDBeingRespondedTo", "US", "1"),
    MOVE_DESTINATION: ("MoveDestination", "AE", "1"),
    PRIORITY: ("Priority", "US", "1"),
    COMMAND_DATA_SET_TYPE: ("CommandDataSetType", "US", "1"),
    STATUS: ("Status", "US", "1"),
    OFFENDING_ELEMENT: ("OffendingElement", "AT", "1-n"),
    ERROR_COMMENT: ("ErrorComment", "LO", "1"),
    ERROR_ID: ("ErrorID", "US", "1"),
    AFFECTED_SOP_INSTANCE_UID: ("AffectedSOPInstanceUID", "UI", "1"),
    REQUESTED_SOP_INSTANCE_UID: ("RequestedSOPInstanceUID", "UI", "1"),
    EVENT_TYPE_ID: ("EventTypeID", "US", "1"),
    ATTRIBUTE_IDENTIFIER_LIST: ("AttributeIdentifierList", "AT", "1-n"),
    ACTION_TYPE_ID: ("ActionTypeID", "US", "1"),
    NUMBER_OF_REMAINING_SUBOPERATIONS: ("NumberOfRemainingSuboperations", "US", "1"),
    NUMBER_OF_COMPLETED_SUBOPERATIONS: ("NumberOfCompletedSuboperations", "US", "1"),
    NUMBER_OF_FAILED_SUBOPERATIONS: ("NumberOfFailedSuboperations", "US", "1"),
    NUMBER_OF_WARNING_SUBOPERATIONS: ("NumberOfWarningSuboperations", "US", "1"),
    MOVE_ORIGINATOR_AE_TITLE: ("MoveOriginatorApplicationEntityTitle", "AE", "1"),
    MOVE_ORIGINATOR_MESSAGE_ID: ("MoveOriginatorMessageID", "US", "1"),
}

# The VR alone drives the codec; a flat dict lookup per element keeps decoding fast.
_VR: Final[dict[int, str]] = {tag: vr for tag, (_, vr, _) in COMMAND_ELEMENTS.items()}

# Maximum value lengths of PS3.5 Table 6.2-1 for the string VRs we write.
_MAX_CHARS: Final = {"UI": 64, "AE": 16, "LO": 64}

#: A decoded command element value.
CommandValue = int | str | tuple[int, ...] | bytes

_HEADER = struct.Struct("<HHI")  # group, element, value length (Implicit VR LE, PS3.5 7.1.3)
_US = struct.Struct("<H")
_UL = struct.Struct("<I")
_GROUP_LENGTH_ELEMENT = struct.Struct("<HHII")


def _bad(message: str) -> RemoteProtocolError:
    # The P-DATA-TF was well formed, its content is not: a fault found above the
    # Upper Layer, aborted by the service-user, source 0, reason 0 (PS3.8 Table
    # 9-26; dimse.connection says why).
    return RemoteProtocolError(message, abort_source=0, abort_reason=0)


def _encode_text(tag: int, vr: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise LocalProtocolError(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} needs a str")
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        # Command sets use the default character repertoire only (PS3.7 6.3.1).
        raise LocalProtocolError(
            f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} must be ASCII: {value!r}"
        ) from None
    if len(raw) > _MAX_CHARS[vr]:
        raise LocalProtocolError(
            f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} longer than {_MAX_CHARS[vr]}: {value!r}"
        )
    if len(raw) & 1:
        raw += b"\x00" if vr == "UI" else b" "
    return raw


def _encode_value(tag: int, value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return raw + b"\x00" if len(raw) & 1 else raw
    vr = _VR.get(tag)
    if vr is None:
        raise LocalProtocolError(
            f"({tag >> 16:04X},{tag & 0xFFFF:04X}) is not a known command element; pass bytes"
        )
    if vr in {"US", "UL"}:
        if not isinstance(value, int) or isinstance(value, bool):
            raise LocalProtocolError(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} needs an int")
        limit = 0xFFFF if vr == "US" else 0xFFFFFFFF
        if not 0 <= value <= limit:
            raise LocalProtocolError(
                f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} value out of range: {value}"
            )
        return _US.pack(value) if vr == "US" else _UL.pack(value)
    if vr == "AT":
        if isinstance(value, int) or not isinstance(value, Sequence) or isinstance(value, str):
            raise LocalProtocolError(
                f"({tag >> 16:04X},{tag & 0xFFFF:04X}) AT needs a sequence of tags"
            )
        out = bytearray()
        for item in value:
            if not isinstance(item, int) or not 0 <= item <= 0xFFFFFFFF:
                raise LocalProtocolError(f"bad tag in AT value: {item!r}")
            out += struct.pack("<HH", item >> 16, item & 0xFFFF)
        return bytes(out)
    return _encode_text(tag, vr, value)


def element_encoder(tag: int) -> Callable[[object], bytes]:
    """A function encoding a value of command element ``tag`` as the whole element
    (header and value), byte for byte as :func:`encode_command` does. Encoders
    built once per message type spare every message the sort of its tags and the
    VR dispatch of each value (``messages.encode_message``); a value of another
    type than the VR's usual one takes the general path, errors included."""
    if tag >> 16 != 0:
        raise LocalProtocolError(f"tag {tag:08X} is not in the command group 0000")
    element = tag & 0xFFFF
    pack_header = _HEADER.pack

    def general(value: object) -> bytes:
        raw = _encode_value(tag, value)
        return pack_header(0, element, len(raw)) + raw

    vr = _VR.get(tag)
    if vr in ("US", "UL"):
        prefix = pack_header(0, element, 2 if vr == "US" else 4)
        pack = _US.pack if vr == "US" else _UL.pack
        limit = 0xFFFF if vr == "US" else 0xFFFFFFFF

        def integer(value: object) -> bytes:
            if value.__class__ is int and 0 <= value <= limit:
                return prefix + pack(value)
            return general(value)

        return integer
    if vr in _MAX_CHARS:
        most = _MAX_CHARS[vr]
        pad = b"\x00" if vr == "UI" else b" "

        def text(value: object) -> bytes:
            if value.__class__ is str and value.isascii():
                raw: bytes = value.encode()
                size = len(raw)
                if size <= most:
                    if size & 1:
                        raw += pad
                        size += 1
                    return pack_header(0, element, size) + raw
            return general(value)

        return text
    return general


def encode_command(elements: Mapping[int, object]) -> bytes:
    """Encode a command set in Implicit VR Little Endian (PS3.7 6.3.1, Annex E).

    ``elements`` maps group-0000 tags to values (see the module docstring);
    ``None`` values are left out, and a Command Group Length passed in is
    ignored: it is computed and written first. Raises
    :class:`~dicomnet.errors.LocalProtocolError` for a tag outside group 0000
    or a value its VR cannot hold.
    """
    body = bytearray()
    for tag in sorted(elements):
        if tag >> 16 != 0:
            raise LocalProtocolError(f"tag {tag:08X} is not in the command group 0000")
        value = elements[tag]
        if value is None or tag == COMMAND_GROUP_LENGTH:
            continue
        raw = _encode_value(tag, value)
        body += _HEADER.pack(0, tag & 0xFFFF, len(raw))
        body += raw
    return _GROUP_LENGTH_ELEMENT.pack(0, 0, 4, len(body)) + body


def _decode_text(tag: int, vr: str, raw: bytes) -> str:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        if vr == "LO":
            # Error Comment is free text for humans; losing a byte beats aborting.
            text = raw.decode("ascii", errors="replace")
        else:
            raise _bad(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} is not ASCII") from None
    if vr == "UI":
        # UIDs are NUL padded; some peers pad with a space instead.
        return text.rstrip("\x00 ")
    if vr == "AE":
        # Leading and trailing spaces of an AE title are not significant (PS3.5 6.2).
        return text.strip(" \x00")
    return text.rstrip(" \x00")


#: How decode_command reads each known element, by tag (group 0000: the element number).
_US_, _UL_, _TEXT, _AE_, _AT_, _GROUP = range(6)
_KIND: Final[dict[int, int]] = {
    tag: (_GROUP if tag == COMMAND_GROUP_LENGTH else
          {"US": _US_, "UL": _UL_, "AT": _AT_, "AE": _AE_}.get(vr, _TEXT))
    for tag, vr in _VR.items()
}


def _header_error(buf: bytes, pos: int, end: int, previous: int) -> RemoteProtocolError:
    """Why the element header at ``pos`` cannot be taken (decode_command's checks,
    in their order)."""
    if end - pos < 8:
        return _bad(f"truncated element header at offset {pos}")
    group, element, length = _HEADER.unpack_from(buf, pos)
    if group != 0:
        return _bad(f"tag ({group:04X},{element:04X}) in a command set is not in group 0000")
    if element <= previous:
        return _bad(f"command element ({group:04X},{element:04X}) out of order or repeated")
    # Also the undefined length 0xFFFFFFFF: command sets hold no sequences.
    return _bad(f"({group:04X},{element:04X}) length {length} exceeds the "
                f"{end - pos - 8} bytes left in the command set")


def decode_command(data: bytes | bytearray | memoryview) -> dict[int, CommandValue]:
    """Decode a command set (PS3.7 6.3.1, Annex E) into ``{tag: value}``.

    Strict, as the module docstring describes: any malformation raises
    :class:`~dicomnet.errors.RemoteProtocolError` (abort reason 6). The group
    length is verified, not returned; unknown group-0000 elements come back as
    raw ``bytes``.
    """
    buf = data if data.__class__ is bytes else bytes(data)
    end = len(buf)
    out: dict[int, CommandValue] = {}
    pos = 0
    previous = -1
    unpack_header = _HEADER.unpack_from
    kinds = _KIND
    # Once per message per element: each test below is one that every element
    # passes, the rare failures explained by _header_error. The table is read by
    # subscript and a US value from its two bytes: no call but the header's unpack.
    while pos < end:
        if end - pos < 8:
            raise _header_error(buf, pos, end, previous)
        group, tag, length = unpack_header(buf, pos)
        if group or tag <= previous or length > end - pos - 8:
            raise _header_error(buf, pos, end, previous)
        previous = tag
        pos += 8
        kind = kinds[tag] if tag in kinds else None  # noqa: SIM401 (no call)
        if kind == _US_:
            if length != 2:
                raise _bad(f"(0000,{tag:04X}) US has length {length}, not 2")
            out[tag] = buf[pos] | buf[pos + 1] << 8  # Little Endian (PS3.7 6.3.1)
        elif kind == _TEXT:
            try:
                out[tag] = buf[pos:pos + length].decode("ascii").rstrip(" \x00")
            except UnicodeDecodeError:
                out[tag] = _decode_text(tag, _VR[tag], buf[pos:pos + length])
        elif kind == _UL_:
            if length != 4:
                raise _bad(f"(0000,{tag:04X}) UL has length {length}, not 4")
            out[tag] = _UL.unpack_from(buf, pos)[0]
        elif kind == _GROUP:
            if length != 4:
                raise _bad(f"Command Group Length has length {length}, not 4")
            said = _UL.unpack_from(buf, pos)[0]
            if said != end - pos - 4:
                raise _bad(
                    f"Command Group Length says {said} bytes follow, but {end - pos - 4} do"
                )
        elif kind == _AE_:
            out[tag] = _decode_text(tag, "AE", buf[pos:pos + length])
        elif kind == _AT_:
            if length % 4:
                raise _bad(f"(0000,{tag:04X}) AT length {length} is not a multiple of 4")
            pairs = struct.unpack_from(f"<{length // 2}H", buf, pos)
            out[tag] = tuple((pairs[i] << 16) | pairs[i + 1] for i in range(0, len(pairs), 2))
        else:
            out[tag] = buf[pos:pos + length]
        pos += length
    return out
