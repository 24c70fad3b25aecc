"""The User Information item of A-ASSOCIATE-RQ/AC and its sub-items.

PS3.8 9.3.2.3 and 9.3.3.3 (user information item), PS3.8 Annex D.1 (maximum
length) and PS3.7 Annex D.3.3 (implementation identification, asynchronous
operations window, SCP/SCU role selection, SOP class extended and common
extended negotiation, user identity).

Every name exported here is also exported by ``dicomnet.ul.items``, which
remains the usual place to import them from.

Contracts
---------
The item contracts of ``dicomnet.ul.items`` apply (frozen, slotted dataclasses;
``ConfigurationError`` from constructors and ``encode()``; ``decode_*`` take the
item value and raise ``RemoteProtocolError``), and in addition:

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

from dicomnet.errors import ConfigurationError
from dicomnet.ul.codec import (
    _ITEM_HEADER,
    _U16,
    _U32,
    ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM,
    IMPLEMENTATION_CLASS_UID_SUB_ITEM,
    IMPLEMENTATION_VERSION_NAME_SUB_ITEM,
    MAXIMUM_LENGTH_SUB_ITEM,
    ROLE_SELECTION_SUB_ITEM,
    SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM,
    SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM,
    USER_IDENTITY_AC_SUB_ITEM,
    USER_IDENTITY_RQ_SUB_ITEM,
    USER_INFORMATION_ITEM,
    _byte_flag,
    _check_bool,
    _check_int,
    _fit_u16,
    _invalid,
    _item,
    _norm_bytes,
    _norm_text,
    _norm_uid_tuple,
    _read_u16_field,
    _text,
    _uid_field,
    iter_items,
)

__all__ = [
    "USER_IDENTITY_KERBEROS",
    "USER_IDENTITY_JWT",
    "USER_IDENTITY_SAML",
    "USER_IDENTITY_USERNAME",
    "USER_IDENTITY_USERNAME_AND_PASSCODE",
    "AsynchronousOperationsWindowSubItem",
    "ImplementationClassUIDSubItem",
    "ImplementationVersionNameSubItem",
    "MaximumLengthSubItem",
    "RoleSelectionSubItem",
    "SOPClassCommonExtendedNegotiationSubItem",
    "SOPClassExtendedNegotiationSubItem",
    "SubItem",
    "UnknownSubItem",
    "UserIdentityACSubItem",
    "UserIdentityRQSubItem",
    "UserInformationItem",
    "decode_user_information_item",
]

# User-Identity-Type (PS3.7 Table D.3-14).
USER_IDENTITY_USERNAME = 1
USER_IDENTITY_USERNAME_AND_PASSCODE = 2
USER_IDENTITY_KERBEROS = 3
USER_IDENTITY_SAML = 4
USER_IDENTITY_JWT = 5

_S = TypeVar("_S")


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
        """The sub-item's bytes: type 58H, reserved, length, then user identity type,
        positive response requested, and each field after its 2-byte length
        (PS3.7 D.3.3.7.1, Table D.3-14)."""
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
