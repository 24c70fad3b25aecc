"""Items and sub-items of the A-ASSOCIATE-RQ and A-ASSOCIATE-AC variable fields.

PS3.8 9.3.2.1-9.3.2.3 and 9.3.3.1-9.3.3.3 (application context, presentation
context and user information items), PS3.8 Annex D.1 (maximum length) and PS3.7
Annex D.3.3 (implementation identification, asynchronous operations window,
SCP/SCU role selection, SOP class extended and common extended negotiation,
user identity).

Contracts
---------
* Every item is a frozen, slotted dataclass. Its constructor checks each field
  on its own once (``ConfigurationError``, a ``ValueError``); ``encode()`` returns
  the whole item, type/reserved/length header included, and raises
  ``ConfigurationError`` when the content does not fit a length field.
* The ``decode_*`` functions take the item *value* (what follows the 4-byte
  header). Every length field is checked against what is left of its parent
  before anything is sliced; anything invalid raises ``RemoteProtocolError``
  with abort source 2 and the reason of PS3.8 Table 9-26.
* UIDs and names are ASCII. They are written as given, without padding
  (PS3.8 9.3.2.2.1), and read with trailing NUL and space padding removed; the
  constructors apply the same normalisation, so ``decode(x.encode()) == x``.
* Reserved bytes are sent as zero and never tested on receipt (PS3.8 9.3.1).
* An unknown sub-item type inside the user information item is kept as an
  ``UnknownSubItem`` (PS3.7 D.3.3: the receiver ignores what it does not
  recognise), so callers simply skip it.
* Within a user information item the codec is deliberately lenient: it does not
  require the Maximum Length or Implementation Class UID sub-items, nor forbid
  duplicates; whether their absence is acceptable is for the negotiation layer
  to decide (the convenience properties return ``None`` / the first one).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

from dicomnet.errors import ConfigurationError, RemoteProtocolError

__all__ = [
    "ABSTRACT_SYNTAX_SUB_ITEM",
    "APPLICATION_CONTEXT_ITEM",
    "ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM",
    "IMPLEMENTATION_CLASS_UID_SUB_ITEM",
    "IMPLEMENTATION_VERSION_NAME_SUB_ITEM",
    "KNOWN_ITEM_TYPES",
    "MAXIMUM_LENGTH_SUB_ITEM",
    "PC_ABSTRACT_SYNTAX_NOT_SUPPORTED",
    "PC_ACCEPTANCE",
    "PC_NO_REASON",
    "PC_RESULTS",
    "PC_TRANSFER_SYNTAXES_NOT_SUPPORTED",
    "PC_USER_REJECTION",
    "PRESENTATION_CONTEXT_AC_ITEM",
    "PRESENTATION_CONTEXT_RQ_ITEM",
    "ROLE_SELECTION_SUB_ITEM",
    "SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM",
    "SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM",
    "TRANSFER_SYNTAX_SUB_ITEM",
    "USER_IDENTITY_AC_SUB_ITEM",
    "USER_IDENTITY_KERBEROS",
    "USER_IDENTITY_JWT",
    "USER_IDENTITY_RQ_SUB_ITEM",
    "USER_IDENTITY_SAML",
    "USER_IDENTITY_USERNAME",
    "USER_IDENTITY_USERNAME_AND_PASSCODE",
    "USER_INFORMATION_ITEM",
    "AbstractSyntaxSubItem",
    "ApplicationContextItem",
    "AsynchronousOperationsWindowSubItem",
    "ImplementationClassUIDSubItem",
    "ImplementationVersionNameSubItem",
    "MaximumLengthSubItem",
    "PresentationContextACItem",
    "PresentationContextRQItem",
    "RoleSelectionSubItem",
    "SOPClassCommonExtendedNegotiationSubItem",
    "SOPClassExtendedNegotiationSubItem",
    "SubItem",
    "TransferSyntaxSubItem",
    "UnknownSubItem",
    "UserIdentityACSubItem",
    "UserIdentityRQSubItem",
    "UserInformationItem",
    "Item",
    "decode_application_context_item",
    "decode_item",
    "decode_presentation_context_ac_item",
    "decode_presentation_context_rq_item",
    "decode_user_information_item",
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

# Result/Reason of a presentation context item in an A-ASSOCIATE-AC (PS3.8 Table 9-18).
PC_ACCEPTANCE = 0
PC_USER_REJECTION = 1
PC_NO_REASON = 2  # provider rejection
PC_ABSTRACT_SYNTAX_NOT_SUPPORTED = 3  # provider rejection
PC_TRANSFER_SYNTAXES_NOT_SUPPORTED = 4  # provider rejection
PC_RESULTS = {
    PC_ACCEPTANCE: "acceptance",
    PC_USER_REJECTION: "user-rejection",
    PC_NO_REASON: "no-reason (provider rejection)",
    PC_ABSTRACT_SYNTAX_NOT_SUPPORTED: "abstract-syntax-not-supported (provider rejection)",
    PC_TRANSFER_SYNTAXES_NOT_SUPPORTED: "transfer-syntaxes-not-supported (provider rejection)",
}

# User-Identity-Type (PS3.7 Table D.3-14).
USER_IDENTITY_USERNAME = 1
USER_IDENTITY_USERNAME_AND_PASSCODE = 2
USER_IDENTITY_KERBEROS = 3
USER_IDENTITY_SAML = 4
USER_IDENTITY_JWT = 5

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">L")
_ITEM_HEADER = struct.Struct(">BBH")  # item type, reserved (or version), item length
_MAX_U16 = 0xFFFF
_S = TypeVar("_S")


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


# ------------------------------------------------------------------------- items


@dataclass(frozen=True, slots=True)
class ApplicationContextItem:
    """Application Context Item, type 0x10 (PS3.8 9.3.2.1, Table 9-12).

    ``name`` is the application context name, 1.2.840.10008.3.1.1.1 for DICOM.
    """

    name: str

    def __post_init__(self) -> None:
        _norm_text(self, "name", "application context name")

    def encode(self) -> bytes:
        return _item(
            APPLICATION_CONTEXT_ITEM, self.name.encode("ascii"), "application context name"
        )


def decode_application_context_item(value: memoryview) -> ApplicationContextItem:
    return ApplicationContextItem(_text(value, "application context name"))


@dataclass(frozen=True, slots=True)
class AbstractSyntaxSubItem:
    """Abstract Syntax Sub-Item, type 0x30 (PS3.8 9.3.2.2.1, Table 9-14)."""

    uid: str

    def __post_init__(self) -> None:
        _norm_text(self, "uid", "abstract syntax name")

    def encode(self) -> bytes:
        return _item(ABSTRACT_SYNTAX_SUB_ITEM, self.uid.encode("ascii"), "abstract syntax name")


@dataclass(frozen=True, slots=True)
class TransferSyntaxSubItem:
    """Transfer Syntax Sub-Item, type 0x40 (PS3.8 9.3.2.2.2, Table 9-15)."""

    uid: str

    def __post_init__(self) -> None:
        _norm_text(self, "uid", "transfer syntax name")

    def encode(self) -> bytes:
        return _item(TRANSFER_SYNTAX_SUB_ITEM, self.uid.encode("ascii"), "transfer syntax name")


@dataclass(frozen=True, slots=True)
class PresentationContextRQItem:
    """Presentation Context Item of an A-ASSOCIATE-RQ, type 0x20 (PS3.8 9.3.2.2, Table 9-13).

    One abstract syntax and one or more transfer syntaxes, as plain strings. The
    context ID is any byte value here; that it is odd (PS3.8 9.3.2.2) and unique
    is checked by the negotiation layer, which answers per context instead of
    aborting the whole association.
    """

    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_int(self.context_id, "presentation context ID", 0xFF)
        _norm_text(self, "abstract_syntax", "abstract syntax name")
        _norm_uid_tuple(self, "transfer_syntaxes", "transfer syntaxes")
        if not self.transfer_syntaxes:
            raise ConfigurationError(
                f"presentation context {self.context_id} proposes no transfer syntax "
                "(PS3.8 9.3.2.2 requires one or more)"
            )

    def encode(self) -> bytes:
        parts = [
            bytes((self.context_id, 0, 0, 0)),
            AbstractSyntaxSubItem(self.abstract_syntax).encode(),
        ]
        parts += [TransferSyntaxSubItem(ts).encode() for ts in self.transfer_syntaxes]
        return _item(PRESENTATION_CONTEXT_RQ_ITEM, b"".join(parts), "presentation context item")


def decode_presentation_context_rq_item(value: memoryview) -> PresentationContextRQItem:
    if len(value) < 4:
        raise _invalid(f"presentation context item (0x20) is {len(value)} bytes, at least 4 needed")
    context_id = value[0]
    abstract: str | None = None
    transfer: list[str] = []
    where = f"presentation context {context_id} (0x20)"
    for item_type, sub in iter_items(value[4:], where):
        if item_type == ABSTRACT_SYNTAX_SUB_ITEM:
            if abstract is not None:
                raise _unexpected(f"{where}: more than one abstract syntax sub-item")
            abstract = _text(sub, "abstract syntax name")
        elif item_type == TRANSFER_SYNTAX_SUB_ITEM:
            transfer.append(_text(sub, "transfer syntax name"))
        elif item_type in KNOWN_ITEM_TYPES:
            raise _unexpected(f"{where}: unexpected sub-item 0x{item_type:02x}")
        else:
            raise _unrecognized(f"{where}: unrecognized sub-item 0x{item_type:02x}")
    if abstract is None:
        raise _invalid(f"{where}: no abstract syntax sub-item")
    if not transfer:
        raise _invalid(f"{where}: no transfer syntax sub-item")
    return PresentationContextRQItem(context_id, abstract, tuple(transfer))


@dataclass(frozen=True, slots=True)
class PresentationContextACItem:
    """Presentation Context Item of an A-ASSOCIATE-AC, type 0x21 (PS3.8 9.3.3.2, Table 9-17).

    ``result`` is one of the ``PC_*`` constants (0 to 4). ``transfer_syntax`` is
    ``None`` when the transfer syntax sub-item was absent on the wire, which some
    acceptors do for rejected contexts; an acceptance must name one. For a
    rejection the value is not significant (PS3.8 Table 9-17) and is not checked.
    """

    context_id: int
    result: int
    transfer_syntax: str | None

    def __post_init__(self) -> None:
        _check_int(self.context_id, "presentation context ID", 0xFF)
        if type(self.result) is not int or self.result not in PC_RESULTS:
            raise ConfigurationError(
                f"presentation context result must be 0 to 4 (PS3.8 Table 9-18), "
                f"got {self.result!r}"
            )
        if self.transfer_syntax is None:
            if self.result == PC_ACCEPTANCE:
                raise ConfigurationError(
                    f"accepted presentation context {self.context_id} must name a transfer syntax"
                )
        else:
            _norm_text(self, "transfer_syntax", "transfer syntax name")

    @property
    def accepted(self) -> bool:
        return self.result == PC_ACCEPTANCE

    def encode(self) -> bytes:
        value = bytes((self.context_id, 0, self.result, 0))
        if self.transfer_syntax is not None:
            value += TransferSyntaxSubItem(self.transfer_syntax).encode()
        return _item(PRESENTATION_CONTEXT_AC_ITEM, value, "presentation context item")


def decode_presentation_context_ac_item(value: memoryview) -> PresentationContextACItem:
    if len(value) < 4:
        raise _invalid(f"presentation context item (0x21) is {len(value)} bytes, at least 4 needed")
    context_id = value[0]
    result = value[2]
    where = f"presentation context {context_id} (0x21)"
    if result not in PC_RESULTS:
        raise _invalid(f"{where}: result/reason {result} is not one of 0-4 (PS3.8 Table 9-18)")
    transfer: str | None = None
    for item_type, sub in iter_items(value[4:], where):
        if item_type == TRANSFER_SYNTAX_SUB_ITEM:
            if transfer is not None:
                raise _unexpected(f"{where}: more than one transfer syntax sub-item")
            transfer = _text(sub, "transfer syntax name")
        elif item_type in KNOWN_ITEM_TYPES:
            raise _unexpected(f"{where}: unexpected sub-item 0x{item_type:02x}")
        else:
            raise _unrecognized(f"{where}: unrecognized sub-item 0x{item_type:02x}")
    if transfer is None and result == PC_ACCEPTANCE:
        raise _invalid(f"{where}: accepted without a transfer syntax sub-item")
    return PresentationContextACItem(context_id, result, transfer)


# ------------------------------------------------------- user information sub-items


@dataclass(frozen=True, slots=True)
class MaximumLengthSubItem:
    """Maximum Length Sub-Item, type 0x51 (PS3.8 D.1.1, Table D.1-1).

    The largest P-DATA-TF variable field (PDU length) the sender will receive;
    0 means no limit.
    """

    maximum_length: int

    def __post_init__(self) -> None:
        _check_int(self.maximum_length, "maximum length", 0xFFFFFFFF)

    def encode(self) -> bytes:
        return _ITEM_HEADER.pack(MAXIMUM_LENGTH_SUB_ITEM, 0, 4) + _U32.pack(self.maximum_length)


def _decode_maximum_length(value: memoryview) -> MaximumLengthSubItem:
    if len(value) != 4:
        raise _invalid(f"maximum length sub-item (0x51) has length {len(value)}, must be 4")
    return MaximumLengthSubItem(_U32.unpack(value)[0])


@dataclass(frozen=True, slots=True)
class ImplementationClassUIDSubItem:
    """Implementation Class UID Sub-Item, type 0x52 (PS3.7 D.3.3.2.1, Table D.3-1)."""

    uid: str

    def __post_init__(self) -> None:
        _norm_text(self, "uid", "implementation class UID")

    def encode(self) -> bytes:
        return _item(
            IMPLEMENTATION_CLASS_UID_SUB_ITEM, self.uid.encode("ascii"), "implementation class UID"
        )


def _decode_implementation_class_uid(value: memoryview) -> ImplementationClassUIDSubItem:
    return ImplementationClassUIDSubItem(_text(value, "implementation class UID"))


@dataclass(frozen=True, slots=True)
class AsynchronousOperationsWindowSubItem:
    """Asynchronous Operations Window Sub-Item, type 0x53 (PS3.7 D.3.3.3, Table D.3-7).

    0 in either field means unlimited.
    """

    max_operations_invoked: int
    max_operations_performed: int

    def __post_init__(self) -> None:
        _check_int(self.max_operations_invoked, "maximum number of operations invoked", 0xFFFF)
        _check_int(self.max_operations_performed, "maximum number of operations performed", 0xFFFF)

    def encode(self) -> bytes:
        return struct.pack(
            ">BBHHH",
            ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM,
            0,
            4,
            self.max_operations_invoked,
            self.max_operations_performed,
        )


def _decode_async_ops(value: memoryview) -> AsynchronousOperationsWindowSubItem:
    if len(value) != 4:
        raise _invalid(
            f"asynchronous operations window sub-item (0x53) has length {len(value)}, must be 4"
        )
    invoked, performed = struct.unpack(">HH", value)
    return AsynchronousOperationsWindowSubItem(invoked, performed)


@dataclass(frozen=True, slots=True)
class RoleSelectionSubItem:
    """SCP/SCU Role Selection Sub-Item, type 0x54 (PS3.7 D.3.3.4, Table D.3-9).

    On receipt any non-zero role byte reads as ``True``.
    """

    sop_class_uid: str
    scu_role: bool
    scp_role: bool

    def __post_init__(self) -> None:
        _norm_text(self, "sop_class_uid", "role selection SOP class UID")
        _check_bool(self.scu_role, "scu_role")
        _check_bool(self.scp_role, "scp_role")

    def encode(self) -> bytes:
        value = _uid_field(self.sop_class_uid, "role selection SOP class UID") + bytes(
            (self.scu_role, self.scp_role)
        )
        return _item(ROLE_SELECTION_SUB_ITEM, value, "role selection sub-item")


def _decode_role_selection(value: memoryview) -> RoleSelectionSubItem:
    what = "role selection sub-item (0x54)"
    uid, offset = _read_u16_field(value, 0, f"{what} UID")
    if len(value) - offset != 2:
        raise _invalid(
            f"{what}: UID length {len(uid)} leaves {len(value) - offset} bytes for the "
            "two role bytes, must be 2"
        )
    return RoleSelectionSubItem(
        _text(uid, "role selection SOP class UID"),
        _byte_flag(value[offset]),
        _byte_flag(value[offset + 1]),
    )


@dataclass(frozen=True, slots=True)
class ImplementationVersionNameSubItem:
    """Implementation Version Name Sub-Item, type 0x55 (PS3.7 D.3.3.2.3, Table D.3-3).

    PS3.7 asks for 1 to 16 characters; longer names from peers are accepted.
    """

    name: str

    def __post_init__(self) -> None:
        _norm_text(self, "name", "implementation version name")

    def encode(self) -> bytes:
        return _item(
            IMPLEMENTATION_VERSION_NAME_SUB_ITEM,
            self.name.encode("ascii"),
            "implementation version name",
        )


def _decode_implementation_version_name(value: memoryview) -> ImplementationVersionNameSubItem:
    return ImplementationVersionNameSubItem(_text(value, "implementation version name"))


@dataclass(frozen=True, slots=True)
class SOPClassExtendedNegotiationSubItem:
    """SOP Class Extended Negotiation Sub-Item, type 0x56 (PS3.7 D.3.3.5, Table D.3-11).

    ``service_class_application_information`` is opaque here; each service
    class defines its meaning (e.g. PS3.4 C.5 for query/retrieve).
    """

    sop_class_uid: str
    service_class_application_information: bytes

    def __post_init__(self) -> None:
        _norm_text(self, "sop_class_uid", "extended negotiation SOP class UID")
        _norm_bytes(
            self,
            "service_class_application_information",
            "service class application information",
        )

    def encode(self) -> bytes:
        value = (
            _uid_field(self.sop_class_uid, "extended negotiation SOP class UID")
            + self.service_class_application_information
        )
        return _item(
            SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM, value, "SOP class extended negotiation"
        )


def _decode_extended_negotiation(value: memoryview) -> SOPClassExtendedNegotiationSubItem:
    uid, offset = _read_u16_field(value, 0, "SOP class extended negotiation sub-item (0x56) UID")
    return SOPClassExtendedNegotiationSubItem(
        _text(uid, "extended negotiation SOP class UID"), bytes(value[offset:])
    )


@dataclass(frozen=True, slots=True)
class SOPClassCommonExtendedNegotiationSubItem:
    """SOP Class Common Extended Negotiation Sub-Item, type 0x57 (PS3.7 D.3.3.6, Table D.3-12).

    Its second byte is the Sub-Item-version, 0 in the version defined by PS3.7;
    it is written as 0 and not tested on receipt. Bytes after the related general
    SOP class identification field (the trailing reserved field of Table D.3-12)
    are ignored on receipt and not written.
    """

    sop_class_uid: str
    service_class_uid: str
    related_general_sop_class_uids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _norm_text(self, "sop_class_uid", "common extended negotiation SOP class UID")
        _norm_text(self, "service_class_uid", "common extended negotiation service class UID")
        _norm_uid_tuple(self, "related_general_sop_class_uids", "related general SOP class UIDs")

    def encode(self) -> bytes:
        what = "SOP class common extended negotiation"
        related = b"".join(
            _uid_field(uid, "related general SOP class UID")
            for uid in self.related_general_sop_class_uids
        )
        value = b"".join(
            (
                _uid_field(self.sop_class_uid, f"{what} SOP class UID"),
                _uid_field(self.service_class_uid, f"{what} service class UID"),
                _U16.pack(_fit_u16(len(related), "related general SOP class identification")),
                related,
            )
        )
        return _item(SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM, value, what)


def _decode_common_extended_negotiation(
    value: memoryview,
) -> SOPClassCommonExtendedNegotiationSubItem:
    what = "SOP class common extended negotiation sub-item (0x57)"
    sop, offset = _read_u16_field(value, 0, f"{what} SOP class UID")
    service, offset = _read_u16_field(value, offset, f"{what} service class UID")
    related_field, _ = _read_u16_field(value, offset, f"{what} related general SOP class field")
    related: list[str] = []
    offset = 0
    while offset < len(related_field):
        uid, offset = _read_u16_field(
            related_field, offset, f"{what} related general SOP class UID"
        )
        related.append(_text(uid, "related general SOP class UID"))
    return SOPClassCommonExtendedNegotiationSubItem(
        _text(sop, "common extended negotiation SOP class UID"),
        _text(service, "common extended negotiation service class UID"),
        tuple(related),
    )


@dataclass(frozen=True, slots=True)
class UserIdentityRQSubItem:
    """User Identity Sub-Item of an A-ASSOCIATE-RQ, type 0x58 (PS3.7 D.3.3.7.1, Table D.3-14).

    ``identity_type`` is one of the ``USER_IDENTITY_*`` constants (1 username,
    2 username and passcode, 3 Kerberos, 4 SAML, 5 JWT); other values are kept
    for the acceptor to refuse. ``secondary_field`` is the passcode for type 2
    and empty otherwise. On receipt a non-zero positive-response byte reads as
    ``True``.
    """

    identity_type: int
    positive_response_requested: bool
    primary_field: bytes
    secondary_field: bytes = b""

    def __post_init__(self) -> None:
        _check_int(self.identity_type, "user identity type", 0xFF)
        _check_bool(self.positive_response_requested, "positive_response_requested")
        _norm_bytes(self, "primary_field", "user identity primary field")
        _norm_bytes(self, "secondary_field", "user identity secondary field")

    def __repr__(self) -> str:
        # Never print a passcode or token into a log or a traceback.
        return (
            f"UserIdentityRQSubItem(identity_type={self.identity_type}, "
            f"positive_response_requested={self.positive_response_requested}, "
            f"primary_field=<{len(self.primary_field)} bytes>, "
            f"secondary_field=<{len(self.secondary_field)} bytes>)"
        )

    def encode(self) -> bytes:
        primary = self.primary_field
        secondary = self.secondary_field
        value = b"".join(
            (
                bytes((self.identity_type, self.positive_response_requested)),
                _U16.pack(_fit_u16(len(primary), "user identity primary field")),
                primary,
                _U16.pack(_fit_u16(len(secondary), "user identity secondary field")),
                secondary,
            )
        )
        return _item(USER_IDENTITY_RQ_SUB_ITEM, value, "user identity sub-item")


def _decode_user_identity_rq(value: memoryview) -> UserIdentityRQSubItem:
    what = "user identity sub-item (0x58)"
    if len(value) < 2:
        raise _invalid(f"{what} is {len(value)} bytes, at least 6 needed")
    primary, offset = _read_u16_field(value, 2, f"{what} primary field")
    secondary, offset = _read_u16_field(value, offset, f"{what} secondary field")
    if offset != len(value):
        raise _invalid(f"{what}: {len(value) - offset} bytes after the secondary field")
    return UserIdentityRQSubItem(value[0], _byte_flag(value[1]), bytes(primary), bytes(secondary))


@dataclass(frozen=True, slots=True)
class UserIdentityACSubItem:
    """User Identity Sub-Item of an A-ASSOCIATE-AC, type 0x59 (PS3.7 D.3.3.7.2, Table D.3-15)."""

    server_response: bytes

    def __post_init__(self) -> None:
        _norm_bytes(self, "server_response", "user identity server response")

    def __repr__(self) -> str:
        return f"UserIdentityACSubItem(server_response=<{len(self.server_response)} bytes>)"

    def encode(self) -> bytes:
        response = self.server_response
        value = _U16.pack(_fit_u16(len(response), "user identity server response")) + response
        return _item(USER_IDENTITY_AC_SUB_ITEM, value, "user identity sub-item")


def _decode_user_identity_ac(value: memoryview) -> UserIdentityACSubItem:
    what = "user identity sub-item (0x59)"
    response, offset = _read_u16_field(value, 0, f"{what} server response")
    if offset != len(value):
        raise _invalid(f"{what}: {len(value) - offset} bytes after the server response")
    return UserIdentityACSubItem(bytes(response))


@dataclass(frozen=True, slots=True)
class UnknownSubItem:
    """A user information sub-item of a type this module does not know, kept as is.

    PS3.7 D.3.3 and PS3.8 D.1: the receiver ignores sub-items it does not
    recognise. ``encode()`` writes it back unchanged (reserved byte as zero).
    """

    item_type: int
    data: bytes

    def __post_init__(self) -> None:
        _check_int(self.item_type, "sub-item type", 0xFF)
        if self.item_type in _SUB_ITEM_DECODERS:
            raise ConfigurationError(
                f"sub-item type 0x{self.item_type:02x} is known; use its own class"
            )
        _norm_bytes(self, "data", "sub-item data")

    def encode(self) -> bytes:
        return _item(self.item_type, self.data, f"sub-item 0x{self.item_type:02x}")


SubItem: TypeAlias = (
    MaximumLengthSubItem
    | ImplementationClassUIDSubItem
    | AsynchronousOperationsWindowSubItem
    | RoleSelectionSubItem
    | ImplementationVersionNameSubItem
    | SOPClassExtendedNegotiationSubItem
    | SOPClassCommonExtendedNegotiationSubItem
    | UserIdentityRQSubItem
    | UserIdentityACSubItem
    | UnknownSubItem
)

_SUB_ITEM_CLASSES = (
    MaximumLengthSubItem,
    ImplementationClassUIDSubItem,
    AsynchronousOperationsWindowSubItem,
    RoleSelectionSubItem,
    ImplementationVersionNameSubItem,
    SOPClassExtendedNegotiationSubItem,
    SOPClassCommonExtendedNegotiationSubItem,
    UserIdentityRQSubItem,
    UserIdentityACSubItem,
    UnknownSubItem,
)

_SUB_ITEM_DECODERS: dict[int, Callable[[memoryview], SubItem]] = {
    MAXIMUM_LENGTH_SUB_ITEM: _decode_maximum_length,
    IMPLEMENTATION_CLASS_UID_SUB_ITEM: _decode_implementation_class_uid,
    ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM: _decode_async_ops,
    ROLE_SELECTION_SUB_ITEM: _decode_role_selection,
    IMPLEMENTATION_VERSION_NAME_SUB_ITEM: _decode_implementation_version_name,
    SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM: _decode_extended_negotiation,
    SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM: _decode_common_extended_negotiation,
    USER_IDENTITY_RQ_SUB_ITEM: _decode_user_identity_rq,
    USER_IDENTITY_AC_SUB_ITEM: _decode_user_identity_ac,
}


@dataclass(frozen=True, slots=True)
class UserInformationItem:
    """User Information Item, type 0x50 (PS3.8 9.3.2.3 and 9.3.3.3, Annex D).

    ``sub_items`` keeps the order of the wire. The properties pick out the
    sub-items by kind (the first one where only one is meaningful).
    """

    sub_items: tuple[SubItem, ...] = ()

    def __post_init__(self) -> None:
        value = self.sub_items
        if not isinstance(value, tuple):
            if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
                raise ConfigurationError(f"sub_items must be a sequence, got {value!r}")
            value = tuple(value)
            object.__setattr__(self, "sub_items", value)
        for sub in value:
            if not isinstance(sub, _SUB_ITEM_CLASSES):
                raise ConfigurationError(f"not a user information sub-item: {sub!r}")

    def encode(self) -> bytes:
        value = b"".join(sub.encode() for sub in self.sub_items)
        return _item(USER_INFORMATION_ITEM, value, "user information item")

    def _first(self, cls: type[_S]) -> _S | None:
        for sub in self.sub_items:
            if isinstance(sub, cls):
                return sub
        return None

    @property
    def maximum_length(self) -> int | None:
        """Maximum-length-received of the first maximum length sub-item (0 = no limit)."""
        sub = self._first(MaximumLengthSubItem)
        return None if sub is None else sub.maximum_length

    @property
    def implementation_class_uid(self) -> str | None:
        sub = self._first(ImplementationClassUIDSubItem)
        return None if sub is None else sub.uid

    @property
    def implementation_version_name(self) -> str | None:
        sub = self._first(ImplementationVersionNameSubItem)
        return None if sub is None else sub.name

    @property
    def async_ops_window(self) -> AsynchronousOperationsWindowSubItem | None:
        return self._first(AsynchronousOperationsWindowSubItem)

    @property
    def role_selections(self) -> tuple[RoleSelectionSubItem, ...]:
        return tuple(s for s in self.sub_items if isinstance(s, RoleSelectionSubItem))

    @property
    def extended_negotiations(self) -> tuple[SOPClassExtendedNegotiationSubItem, ...]:
        return tuple(s for s in self.sub_items if isinstance(s, SOPClassExtendedNegotiationSubItem))

    @property
    def common_extended_negotiations(
        self,
    ) -> tuple[SOPClassCommonExtendedNegotiationSubItem, ...]:
        return tuple(
            s for s in self.sub_items if isinstance(s, SOPClassCommonExtendedNegotiationSubItem)
        )

    @property
    def user_identity_rq(self) -> UserIdentityRQSubItem | None:
        return self._first(UserIdentityRQSubItem)

    @property
    def user_identity_ac(self) -> UserIdentityACSubItem | None:
        return self._first(UserIdentityACSubItem)

    @property
    def unknown_sub_items(self) -> tuple[UnknownSubItem, ...]:
        return tuple(s for s in self.sub_items if isinstance(s, UnknownSubItem))


def decode_user_information_item(value: memoryview) -> UserInformationItem:
    subs: list[SubItem] = []
    for item_type, sub in iter_items(value, "user information item (0x50)"):
        decoder = _SUB_ITEM_DECODERS.get(item_type)
        if decoder is None:
            subs.append(UnknownSubItem(item_type, bytes(sub)))
        else:
            subs.append(decoder(sub))
    return UserInformationItem(tuple(subs))


Item: TypeAlias = (
    ApplicationContextItem
    | AbstractSyntaxSubItem
    | TransferSyntaxSubItem
    | PresentationContextRQItem
    | PresentationContextACItem
    | UserInformationItem
    | SubItem
)

_ITEM_DECODERS: dict[int, Callable[[memoryview], Item]] = {
    APPLICATION_CONTEXT_ITEM: decode_application_context_item,
    PRESENTATION_CONTEXT_RQ_ITEM: decode_presentation_context_rq_item,
    PRESENTATION_CONTEXT_AC_ITEM: decode_presentation_context_ac_item,
    ABSTRACT_SYNTAX_SUB_ITEM: lambda value: AbstractSyntaxSubItem(_text(value, "abstract syntax")),
    TRANSFER_SYNTAX_SUB_ITEM: lambda value: TransferSyntaxSubItem(_text(value, "transfer syntax")),
    USER_INFORMATION_ITEM: decode_user_information_item,
    **_SUB_ITEM_DECODERS,
}


def decode_item(data: bytes | bytearray | memoryview) -> Item:
    """Decode exactly one item or sub-item, its 4-byte header included.

    Any type this module does not know comes back as an ``UnknownSubItem``.
    Raises ``RemoteProtocolError`` if ``data`` is not exactly one valid item.
    """
    view = memoryview(data).cast("B")
    items = iter_items(view, "item")
    try:
        item_type, value = next(items)
    except StopIteration:
        raise _invalid("no item: 0 bytes") from None
    if len(value) + 4 != len(view):
        raise _invalid(f"item 0x{item_type:02x} is followed by {len(view) - len(value) - 4} bytes")
    decoder = _ITEM_DECODERS.get(item_type)
    try:
        if decoder is None:
            return UnknownSubItem(item_type, bytes(value))
        return decoder(value)
    except ConfigurationError as exc:
        raise _invalid(f"item 0x{item_type:02x}: {exc}") from None
