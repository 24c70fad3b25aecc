"""DIMSE status codes as values (PS3.7 Annex C; PS3.4 B.2.3, C.4.1-C.4.3).

A :class:`Status` wraps the Status (0000,0900) of a response. Its category
follows the class convention of PS3.7 Annex C:

=========  =========================================================
success    0000
warning    0001, Bxxx, 0107, 0116
failure    Axxx, Cxxx, 01xx (except 0107, 0116), 02xx
cancel     FE00
pending    FF00, FF01
=========  =========================================================

Codes outside every class are not allowed (PS3.7 Annex C); we classify them as
*failure*, because an SCU that took an unknown code for success could lose data.

Descriptions are looked up in the table of the service given (the same code
means different things in Storage and in Query/Retrieve, e.g. B000), then in
the general table, then in the service's ranges (A7xx, Cxxx...). A code none
of them defines is worded by its class and what is wrong with it, e.g.
``Failure: a code C-STORE does not define`` for A123H (Axxx, Bxxx and Cxxx are
assigned per service in PS3.4: one its table lacks means nothing more than its
class), ``Pending: a code C-STORE does not define`` for FF00H (a C-STORE has
one response: PS3.7 9.1.1), ``Failure: a code in no status class`` for 1234H.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from dicomnet.errors import StatusError

__all__ = [
    "CANCEL",
    "CANNOT_UNDERSTAND",
    "COERCION_OF_DATA_ELEMENTS",
    "DATASET_DOES_NOT_MATCH_SOP_CLASS",
    "DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING",
    "DUPLICATE_SOP_INSTANCE",
    "ELEMENTS_DISCARDED",
    "OUT_OF_RESOURCES",
    "PENDING",
    "PENDING_WARNING",
    "PROCESSING_FAILURE",
    "SOP_CLASS_NOT_SUPPORTED",
    "SUCCESS",
    "Category",
    "Service",
    "Status",
    "category_of",
]

Category = Literal["success", "warning", "failure", "cancel", "pending"]
#: Which service's table explains a code: C-STORE, C-FIND, C-GET, C-MOVE, C-ECHO, or
#: (None) the general one.
Service = Literal["storage", "find", "get", "move", "echo"]

SUCCESS: Final = 0x0000
CANCEL: Final = 0xFE00
PENDING: Final = 0xFF00
PENDING_WARNING: Final = 0xFF01

# C-STORE (PS3.4 B.2.3; the 01xx are general, PS3.7 C): what a server answers,
# and what an ``on_c_store`` handler may return, by name.
PROCESSING_FAILURE: Final = 0x0110
DUPLICATE_SOP_INSTANCE: Final = 0x0111
SOP_CLASS_NOT_SUPPORTED: Final = 0x0122
OUT_OF_RESOURCES: Final = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS: Final = 0xA900
CANNOT_UNDERSTAND: Final = 0xC000
COERCION_OF_DATA_ELEMENTS: Final = 0xB000
ELEMENTS_DISCARDED: Final = 0xB006
DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING: Final = 0xB007

# PS3.7 C.1-C.6: the general statuses, valid for any DIMSE service.
_GENERAL: Final[dict[int, str]] = {
    0x0000: "Success",
    0x0001: "Requested optional attributes are not supported",
    0x0105: "No such attribute",
    0x0106: "Invalid attribute value",
    0x0107: "Attribute list error",
    0x0110: "Processing failure",
    0x0111: "Duplicate SOP Instance",
    0x0112: "No such SOP Instance",
    0x0113: "No such event type",
    0x0114: "No such argument",
    0x0115: "Invalid argument value",
    0x0116: "Attribute value out of range",
    0x0117: "Invalid SOP Instance",
    0x0118: "No such SOP Class",
    0x0119: "Class-instance conflict",
    0x0120: "Missing attribute",
    0x0121: "Missing attribute value",
    0x0122: "Refused: SOP Class not supported",
    0x0123: "No such action",
    0x0124: "Refused: not authorized",
    0x0210: "Duplicate invocation",
    0x0211: "Unrecognized operation",
    0x0212: "Mistyped argument",
    0x0213: "Resource limitation",
    0xFE00: "Cancel",
    0xFF00: "Pending",
    0xFF01: "Pending: warning",
}

_QR_COMMON: Final[dict[int, str]] = {
    0xA900: "Error: identifier does not match SOP Class",
    0xFE00: "Cancel: sub-operations terminated due to cancel indication",
}

# PS3.4 B.2.3 (Storage), C.4.1.1.4 (C-FIND), C.4.2.1.5 (C-MOVE), C.4.3.1.4 (C-GET).
_SERVICE: Final[dict[str, dict[int, str]]] = {
    "storage": {
        0xB000: "Warning: coercion of data elements",
        0xB006: "Warning: elements discarded",
        0xB007: "Warning: data set does not match SOP Class",
    },
    "find": {
        **_QR_COMMON,
        0xA700: "Refused: out of resources",
        0xFE00: "Cancel: matching terminated due to cancel request",
        0xFF00: "Pending: matches are continuing",
        0xFF01: "Pending: matches are continuing, optional keys not supported",
    },
    "get": {
        **_QR_COMMON,
        0xA701: "Refused: out of resources, unable to calculate number of matches",
        0xA702: "Refused: out of resources, unable to perform sub-operations",
        0xB000: "Warning: sub-operations complete, one or more failures or warnings",
        0xFF00: "Pending: sub-operations are continuing",
    },
    "move": {
        **_QR_COMMON,
        0xA701: "Refused: out of resources, unable to calculate number of matches",
        0xA702: "Refused: out of resources, unable to perform sub-operations",
        0xA801: "Refused: move destination unknown",
        0xB000: "Warning: sub-operations complete, one or more failures or warnings",
        0xFF00: "Pending: sub-operations are continuing",
    },
    # PS3.7 9.1.5.1.4: a C-ECHO's statuses are general ones (Success, 0122H, 0210H...).
    "echo": {},
}

#: How an undefined code names its service (PS3.7 9.3: the operation the table is of).
_SERVICE_NAMES: Final[dict[str, str]] = {
    "storage": "C-STORE", "find": "C-FIND", "get": "C-GET", "move": "C-MOVE", "echo": "C-ECHO"}

#: General codes a service's responses never carry: a C-STORE and a C-ECHO have
#: one response each and no C-CANCEL (PS3.7 9.1.1, 9.1.5; PS3.4 B.2.3).
_NOT_DEFINED: Final[dict[str, frozenset[int]]] = {
    "storage": frozenset({0xFE00, 0xFF00, 0xFF01}),
    "echo": frozenset({0xFE00, 0xFF00, 0xFF01}),
}

# (mask, value, description): implementation-assigned ranges such as A7xx.
_RANGES: Final[dict[str, tuple[tuple[int, int, str], ...]]] = {
    "storage": (
        (0xFF00, 0xA700, "Refused: out of resources"),
        (0xFF00, 0xA900, "Error: data set does not match SOP Class"),
        (0xF000, 0xC000, "Error: cannot understand"),
    ),
    "find": ((0xF000, 0xC000, "Failed: unable to process"),),
    "get": ((0xF000, 0xC000, "Failed: unable to process"),),
    "move": ((0xF000, 0xC000, "Failed: unable to process"),),
    "echo": (),
}


def category_of(code: int) -> Category:
    """Return the status class of ``code`` by the convention of PS3.7 Annex C."""
    if code == 0x0000:
        return "success"
    if code in (0xFF00, 0xFF01):
        return "pending"
    if code == 0xFE00:
        return "cancel"
    if code in (0x0001, 0x0107, 0x0116) or code >> 12 == 0xB:
        return "warning"
    # Axxx, Cxxx, 01xx, 02xx - and, deliberately, any code outside every class.
    return "failure"


def _in_a_class(code: int) -> bool:
    """Whether ``code`` is in one of the classes of PS3.7 Annex C ("Implementations
    shall not use Status Codes with values not listed")."""
    return (code in (0x0000, 0x0001, 0xFE00, 0xFF00, 0xFF01)
            or code >> 12 in (0xA, 0xB, 0xC) or code >> 8 in (0x01, 0x02))


@dataclass(frozen=True, slots=True, eq=False)
class Status:
    """The Status (0000,0900) of a DIMSE response, as a value (PS3.7 Annex C).

    ``service`` picks the service-specific table used by :attr:`description`;
    it does not change :attr:`category`, which Annex C fixes for every service.
    A status equals its code: ``status == 0``, ``status == SUCCESS`` and
    ``Status(0xA700, "storage") == Status(0xA700)`` hold (the code is what went
    on the wire; the service only words it).
    """

    code: int
    service: Service | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.code <= 0xFFFF:
            raise ValueError(f"status code out of range: {self.code}")

    def __int__(self) -> int:
        return self.code

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Status):
            return self.code == other.code
        if isinstance(other, int) and not isinstance(other, bool):
            return self.code == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.code)  # as the int it equals

    def __str__(self) -> str:
        # "0xB000 (warning: coercion of data elements)": the class said once.
        words = self.description.removeprefix(f"{self.category.capitalize()}: ")
        return f"0x{self.code:04X} ({self.category}: {words})"

    @property
    def category(self) -> Category:
        """One of ``success``, ``warning``, ``failure``, ``cancel``, ``pending``."""
        return category_of(self.code)

    @property
    def description(self) -> str:
        """The meaning of the code in words, from PS3.7 Annex C or PS3.4; for a code
        the service does not define, its class and why it has no meaning (see the
        module docstring): ``Failure: a code C-STORE does not define``."""
        text = self._defined()
        if text is not None:
            return text
        if not _in_a_class(self.code):
            why = "a code in no status class (PS3.7 Annex C)"
        elif self.service is not None:
            why = f"a code {_SERVICE_NAMES[self.service]} does not define"
        else:
            why = "not a general code (PS3.7 Annex C); its service may define it"
        return f"{self.category.capitalize()}: {why}"

    def _defined(self) -> str | None:
        """The words of the service's table, the general one or the service's ranges."""
        service = self.service
        if service is not None:
            text = _SERVICE[service].get(self.code)
            if text is not None:
                return text
            if self.code in _NOT_DEFINED.get(service, ()):
                return None
        text = _GENERAL.get(self.code)
        if text is not None:
            return text
        if service is not None:
            for mask, value, text in _RANGES[service]:
                if self.code & mask == value:
                    return text
        return None

    @property
    def is_success(self) -> bool:
        """Success: 0000H (PS3.7 Annex C)."""
        return self.code == 0x0000

    @property
    def is_warning(self) -> bool:
        """A Warning (0001H, Bxxx, 0107H, 0116H): performed, with a remark (PS3.7 Annex C)."""
        return self.category == "warning"

    @property
    def is_failure(self) -> bool:
        """A Failure, or a code of no class (see ``category_of``; PS3.7 Annex C)."""
        return self.category == "failure"

    @property
    def is_cancel(self) -> bool:
        """Cancel: FE00H, the operation ended by a C-CANCEL (PS3.7 Annex C)."""
        return self.code == 0xFE00

    @property
    def is_pending(self) -> bool:
        """Pending: FF00H or FF01H, more responses follow (PS3.7 Annex C)."""
        return self.code in (0xFF00, 0xFF01)

    @property
    def is_final(self) -> bool:
        """True unless the response is one of a pending series (PS3.7 9.1.2.1.6)."""
        return not self.is_pending

    def raise_for_status(self) -> None:
        """Raise :class:`~dicomnet.errors.StatusError` if this is a failure status.

        Warnings, cancel and pending are not failures: the operation did what a
        warning or a cancel says, and a pending response is not the last word.
        """
        if self.is_failure:
            raise StatusError(self.code, f"DIMSE status 0x{self.code:04X}: {self.description}")
