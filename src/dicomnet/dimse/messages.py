"""DIMSE messages: one frozen dataclass per message (PS3.7 9.3 and 10.3).

Each class holds the command elements of its table in PS3.7 (9.3.1-9.3.5 for
DIMSE-C, 10.3.1-10.3.6 for DIMSE-N) under snake_case names after the
standard's, plus ``has_dataset``, which stands for Command Data Set Type
(0000,0800). Fields without a default are the mandatory ones: the decoder
rejects a message that lacks them (and C-ECHO-RQ without its Affected SOP
Class UID). One leniency: a request without Priority (0000,0700) is taken as
MEDIUM rather than refused, since nothing is lost by it.

Command Data Set Type (PS3.7 E.1): 0101H means "no data set"; the standard
says any other value means one follows. We *send* 0001H, the value DCMTK
(``DIMSE_DATASET_PRESENT``) and pynetdicom both write, and we *accept* any
value other than 0101H, except in the messages that never have a data set
(``has_no_dataset``: C-ECHO-RQ/RSP, C-STORE-RSP, C-CANCEL-RQ, N-GET-RQ,
N-DELETE-RQ/RSP, whose tables say "shall be set to a value of 0101H", PS3.7
9.3.1.2, 9.3.2.3, 9.3.5, 10.3.2.1, 10.3.6): there another value is a protocol
error, refused when the command set is decoded (abort reason 6, naming the
field and its value). Taken at its word, it left the receiver waiting for a
data set the peer would not send (a C-STORE-RSP: our SCU until its DIMSE
timeout); ignored, the data set the peer then sent would be an unexplained
stray PDV. A message that must have one (C-STORE-RQ) but says 0101H is
decoded as it says: its service answers it (a C-STORE-RQ: Cannot understand,
no data set to store).

Status-related elements (PS3.7 Annex C: Error Comment, Error ID, Offending
Element) are optional on every response. Elements a class does not know are
dropped when decoding (the raw command set is still there for a caller who
needs them; see :func:`~dicomnet.dimse.commands.decode_command`).
"""

from __future__ import annotations

import dataclasses
import operator
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from dicomnet.dimse import commands as c
from dicomnet.dimse.status import Service, Status, category_of
from dicomnet.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DATA_SET_ABSENT",
    "DATA_SET_PRESENT",
    "MESSAGE_CLASSES",
    "PRIORITY_HIGH",
    "PRIORITY_LOW",
    "PRIORITY_MEDIUM",
    "CCancelRQ",
    "CEchoRQ",
    "CEchoRSP",
    "CFindRQ",
    "CFindRSP",
    "CGetRQ",
    "CGetRSP",
    "CMoveRQ",
    "CMoveRSP",
    "CStoreRQ",
    "CStoreRSP",
    "DimseMessage",
    "DimseRequest",
    "DimseResponse",
    "NActionRQ",
    "NActionRSP",
    "NCreateRQ",
    "NCreateRSP",
    "NDeleteRQ",
    "NDeleteRSP",
    "NEventReportRQ",
    "NEventReportRSP",
    "NGetRQ",
    "NGetRSP",
    "NSetRQ",
    "NSetRSP",
    "decode_message",
    "decode_store_rq",
    "decode_store_rsp",
    "encode_message",
    "operation_name",
    "refusal",
]

#: Command Data Set Type values (PS3.7 E.1); see the module docstring.
DATA_SET_ABSENT: Final = 0x0101
DATA_SET_PRESENT: Final = 0x0001

#: Priority (0000,0700) values (PS3.7 E.1).
PRIORITY_MEDIUM: Final = 0x0000
PRIORITY_HIGH: Final = 0x0001
PRIORITY_LOW: Final = 0x0002

# Every field name means the same element in every message, so one table serves all.
_FIELD_TAGS: Final[dict[str, int]] = {
    "message_id": c.MESSAGE_ID,
    "message_id_being_responded_to": c.MESSAGE_ID_BEING_RESPONDED_TO,
    "affected_sop_class_uid": c.AFFECTED_SOP_CLASS_UID,
    "requested_sop_class_uid": c.REQUESTED_SOP_CLASS_UID,
    "affected_sop_instance_uid": c.AFFECTED_SOP_INSTANCE_UID,
    "requested_sop_instance_uid": c.REQUESTED_SOP_INSTANCE_UID,
    "priority": c.PRIORITY,
    "move_destination": c.MOVE_DESTINATION,
    "move_originator_ae_title": c.MOVE_ORIGINATOR_AE_TITLE,
    "move_originator_message_id": c.MOVE_ORIGINATOR_MESSAGE_ID,
    "status": c.STATUS,
    "offending_element": c.OFFENDING_ELEMENT,
    "error_comment": c.ERROR_COMMENT,
    "error_id": c.ERROR_ID,
    "event_type_id": c.EVENT_TYPE_ID,
    "action_type_id": c.ACTION_TYPE_ID,
    "attribute_identifier_list": c.ATTRIBUTE_IDENTIFIER_LIST,
    "number_of_remaining_suboperations": c.NUMBER_OF_REMAINING_SUBOPERATIONS,
    "number_of_completed_suboperations": c.NUMBER_OF_COMPLETED_SUBOPERATIONS,
    "number_of_failed_suboperations": c.NUMBER_OF_FAILED_SUBOPERATIONS,
    "number_of_warning_suboperations": c.NUMBER_OF_WARNING_SUBOPERATIONS,
}


class _Message:
    """Behaviour shared by all messages; the fields live on the dataclasses."""

    __slots__ = ()
    #: Command Field (0000,0100) value of this message (PS3.7 E.1).
    command_field: ClassVar[int]
    # Mandatory on the wire although the constructor offers a default.
    _wire_mandatory: ClassVar[frozenset[str]] = frozenset()
    #: Whether PS3.7 fixes this message's Command Data Set Type at 0101H (no data set).
    has_no_dataset: ClassVar[bool] = False
    has_dataset: bool
    #: True for -RQ messages (bit 15 of Command Field clear, PS3.7 E.1): a class
    #: attribute, set with the Command Field (read once per message received).
    is_request: ClassVar[bool]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        field = cls.__dict__.get("command_field")
        if field is not None:
            cls.is_request = not field & 0x8000


class _Response(_Message):
    __slots__ = ()
    # Which PS3.4 status table explains this response's codes.
    _status_service: ClassVar[Service | None] = None
    status: int

    @property
    def status_info(self) -> Status:
        """The Status (0000,0900) as a :class:`~dicomnet.dimse.status.Status` value."""
        return Status(self.status, self._status_service)


# ---------------------------------------------------------------------------- DIMSE-C


@dataclass(frozen=True, slots=True, kw_only=True)
class CEchoRQ(_Message):
    """C-ECHO-RQ (PS3.7 9.3.5.1)."""

    command_field: ClassVar[int] = 0x0030
    has_no_dataset: ClassVar[bool] = True
    _wire_mandatory: ClassVar[frozenset[str]] = frozenset({"affected_sop_class_uid"})
    message_id: int
    affected_sop_class_uid: str = "1.2.840.10008.1.1"
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CEchoRSP(_Response):
    """C-ECHO-RSP (PS3.7 9.3.5.2)."""

    command_field: ClassVar[int] = 0x8030
    has_no_dataset: ClassVar[bool] = True
    _status_service: ClassVar[Service | None] = "echo"
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CStoreRQ(_Message):
    """C-STORE-RQ (PS3.7 9.3.1.1)."""

    command_field: ClassVar[int] = 0x0001
    message_id: int
    affected_sop_class_uid: str
    affected_sop_instance_uid: str
    priority: int = PRIORITY_MEDIUM
    move_originator_ae_title: str | None = None
    move_originator_message_id: int | None = None
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CStoreRSP(_Response):
    """C-STORE-RSP (PS3.7 9.3.1.2)."""

    command_field: ClassVar[int] = 0x8001
    has_no_dataset: ClassVar[bool] = True
    _status_service: ClassVar[Service | None] = "storage"
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CFindRQ(_Message):
    """C-FIND-RQ (PS3.7 9.3.2.1); the Identifier is the data set."""

    command_field: ClassVar[int] = 0x0020
    message_id: int
    affected_sop_class_uid: str
    priority: int = PRIORITY_MEDIUM
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CFindRSP(_Response):
    """C-FIND-RSP (PS3.7 9.3.2.2); pending responses carry an Identifier."""

    command_field: ClassVar[int] = 0x8020
    _status_service: ClassVar[Service | None] = "find"
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CGetRQ(_Message):
    """C-GET-RQ (PS3.7 9.3.3.1)."""

    command_field: ClassVar[int] = 0x0010
    message_id: int
    affected_sop_class_uid: str
    priority: int = PRIORITY_MEDIUM
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CGetRSP(_Response):
    """C-GET-RSP (PS3.7 9.3.3.2)."""

    command_field: ClassVar[int] = 0x8010
    _status_service: ClassVar[Service | None] = "get"
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    number_of_remaining_suboperations: int | None = None
    number_of_completed_suboperations: int | None = None
    number_of_failed_suboperations: int | None = None
    number_of_warning_suboperations: int | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CMoveRQ(_Message):
    """C-MOVE-RQ (PS3.7 9.3.4.1)."""

    command_field: ClassVar[int] = 0x0021
    message_id: int
    affected_sop_class_uid: str
    move_destination: str
    priority: int = PRIORITY_MEDIUM
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CMoveRSP(_Response):
    """C-MOVE-RSP (PS3.7 9.3.4.2)."""

    command_field: ClassVar[int] = 0x8021
    _status_service: ClassVar[Service | None] = "move"
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    number_of_remaining_suboperations: int | None = None
    number_of_completed_suboperations: int | None = None
    number_of_failed_suboperations: int | None = None
    number_of_warning_suboperations: int | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CCancelRQ(_Message):
    """C-CANCEL-RQ (PS3.7 9.3.2.3, 9.3.3.3, 9.3.4.3): one command field for all."""

    command_field: ClassVar[int] = 0x0FFF
    has_no_dataset: ClassVar[bool] = True
    message_id_being_responded_to: int
    has_dataset: bool = False


# ---------------------------------------------------------------------------- DIMSE-N


@dataclass(frozen=True, slots=True, kw_only=True)
class NEventReportRQ(_Message):
    """N-EVENT-REPORT-RQ (PS3.7 10.3.1.1); Event Information is the data set."""

    command_field: ClassVar[int] = 0x0100
    message_id: int
    affected_sop_class_uid: str
    affected_sop_instance_uid: str
    event_type_id: int
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NEventReportRSP(_Response):
    """N-EVENT-REPORT-RSP (PS3.7 10.3.1.2)."""

    command_field: ClassVar[int] = 0x8100
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    event_type_id: int | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NGetRQ(_Message):
    """N-GET-RQ (PS3.7 10.3.2.1); no Attribute Identifier List means all attributes."""

    command_field: ClassVar[int] = 0x0110
    has_no_dataset: ClassVar[bool] = True
    message_id: int
    requested_sop_class_uid: str
    requested_sop_instance_uid: str
    attribute_identifier_list: tuple[int, ...] | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NGetRSP(_Response):
    """N-GET-RSP (PS3.7 10.3.2.2); the Attribute List is the data set."""

    command_field: ClassVar[int] = 0x8110
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    attribute_identifier_list: tuple[int, ...] | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NSetRQ(_Message):
    """N-SET-RQ (PS3.7 10.3.3.1); the Modification List is the data set."""

    command_field: ClassVar[int] = 0x0120
    message_id: int
    requested_sop_class_uid: str
    requested_sop_instance_uid: str
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class NSetRSP(_Response):
    """N-SET-RSP (PS3.7 10.3.3.2)."""

    command_field: ClassVar[int] = 0x8120
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    attribute_identifier_list: tuple[int, ...] | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NActionRQ(_Message):
    """N-ACTION-RQ (PS3.7 10.3.4.1); Action Information is the data set."""

    command_field: ClassVar[int] = 0x0130
    message_id: int
    requested_sop_class_uid: str
    requested_sop_instance_uid: str
    action_type_id: int
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NActionRSP(_Response):
    """N-ACTION-RSP (PS3.7 10.3.4.2)."""

    command_field: ClassVar[int] = 0x8130
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    action_type_id: int | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NCreateRQ(_Message):
    """N-CREATE-RQ (PS3.7 10.3.5.1); the SCP assigns the instance UID if it is absent."""

    command_field: ClassVar[int] = 0x0140
    message_id: int
    affected_sop_class_uid: str
    affected_sop_instance_uid: str | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NCreateRSP(_Response):
    """N-CREATE-RSP (PS3.7 10.3.5.2)."""

    command_field: ClassVar[int] = 0x8140
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    attribute_identifier_list: tuple[int, ...] | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NDeleteRQ(_Message):
    """N-DELETE-RQ (PS3.7 10.3.6.1)."""

    command_field: ClassVar[int] = 0x0150
    has_no_dataset: ClassVar[bool] = True
    message_id: int
    requested_sop_class_uid: str
    requested_sop_instance_uid: str
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NDeleteRSP(_Response):
    """N-DELETE-RSP (PS3.7 10.3.6.2)."""

    command_field: ClassVar[int] = 0x8150
    has_no_dataset: ClassVar[bool] = True
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    has_dataset: bool = False


DimseRequest = (
    CEchoRQ
    | CStoreRQ
    | CFindRQ
    | CGetRQ
    | CMoveRQ
    | CCancelRQ
    | NEventReportRQ
    | NGetRQ
    | NSetRQ
    | NActionRQ
    | NCreateRQ
    | NDeleteRQ
)
DimseResponse = (
    CEchoRSP
    | CStoreRSP
    | CFindRSP
    | CGetRSP
    | CMoveRSP
    | NEventReportRSP
    | NGetRSP
    | NSetRSP
    | NActionRSP
    | NCreateRSP
    | NDeleteRSP
)
DimseMessage = DimseRequest | DimseResponse

_ALL: Final[tuple[type[DimseMessage], ...]] = (
    CEchoRQ, CEchoRSP, CStoreRQ, CStoreRSP, CFindRQ, CFindRSP, CGetRQ, CGetRSP,
    CMoveRQ, CMoveRSP, CCancelRQ, NEventReportRQ, NEventReportRSP, NGetRQ, NGetRSP,
    NSetRQ, NSetRSP, NActionRQ, NActionRSP, NCreateRQ, NCreateRSP, NDeleteRQ, NDeleteRSP,
)  # fmt: skip

#: Command Field (0000,0100) -> message class.
MESSAGE_CLASSES: Final[dict[int, type[DimseMessage]]] = {cls.command_field: cls for cls in _ALL}


def _spec(cls: type[DimseMessage]) -> tuple[tuple[str, int, bool], ...]:
    """(field name, tag, mandatory) for every command element field of ``cls``."""
    out = []
    # mypy cannot see that every member of the union is a dataclass type.
    dataclass_type: Any = cls
    for f in dataclasses.fields(dataclass_type):
        if f.name == "has_dataset":
            continue
        mandatory = f.name in cls._wire_mandatory or (
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        out.append((f.name, _FIELD_TAGS[f.name], mandatory))
    return tuple(out)


# Worked out once at import: encode/decode run per message and must stay cheap.
_SPECS: Final[dict[type[DimseMessage], tuple[tuple[str, int, bool], ...]]] = {
    cls: _spec(cls) for cls in _ALL
}


def _data_set_type_encoder() -> Callable[[object], bytes]:
    encode = c.element_encoder(c.COMMAND_DATA_SET_TYPE)
    present, absent = encode(DATA_SET_PRESENT), encode(DATA_SET_ABSENT)
    return lambda has_dataset: present if has_dataset else absent


def _encoders(cls: type[DimseMessage]
              ) -> tuple[Callable[[DimseMessage], tuple[Any, ...]],
                         tuple[Callable[[object], bytes], ...]]:
    """The command elements of ``cls``, in tag order (PS3.5 7.1): the Command
    Field, the Command Data Set Type (from ``has_dataset``) and the fields, as a
    getter of all their values at once (one call per message, not one per field)
    and their element encoders, in the same order."""
    entries = [(c.COMMAND_FIELD, "command_field", c.element_encoder(c.COMMAND_FIELD)),
               (c.COMMAND_DATA_SET_TYPE, "has_dataset", _data_set_type_encoder())]
    entries += [(tag, name, c.element_encoder(tag)) for name, tag, _ in _SPECS[cls]]
    entries.sort(key=lambda e: e[0])
    # Every message has at least three elements: attrgetter then returns a tuple.
    return (operator.attrgetter(*(name for _, name, _ in entries)),
            tuple(encode for _, _, encode in entries))


_ENCODERS: Final = {cls: _encoders(cls) for cls in _ALL}
_GROUP_LENGTH = struct.Struct("<HHII")  # Command Group Length: tag, length 4, value




def encode_message(msg: DimseMessage) -> bytes:
    """Encode ``msg`` as its command set bytes (PS3.7 6.3.1, 9.3, 10.3): the
    bytes :func:`~dicomnet.dimse.commands.encode_command` makes of its elements.

    Raises :class:`~dicomnet.errors.LocalProtocolError` if a field cannot be
    encoded (wrong type, out of range).
    """
    if msg.__class__ is CStoreRQ:
        sop_class, priority = msg.affected_sop_class_uid, msg.priority
        if (sop_class.__class__ is str and priority.__class__ is int
                and priority == PRIORITY_MEDIUM and msg.has_dataset is True
                and msg.move_originator_ae_title is None
                and msg.move_originator_message_id is None
                and msg.message_id is not None and msg.affected_sop_instance_uid is not None):
            # Three encoder calls where the general path below makes eight: the
            # elements the objects of a class share are encoded once.
            head = STORE_RQ_HEADS.get(sop_class)
            if head is None:
                head = encode_class(sop_class) + STORE_RQ_FIELD
                if len(STORE_RQ_HEADS) < HEADS_KEPT:
                    STORE_RQ_HEADS[sop_class] = head
            body = (head + encode_message_id(msg.message_id) + STORE_RQ_MIDDLE
                    + encode_instance(msg.affected_sop_instance_uid))
            return _GROUP_LENGTH.pack(0, 0, 4, len(body)) + body
    elif msg.__class__ is CStoreRSP:
        of_class, instance = msg.affected_sop_class_uid, msg.affected_sop_instance_uid
        message_id, status = msg.message_id_being_responded_to, msg.status
        if (of_class.__class__ is str and instance.__class__ is str
                and message_id.__class__ is int and status.__class__ is int
                and 0 <= message_id <= 0xFFFF and 0 <= status <= 0xFFFF
                and msg.has_dataset is False and msg.error_comment is None
                and msg.error_id is None and msg.offending_element is None):
            # Two Python calls where the general path below makes eight.
            head = STORE_RSP_HEADS.get(of_class)
            if head is None:
                head = encode_class(of_class) + STORE_RSP_FIELD
                if len(STORE_RSP_HEADS) < HEADS_KEPT:
                    STORE_RSP_HEADS[of_class] = head
            body = (head + STORE_RSP_US.pack(0, 0x0120, 2, message_id,
                                             0, 0x0800, 2, DATA_SET_ABSENT, 0, 0x0900, 2, status)
                    + encode_instance(instance))
            return _GROUP_LENGTH.pack(0, 0, 4, len(body)) + body
    entry = _ENCODERS.get(type(msg))
    if entry is None:
        raise LocalProtocolError(f"not a DIMSE message: {msg!r}")
    values, encoders = entry
    body = b"".join([encode(value) for value, encode in zip(values(msg), encoders, strict=True)
                     if value is not None])
    return _GROUP_LENGTH.pack(0, 0, 4, len(body)) + body


def _bad(message: str) -> RemoteProtocolError:
    # A DIMSE fault in a well-formed PDU: A-ABORT by the service-user, source 0,
    # reason 0 (PS3.8 Table 9-26; dimse.connection says why).
    return RemoteProtocolError(message, abort_source=0, abort_reason=0)


def decode_message(data: bytes | bytearray | memoryview) -> DimseMessage:
    """Decode a command set into its message (PS3.7 9.3, 10.3).

    Raises :class:`~dicomnet.errors.RemoteProtocolError` (abort reason 6) if
    the command set is malformed, its Command Field is unknown, or a
    mandatory element is missing or invalid.
    """
    elements = c.decode_command(data)
    # Subscripts after ``in`` tests rather than .get(): once per element of every
    # message received, and no call each (the codec never stores None).
    if c.COMMAND_FIELD not in elements:
        raise _bad("command set has no Command Field (0000,0100)")
    command_field = elements[c.COMMAND_FIELD]
    cls = (MESSAGE_CLASSES[command_field] if command_field.__class__ is int
           and command_field in MESSAGE_CLASSES else None)
    if cls is None:
        raise _bad(f"unknown Command Field {command_field!r}")
    if c.COMMAND_DATA_SET_TYPE not in elements:
        raise _bad(f"{cls.__name__} has no Command Data Set Type (0000,0800)")
    data_set_type = elements[c.COMMAND_DATA_SET_TYPE]
    if cls.has_no_dataset and data_set_type != DATA_SET_ABSENT:
        # See the module docstring: no data set follows, whatever the value says.
        raise _bad(f"{operation_name_of(cls)} with Command Data Set Type (0000,0800) "
                   f"{_hex(data_set_type)}: it has no data set, the value shall be 0101H "
                   "(PS3.7 9.3, 10.3)")
    # Any: the codec already gave every known tag its VR's Python type.
    kwargs: dict[str, Any] = {
        "has_dataset": data_set_type != DATA_SET_ABSENT}
    for name, tag, mandatory in _SPECS[cls]:
        if tag not in elements:
            if mandatory:
                raise _bad(f"{cls.__name__} lacks mandatory {c.COMMAND_ELEMENTS[tag][0]}")
            continue
        value = elements[tag]
        if mandatory and value == "":
            raise _bad(f"{cls.__name__} has an empty {c.COMMAND_ELEMENTS[tag][0]}")
        kwargs[name] = value
    if "priority" in kwargs and kwargs["priority"] not in (
            PRIORITY_MEDIUM, PRIORITY_HIGH, PRIORITY_LOW):
        raise _bad(f"{cls.__name__} has invalid Priority {kwargs['priority']!r}")
    return cls(**kwargs)


def operation_name(message: DimseMessage) -> str:
    """The operation ``message`` belongs to, as PS3.7 writes it: ``CFindRQ`` ->
    ``C-FIND``, ``NEventReportRSP`` -> ``N-EVENT-REPORT``."""
    name = type(message).__name__.removesuffix("RQ").removesuffix("RSP")
    return name[0] + "-" + re.sub(r"(?<!^)(?=[A-Z])", "-", name[1:]).upper()


def operation_name_of(cls: type[DimseMessage]) -> str:
    """The message ``cls`` stands for, as PS3.7 writes it: ``CStoreRSP`` -> ``C-STORE-RSP``."""
    name = cls.__name__
    kind = "RSP" if name.endswith("RSP") else "RQ"
    name = name.removesuffix(kind)
    return name[0] + "-" + re.sub(r"(?<!^)(?=[A-Z])", "-", name[1:]).upper() + "-" + kind


def _hex(value: object) -> str:
    return f"{value:04X}H" if isinstance(value, int) else repr(value)


def refusal(request: DimseMessage, status: int, comment: str | None = None
            ) -> DimseResponse | None:
    """The response refusing ``request`` with ``status`` (an SCP that does not
    perform it answers 0211H, Unrecognized Operation: PS3.7 Annex C), naming
    the same SOP Class and Instance; None when no response is due (``request``
    is itself a response, or a C-CANCEL-RQ, which is never answered: PS3.7
    9.3.2.3). ``comment`` goes in the Error Comment where the response has one
    and ``status`` is a Warning or a Failure. A UID the peer sent that could
    not be sent back (longer than 64 characters, not ASCII) is left out: the
    fields are optional or conditional in responses (PS3.7 9.3, 10.3)."""
    if not request.is_request:
        return None
    cls = MESSAGE_CLASSES.get(request.command_field | 0x8000)
    if cls is None:
        return None
    names = {name for name, _, _ in _SPECS[cls]}
    kwargs: dict[str, Any] = {
        "message_id_being_responded_to": getattr(request, "message_id", 0), "status": status}
    for field, sources in (
        ("affected_sop_class_uid", ("affected_sop_class_uid", "requested_sop_class_uid")),
        ("affected_sop_instance_uid", ("affected_sop_instance_uid",
                                       "requested_sop_instance_uid")),
    ):
        value = next((getattr(request, s) for s in sources if getattr(request, s, None)), None)
        # Echoed only when it can be encoded (ASCII, 64 characters at most: PS3.5
        # 9.1): a request naming a longer one is still refused, not aborted.
        if value and field in names and value.isascii() and len(value) <= 64:
            kwargs[field] = value
    # An Error Comment goes with a Warning or a Failure only (PS3.7 C.1.1, C.4, C.5).
    if comment and "error_comment" in names and category_of(status) in ("warning", "failure"):
        kwargs["error_comment"] = comment[:64]
    response = cls(**kwargs)
    assert not response.is_request
    return response  # type: ignore[return-value]


# The C-STORE messages' fast paths live in their own module, which needs this
# one's classes: imported last, once they exist. Always in this order: the
# package's __init__ imports this module (through dimse.connection) before any
# caller can import store_codec.
from dicomnet.dimse.store_codec import (  # noqa: E402
    HEADS_KEPT,
    STORE_RQ_FIELD,
    STORE_RQ_HEADS,
    STORE_RQ_MIDDLE,
    STORE_RSP_FIELD,
    STORE_RSP_HEADS,
    STORE_RSP_US,
    decode_store_rq,
    decode_store_rsp,
    encode_class,
    encode_instance,
    encode_message_id,
)
