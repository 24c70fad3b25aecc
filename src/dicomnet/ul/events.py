"""Events the Upper Layer hands to its user: the indication and confirmation
primitives of PS3.8 section 7, as small frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass

from .pdata import PDataTF
from .pdu import AssociateAC, AssociateRJ, AssociateRQ

__all__ = [
    "Aborted",
    "AssociateAccepted",
    "AssociateRejected",
    "AssociateRequested",
    "DataReceived",
    "ReleaseConfirmed",
    "ReleaseRequested",
    "ULEvent",
]


@dataclass(frozen=True, slots=True)
class AssociateRequested:
    """A-ASSOCIATE indication (acceptor side): the peer asks for an association."""

    pdu: AssociateRQ


@dataclass(frozen=True, slots=True)
class AssociateAccepted:
    """A-ASSOCIATE confirmation, accepted (requestor side)."""

    pdu: AssociateAC


@dataclass(frozen=True, slots=True)
class AssociateRejected:
    """A-ASSOCIATE confirmation, rejected (requestor side)."""

    pdu: AssociateRJ


@dataclass(frozen=True, slots=True)
class DataReceived:
    """P-DATA indication: one P-DATA-TF PDU's presentation data values."""

    pdu: PDataTF


@dataclass(frozen=True, slots=True)
class ReleaseRequested:
    """A-RELEASE indication. ``collision`` is True when both sides asked at once
    (PS3.8 7.2.2, Sta9/Sta10): the user still answers with ``release_response()``."""

    collision: bool


@dataclass(frozen=True, slots=True)
class ReleaseConfirmed:
    """A-RELEASE confirmation: the association is released."""


@dataclass(frozen=True, slots=True)
class Aborted:
    """A-ABORT (``by_provider`` False: the peer's user aborted) or A-P-ABORT indication.

    ``source``/``reason`` are those of the A-ABORT PDU, when one was received or
    sent; None for a closed transport or a timeout. ``detail`` says what happened.
    """

    source: int | None
    reason: int | None
    by_provider: bool
    detail: str = ""


ULEvent = (
    AssociateRequested
    | AssociateAccepted
    | AssociateRejected
    | DataReceived
    | ReleaseRequested
    | ReleaseConfirmed
    | Aborted
)
