"""The C-STORE messages' fast codec (PS3.7 9.3.1): the command sets a Storage
SCU and SCP exchange once per object, in the layout dicomnet, DCMTK and
pynetdicom all send.

:func:`~dicomnet.dimse.messages.encode_message` encodes a C-STORE-RQ and a
C-STORE-RSP with the tables here (its fast paths are written inline there:
a call less per message). The decoders read one such command set with a few
struct reads, without :func:`~dicomnet.dimse.commands.decode_command`'s loop
and the dataclass ``__init__``; for anything else they return None and the
caller takes :func:`~dicomnet.dimse.messages.decode_message`, which then
decodes it or raises its own error. Whatever they return is the message
``decode_message`` makes of the same bytes (the tests compare the two on
every byte changed).
"""

from __future__ import annotations

import struct
from typing import Final

from dicomnet.dimse import commands as c
from dicomnet.dimse.messages import (
    DATA_SET_ABSENT,
    DATA_SET_PRESENT,
    PRIORITY_LOW,
    PRIORITY_MEDIUM,
    CStoreRQ,
    CStoreRSP,
)

__all__ = ["decode_store_rq", "decode_store_rsp"]

#: C-STORE-RQ (PS3.7 9.3.1.1), the message an SCU sends per object, in tag order:
#: Affected SOP Class UID and Command Field, kept encoded by SOP Class (most
#: objects are of a class sent before); Message ID; Priority and Command Data Set
#: Type, for the default priority with a data set; Affected SOP Instance UID.
STORE_RQ_HEADS: Final[dict[str, bytes]] = {}
#: How many SOP Classes each table keeps (a peer naming ever new ones fills none).
HEADS_KEPT: Final = 64
encode_class: Final = c.element_encoder(c.AFFECTED_SOP_CLASS_UID)
encode_message_id: Final = c.element_encoder(c.MESSAGE_ID)
encode_instance: Final = c.element_encoder(c.AFFECTED_SOP_INSTANCE_UID)
STORE_RQ_FIELD: Final = c.element_encoder(c.COMMAND_FIELD)(0x0001)
STORE_RQ_MIDDLE: Final = (c.element_encoder(c.PRIORITY)(PRIORITY_MEDIUM)
                          + c.element_encoder(c.COMMAND_DATA_SET_TYPE)(DATA_SET_PRESENT))

#: C-STORE-RSP (PS3.7 9.3.1.2), the message a server sends per object received,
#: in tag order: Affected SOP Class UID and Command Field, kept encoded by SOP
#: Class; Message ID Being Responded To, Command Data Set Type (none) and Status,
#: packed at once; Affected SOP Instance UID. With no Error Comment, Error ID
#: nor Offending Element (a Success, most Warnings' answers have none).
STORE_RSP_HEADS: Final[dict[str, bytes]] = {}
STORE_RSP_FIELD: Final = c.element_encoder(c.COMMAND_FIELD)(0x8001)
STORE_RSP_US: Final = struct.Struct("<HHIHHHIHHHIH")

#: Both decoders' first read: the Command Group Length element (its header and
#: value) and the Affected SOP Class UID's header.
_STORE_START = struct.Struct("<8sI4sI")
#: A C-STORE-RSP received in the layout above (dicomnet's, DCMTK's, pynetdicom's):
#: after the UID and the Command Field, the Message ID header and value, the
#: Data Set Type element and Status header, the Status, the instance UID's header.
_STORE_RSP_REST = struct.Struct("<8sH18sH4sI")
_GROUP_LENGTH_HEADER = struct.pack("<HHI", 0, 0, 4)
_CLASS_TAG = struct.pack("<HH", 0, 0x0002)
_STORE_RSP_CONSTANTS = (struct.pack("<HHI", 0, 0x0120, 2),
                        struct.pack("<HHIHHHI", 0, 0x0800, 2, DATA_SET_ABSENT, 0, 0x0900, 2),
                        struct.pack("<HH", 0, 0x1000))
#: Class UID value and Command Field element -> the UID, or None: another message.
_STORE_RSP_CLASSES: dict[bytes, str | None] = {}

#: A C-STORE-RQ received in the layout of PS3.7 9.3.1.1 (dicomnet's, DCMTK's,
#: pynetdicom's): after the class UID and the Command Field, the Message ID,
#: Priority and Data Set Type elements and the instance UID's header; then, in
#: a C-MOVE's sub-operation, the Move Originator AE Title's header, its value
#: and the Move Originator Message ID element.
_STORE_RQ_REST = struct.Struct("<8sH8sH8sH4sI")
_STORE_RQ_CONSTANTS = (struct.pack("<HHI", 0, 0x0110, 2), struct.pack("<HHI", 0, 0x0700, 2),
                       struct.pack("<HHI", 0, 0x0800, 2), struct.pack("<HH", 0, 0x1000))
_ORIGINATOR_HEADER = struct.Struct("<4sI")
_ORIGINATOR_TAG = struct.pack("<HH", 0, 0x1030)
_ORIGINATOR_ID = struct.Struct("<8sH")
_ORIGINATOR_ID_HEADER = struct.pack("<HHI", 0, 0x1031, 2)
#: Class UID value and Command Field element -> the UID, or None: another
#: message, or a UID the general path refuses (empty, not ASCII).
_STORE_RQ_CLASSES: dict[bytes, str | None] = {}
_new = object.__new__
_set = object.__setattr__


def decode_store_rsp(data: bytes | bytearray | memoryview) -> CStoreRSP | None:
    """``data`` as a C-STORE-RSP in the layout of ``_STORE_RSP_REST`` (PS3.7
    9.3.1.2, 6.3.1: no Error Comment, Error ID nor Offending Element), or None
    for any other command set, which ``decode_message`` reads: the message it
    would make, after the same checks (the group length, the elements' order
    and lengths, ASCII text, Data Set Type 0101H), with two struct reads and no
    other Python call (``decode_command``'s loop and the ``__init__``). For a
    Storage SCU, which reads one per object."""
    if (end := len(data)) < 68:
        return None
    if data.__class__ is not bytes:
        data = bytes(data)
    header, length, class_tag, class_length = _STORE_START.unpack_from(data, 0)
    rest = 20 + class_length
    if (header != _GROUP_LENGTH_HEADER or class_tag != _CLASS_TAG or length != end - 12
            or rest + 48 > end):
        return None
    key = data[20:rest + 10]
    sop_class = _STORE_RSP_CLASSES.get(key, False)
    if sop_class is False:
        sop_class = None
        if key.endswith(STORE_RSP_FIELD):
            try:
                sop_class = key[:-10].decode("ascii").rstrip(" \x00")
            except UnicodeDecodeError:
                return None
        if len(_STORE_RSP_CLASSES) < HEADS_KEPT:
            _STORE_RSP_CLASSES[key] = sop_class
    if sop_class is None:
        return None
    id_header, message_id, middle, status, instance_tag, instance_length = (
        _STORE_RSP_REST.unpack_from(data, rest + 10))
    if ((id_header, middle, instance_tag) != _STORE_RSP_CONSTANTS
            or rest + 48 + instance_length != end):
        return None
    try:
        instance = data[rest + 48:].decode("ascii").rstrip(" \x00")
    except UnicodeDecodeError:
        return None
    rsp = _new(CStoreRSP)
    _set(rsp, "message_id_being_responded_to", message_id)
    _set(rsp, "status", status)
    _set(rsp, "affected_sop_class_uid", sop_class)
    _set(rsp, "affected_sop_instance_uid", instance)
    _set(rsp, "error_comment", None)
    _set(rsp, "error_id", None)
    _set(rsp, "offending_element", None)
    _set(rsp, "has_dataset", False)
    return rsp


def decode_store_rq(data: bytes | bytearray | memoryview) -> CStoreRQ | None:
    """``data`` as a C-STORE-RQ in the layout of ``_STORE_RQ_REST`` (PS3.7
    9.3.1.1, 6.3.1: group length, Affected SOP Class UID, Command Field,
    Message ID, Priority, Command Data Set Type, Affected SOP Instance UID,
    and optionally Move Originator AE Title and Message ID, both), or None for
    any other command set, which ``decode_message`` reads: the message it would
    make, after the same checks (the group length, the elements' order and
    lengths, ASCII text, a UID not empty once its padding is stripped, Priority
    0000H-0002H; any Data Set Type but 0101H announces a data set: PS3.7 E.1),
    with two struct reads (three with a Move Originator) and no other Python
    call (``decode_command``'s loop and the ``__init__``). For a Storage SCP,
    which reads one per object."""
    if (end := len(data)) < 68:
        return None
    if data.__class__ is not bytes:
        data = bytes(data)
    header, length, class_tag, class_length = _STORE_START.unpack_from(data, 0)
    rest = 20 + class_length
    if (header != _GROUP_LENGTH_HEADER or class_tag != _CLASS_TAG or length != end - 12
            or rest + 48 > end):
        return None
    key = data[20:rest + 10]
    sop_class = _STORE_RQ_CLASSES.get(key, False)
    if sop_class is False:
        try:
            # An empty UID is the general path's error (a mandatory element).
            sop_class = (key[:-10].decode("ascii").rstrip(" \x00") or None
                         if key.endswith(STORE_RQ_FIELD) else None)
        except UnicodeDecodeError:
            sop_class = None
        if len(_STORE_RQ_CLASSES) < HEADS_KEPT:
            _STORE_RQ_CLASSES[key] = sop_class
    if sop_class is None:
        return None
    (id_header, message_id, priority_header, priority, type_header, data_set_type,
     instance_tag, instance_length) = _STORE_RQ_REST.unpack_from(data, rest + 10)
    if ((id_header, priority_header, type_header, instance_tag) != _STORE_RQ_CONSTANTS
            or priority > PRIORITY_LOW):
        return None
    tail = rest + 48 + instance_length
    if tail == end:
        originator = originator_id = None
    elif tail + 18 <= end:
        # Move Originator AE Title then Message ID (PS3.7 9.3.1.1), ending the set.
        originator_tag, originator_length = _ORIGINATOR_HEADER.unpack_from(data, tail)
        id_at = tail + 8 + originator_length
        if originator_tag != _ORIGINATOR_TAG or id_at + 10 != end:
            return None
        id_header, originator_id = _ORIGINATOR_ID.unpack_from(data, id_at)
        if id_header != _ORIGINATOR_ID_HEADER:
            return None
        try:
            # Leading spaces of an AE title are not significant either (PS3.5 6.2).
            originator = data[tail + 8:id_at].decode("ascii").strip(" \x00")
        except UnicodeDecodeError:
            return None
    else:
        return None
    try:
        instance = data[rest + 48:tail].decode("ascii").rstrip(" \x00")
    except UnicodeDecodeError:
        return None
    if not instance:
        return None
    rq = _new(CStoreRQ)
    _set(rq, "message_id", message_id)
    _set(rq, "affected_sop_class_uid", sop_class)
    _set(rq, "affected_sop_instance_uid", instance)
    _set(rq, "priority", priority)
    _set(rq, "move_originator_ae_title", originator)
    _set(rq, "move_originator_message_id", originator_id)
    _set(rq, "has_dataset", data_set_type != DATA_SET_ABSENT)
    return rq
