"""Items and sub-items of the A-ASSOCIATE-RQ and A-ASSOCIATE-AC variable fields.

PS3.8 9.3.2.1-9.3.2.3 and 9.3.3.1-9.3.3.3 (application context, presentation
context and user information items), PS3.8 Annex D.1 (maximum length) and PS3.7
Annex D.3.3 (implementation identification, asynchronous operations window,
SCP/SCU role selection, SOP class extended and common extended negotiation,
user identity).

This module defines the application context item, the abstract and transfer
syntax sub-items, the presentation context items and ``decode_item``. The user
information item and its sub-items live in ``dicomnet.ul.user_information``
and the shared low-level pieces (item type codes, header, error and check
helpers) in ``dicomnet.ul.codec``; every name of ``__all__`` below is
re-exported here, so ``from dicomnet.ul.items import ...`` works for all of them.

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

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from dicomnet.errors import ConfigurationError
from dicomnet.ul.codec import (
    ABSTRACT_SYNTAX_SUB_ITEM,
    APPLICATION_CONTEXT_ITEM,
    ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM,
    IMPLEMENTATION_CLASS_UID_SUB_ITEM,
    IMPLEMENTATION_VERSION_NAME_SUB_ITEM,
    KNOWN_ITEM_TYPES,
    MAXIMUM_LENGTH_SUB_ITEM,
    PRESENTATION_CONTEXT_AC_ITEM,
    PRESENTATION_CONTEXT_RQ_ITEM,
    ROLE_SELECTION_SUB_ITEM,
    SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM,
    SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM,
    TRANSFER_SYNTAX_SUB_ITEM,
    USER_IDENTITY_AC_SUB_ITEM,
    USER_IDENTITY_RQ_SUB_ITEM,
    USER_INFORMATION_ITEM,
    _check_int,
    _invalid,
    _item,
    _norm_text,
    _norm_uid_tuple,
    _text,
    _unexpected,
    _unrecognized,
    iter_items,
)
from dicomnet.ul.user_information import (
    _SUB_ITEM_DECODERS,
    USER_IDENTITY_JWT,
    USER_IDENTITY_KERBEROS,
    USER_IDENTITY_SAML,
    USER_IDENTITY_USERNAME,
    USER_IDENTITY_USERNAME_AND_PASSCODE,
    AsynchronousOperationsWindowSubItem,
    ImplementationClassUIDSubItem,
    ImplementationVersionNameSubItem,
    MaximumLengthSubItem,
    RoleSelectionSubItem,
    SOPClassCommonExtendedNegotiationSubItem,
    SOPClassExtendedNegotiationSubItem,
    SubItem,
    UnknownSubItem,
    UserIdentityACSubItem,
    UserIdentityRQSubItem,
    UserInformationItem,
    decode_user_information_item,
)

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
    in its request is checked by ``AssociateRQ``.
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
