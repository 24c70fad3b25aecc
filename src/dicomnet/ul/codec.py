"""Shared low-level pieces of the A-ASSOCIATE item codec.

Used by ``dicomnet.ul.items`` (application context and presentation context
items), ``dicomnet.ul.user_information`` (the user information item and its
sub-items), ``dicomnet.ul.pdu`` and ``dicomnet.ul.pdata``: the item type codes
(PS3.8 Tables 9-11, 9-12, 9-14, 9-16, 9-18; PS3.8 D.1; PS3.7 D.3.3), the 4-byte
item header and the 6-byte PDU header (PS3.8 9.3.1), the ``RemoteProtocolError``
builders for the A-ABORT reasons of PS3.8 Table 9-26, the constructor checks
and the decoding helpers.

This module imports nothing from the other item modules, so that they can all
import from it without a cycle.

Contracts
---------
* Constructor checks raise ``ConfigurationError`` (a ``ValueError``); decoding
  helpers raise ``RemoteProtocolError`` with abort source 2.
* Every length field is checked against what is left of its parent before
  anything is sliced.
* UIDs and names are ASCII. They are written as given, without padding
  (PS3.8 9.3.2.2.1), and read with trailing NUL and space padding removed.
* Reserved bytes are sent as zero and never tested on receipt (PS3.8 9.3.1).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from dicomnet.errors import ConfigurationError, RemoteProtocolError

__all__ = [
    "ABSTRACT_SYNTAX_SUB_ITEM",
    "APPLICATION_CONTEXT_ITEM",
    "ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM",
    "IMPLEMENTATION_CLASS_UID_SUB_ITEM",
    "IMPLEMENTATION_VERSION_NAME_SUB_ITEM",
    "KNOWN_ITEM_TYPES",
    "MAXIMUM_LENGTH_SUB_ITEM",
    "PRESENTATION_CONTEXT_AC_ITEM",
    "PRESENTATION_CONTEXT_RQ_ITEM",
    "ROLE_SELECTION_SUB_ITEM",
    "SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM",
    "SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM",
    "TRANSFER_SYNTAX_SUB_ITEM",
    "USER_IDENTITY_AC_SUB_ITEM",
    "USER_IDENTITY_RQ_SUB_ITEM",
    "USER_INFORMATION_ITEM",
    "iter_items",
]

# Item types (PS3.8 Tables 9-11, 9-12, 9-14, 9-16, 9-18; PS3.8 D.1; PS3.7 D.3.3).
APPLICATION_CONTEXT_ITEM = 0x10
PRESENTATION_CONTEXT_RQ_ITEM = 0x20
PRESENTATION_CONTEXT_AC_ITEM = 0x21
ABSTRACT_SYNTAX_SUB_ITEM = 0x30
TRANSFER_SYNTAX_SUB_ITEM = 0x40
USER_INFORMATION_ITEM = 0x50
MAXIMUM_LENGTH_SUB_ITEM = 0x51
IMPLEMENTATION_CLASS_UID_SUB_ITEM = 0x52
ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM = 0x53
ROLE_SELECTION_SUB_ITEM = 0x54
IMPLEMENTATION_VERSION_NAME_SUB_ITEM = 0x55
SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM = 0x56
SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM = 0x57
USER_IDENTITY_RQ_SUB_ITEM = 0x58
USER_IDENTITY_AC_SUB_ITEM = 0x59

#: Every item type this module knows, at any nesting level. An item of one of
#: these types in the wrong place is "unexpected" (abort reason 5); any other
#: type is "unrecognized" (abort reason 4).
KNOWN_ITEM_TYPES = frozenset(
    {
        APPLICATION_CONTEXT_ITEM,
        PRESENTATION_CONTEXT_RQ_ITEM,
        PRESENTATION_CONTEXT_AC_ITEM,
        ABSTRACT_SYNTAX_SUB_ITEM,
        TRANSFER_SYNTAX_SUB_ITEM,
        USER_INFORMATION_ITEM,
        *range(MAXIMUM_LENGTH_SUB_ITEM, USER_IDENTITY_AC_SUB_ITEM + 1),
    }
)

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">L")
_ITEM_HEADER = struct.Struct(">BBH")  # item type, reserved (or version), item length
_MAX_U16 = 0xFFFF
_PDU_HEADER = struct.Struct(">BBL")  # PDU type, reserved, PDU length (PS3.8 9.3.1)
_MAX_U32 = 0xFFFFFFFF


# --------------------------------------------------------------------------- errors


def _unrecognized(message: str) -> RemoteProtocolError:
    """A-ABORT reason 4, unrecognized PDU parameter (PS3.8 Table 9-26)."""
    return RemoteProtocolError(message, abort_source=2, abort_reason=4)


def _unexpected(message: str) -> RemoteProtocolError:
    """A-ABORT reason 5, unexpected PDU parameter (PS3.8 Table 9-26)."""
    return RemoteProtocolError(message, abort_source=2, abort_reason=5)


def _invalid(message: str) -> RemoteProtocolError:
    """A-ABORT reason 6, invalid PDU parameter value (PS3.8 Table 9-26)."""
    return RemoteProtocolError(message, abort_source=2, abort_reason=6)


# ------------------------------------------------------------- construction checks


def _check_int(value: object, what: str, maximum: int) -> None:
    if type(value) is not int or not 0 <= value <= maximum:
        raise ConfigurationError(f"{what} must be an integer from 0 to {maximum}, got {value!r}")


def _check_bool(value: object, what: str) -> None:
    if type(value) is not bool:
        raise ConfigurationError(f"{what} must be a bool, got {value!r}")


def _norm_text(obj: object, field: str, what: str, *, strip: str = "\0 ") -> None:
    """Check an ASCII text field and store it without trailing padding."""
    value = getattr(obj, field)
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a str, got {type(value).__name__}")
    if not value.isascii():
        raise ConfigurationError(f"{what} must be ASCII, got {value!r}")
    stripped = value.rstrip(strip)
    if type(value) is not str or stripped != value:
        # Plain str, without padding: one representation per value.
        object.__setattr__(obj, field, str(stripped))


def _norm_bytes(obj: object, field: str, what: str) -> None:
    value = getattr(obj, field)
    if type(value) is bytes:
        return
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ConfigurationError(f"{what} must be bytes, got {type(value).__name__}")
    object.__setattr__(obj, field, bytes(value))


def _norm_uid_tuple(obj: object, field: str, what: str) -> None:
    value = getattr(obj, field)
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise ConfigurationError(f"{what} must be a sequence of str, got {value!r}")
    items = []
    for uid in value:
        if not isinstance(uid, str) or not uid.isascii():
            raise ConfigurationError(f"{what} must hold ASCII str, got {uid!r}")
        items.append(uid.rstrip("\0 "))
    object.__setattr__(obj, field, tuple(items))


def _fit_u16(length: int, what: str) -> int:
    if length > _MAX_U16:
        raise ConfigurationError(
            f"{what} is {length} bytes long, more than its 2-byte length allows"
        )
    return length


def _item(item_type: int, value: bytes, what: str) -> bytes:
    return _ITEM_HEADER.pack(item_type, 0, _fit_u16(len(value), what)) + value


def _uid_field(uid: str, what: str) -> bytes:
    """A 2-byte length followed by the UID (role selection, extended negotiation...)."""
    raw = uid.encode("ascii")
    return _U16.pack(_fit_u16(len(raw), what)) + raw


# ------------------------------------------------------------------ decoding helpers


def iter_items(value: memoryview, where: str) -> Iterator[tuple[int, memoryview]]:
    """Split a variable field into ``(item type, item value)`` pairs.

    Each item has a 4-byte header: type, reserved, 2-byte length (PS3.8 9.3.1).
    The length is checked against what is left of ``value`` before slicing.
    """
    offset = 0
    end = len(value)
    while offset < end:
        if end - offset < 4:
            raise _invalid(
                f"{where}: {end - offset} trailing byte(s) are too short for an item header"
            )
        item_type, _, length = _ITEM_HEADER.unpack_from(value, offset)
        start = offset + 4
        offset = start + length
        if offset > end:
            raise _invalid(
                f"{where}: item 0x{item_type:02x} claims {length} bytes but only "
                f"{end - start} are left"
            )
        yield item_type, value[start:offset]


def _text(raw: memoryview, what: str) -> str:
    try:
        return str(raw, "ascii")
    except UnicodeDecodeError:
        raise _invalid(f"{what} is not ASCII: {bytes(raw[:64])!r}") from None


def _read_u16_field(value: memoryview, offset: int, what: str) -> tuple[memoryview, int]:
    """Read a 2-byte length and the field it announces; return the field and the next offset."""
    if len(value) - offset < 2:
        raise _invalid(f"{what}: missing its 2-byte length")
    (length,) = _U16.unpack_from(value, offset)
    start = offset + 2
    stop = start + length
    if stop > len(value):
        raise _invalid(
            f"{what}: length {length} runs past the end of its item ({len(value) - start} left)"
        )
    return value[start:stop], stop


def _byte_flag(value: int) -> bool:
    # PS3.7 D.3.3.4 / D.3.3.7 define 0 and 1 only; a peer sending something else
    # is broken, but "non-zero" has one obvious meaning, so read it as set rather
    # than abort an association over a flag.
    return value != 0


# ----------------------------------------------------------------------------- PDUs


def _to_tuple(obj: object, field: str) -> tuple[object, ...]:
    value = getattr(obj, field)
    if not isinstance(value, tuple):
        if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
            raise ConfigurationError(f"{field} must be a sequence, got {value!r}")
        value = tuple(value)
        object.__setattr__(obj, field, value)
    return value


def _pdu(pdu_type: int, body: bytes, what: str) -> bytes:
    if len(body) > _MAX_U32:
        raise ConfigurationError(f"{what} is too long for the 4-byte PDU length")
    return _PDU_HEADER.pack(pdu_type, 0, len(body)) + body
