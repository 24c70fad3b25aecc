"""What the Storage SCU says of each file it sends (PS3.4 B.2.3): its
``StoreResult``, read from the peer's C-STORE response (``record``), the
``RetryEvent`` told before objects are sent again, which association failures
may pass (``transient_failure``), and the words for an object cut part-way
(``PART_WAY``). Re-exported by :mod:`dicomnet.services.store_scu`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..dimse.status import Status, category_of
from ..errors import (
    AssociationAborted,
    AssociationRejected,
    ConfigurationError,
    DimseTimeout,
    NoAcceptedContext,
    ProtocolError,
    TLSError,
    TransportError,
)
from ..uids import named_uid
from .store_compact import compact_fields
from .store_prepare import tag_texts

__all__ = ["PART_WAY", "PASSED_OVER_DICOMDIR", "Named", "RetryEvent", "StoreResult",
           "offending_words", "record", "transient_failure"]


class Named(Protocol):
    """The object a C-STORE request named (``record``): its file's ``Part10Info``,
    or the plan ``store_batch`` keeps of it."""

    @property
    def sop_class_uid(self) -> str: ...
    @property
    def sop_instance_uid(self) -> str: ...


@dataclass(slots=True)
class StoreResult:
    """The outcome of sending one file (``store_paths``); ``to_dict()`` for JSON."""

    #: The file, as listed by ``collect_files``.
    path: Path
    #: Its SOP Instance UID; None when the file could not be read as DICOM Part 10.
    sop_instance_uid: str | None = None
    #: The status of the peer's C-STORE response (PS3.4 B.2.3), its code as an int
    #: (as JSON has it; ``dimse_status`` gives it as a ``Status``); None when none
    #: came (not sent, or the association ended before its answer).
    status: int | None = None
    #: Stored: status Success (0000H) or a Warning (Bxxx, 0001H, 0107H, 0116H:
    #: PS3.7 Annex C).
    ok: bool = False
    #: Why it was not stored, in words: the peer's Error Comment or its status's
    #: meaning, "not a DICOM Part 10 file: ...", "not sent: ...", or the failure
    #: of the association it was on. None when stored.
    error: str | None = None
    #: The peer's Error Comment (0000,0902) with its status, a Warning's too
    #: (PS3.7 9.3.1.2, C.1.2); None when it sent none.
    error_comment: str | None = None
    #: The data set's bytes in the file, without its preamble and File Meta
    #: Information (what goes on the wire when sent as is). ``dicomnet store``'s
    #: totals count whole files.
    size: int = 0
    transfer_syntax_uid: str | None = None
    converted_to: str | None = None
    #: Its C-STORE went out whole (its data set's last fragment handed to the
    #: transport: PS3.8 9.3.5), on the last attempt or an earlier one: without a
    #: status, the peer may hold the object all the same. Not for one cut
    #: part-way, which the peer cannot hold (PS3.7 8.1: a message is complete
    #: with its last fragment only); its error says so (``PART_WAY``).
    sent: bool = False
    #: How many times it was sent (or tried): more than 1 after retries.
    attempts: int = 1
    #: A failure that may pass if sent again later: the link failed before the
    #: answer (abort, drop, timeout, refused or transient rejection), or the peer
    #: answered Refused: Out of Resources (A7xxH, PS3.4 B.2.3).
    retryable: bool = False
    #: Not sent because the file is no DICOM Part 10 file (no preamble and
    #: ``DICM``, no meta information, a UID missing: PS3.10 7.1); not for a file
    #: that could not be read.
    not_dicom: bool = False
    #: Passed over, not sent: a DICOMDIR (Media Storage Directory, SOP class
    #: 1.2.840.10008.1.3.10: PS3.10 8.6, PS3.3 Annex F), the index of a medium,
    #: which no C-STORE carries, found by its Media Storage SOP Class whatever its
    #: name (a folder's file named DICOMDIR is not even listed). Not a failure.
    dicomdir: bool = False
    #: Not stored because its association (or the connection for it) failed
    #: before its answer: an abort, a dropped, refused or timed-out link, a
    #: rejection, a TLS or protocol failure; not for anything of its own.
    association_failed: bool = False
    #: The File Meta Information elements (group 0002) its data set starts with,
    #: left out of what is sent (PS3.5 7.1: no data set holds them;
    #: ``Part10Info.stray_meta``), as "(0002,xxxx)" tags; empty when none.
    dropped_meta: list[str] = field(default_factory=list)
    #: The elements the peer named at fault with its status, Offending Element
    #: (0000,0901: PS3.7 C.4, PS3.4 B.2.3, with A9xxH, Cxxx, B000H, B006H and
    #: B007H), as "(gggg,eeee)" tags; empty when it named none. ``error`` says
    #: them too.
    offending_elements: list[str] = field(default_factory=list)
    #: A remark on what was sent: "X changed since it was listed: sent as it is
    #: now" for a file whose header was read again before it went (it grew, was
    #: rewritten or replaced after the run listed it; the fields above then
    #: describe it as sent). None otherwise.
    note: str | None = None

    @property
    def warning(self) -> bool:
        """Stored with a Warning status (Bxxx, 0001H, 0107H, 0116H: PS3.7 C.4,
        PS3.4 B.2.3): the peer kept the object, perhaps not as sent (coerced
        elements, a data set that does not match its SOP class)."""
        status = self.status  # 0000H, a Success (most), without a lookup
        return self.ok and status is not None and status != 0 and _category(status) == "warning"

    @property
    def dimse_status(self) -> Status | None:
        """``status`` as the ``Status`` that ``assoc.store`` returns (PS3.7 Annex C,
        worded for the Storage service): its ``category``, ``description`` and
        ``str()`` ("0xA701 (failure: Refused: out of resources)"); it equals the
        code. None when no response came."""
        return None if self.status is None else Status(self.status, "storage")

    def to_dict(self) -> dict[str, object]:
        """Every field, JSON-ready (the path as a string)."""
        # The compact slots read as they are (store_compact.stored, without its
        # call each: three per file of a --json run).
        return {
            "path": _PATH.__get__(self), "sop_instance_uid": self.sop_instance_uid,
            "status": self.status, "ok": self.ok, "error": self.error,
            "error_comment": self.error_comment, "size": self.size,
            "transfer_syntax_uid": self.transfer_syntax_uid, "converted_to": self.converted_to,
            "sent": self.sent, "attempts": self.attempts, "retryable": self.retryable,
            "not_dicom": self.not_dicom, "dicomdir": self.dicomdir,
            "association_failed": self.association_failed,
            "dropped_meta": list(_DROPPED_META.__get__(self) or ()),
            "offending_elements": list(_OFFENDING_ELEMENTS.__get__(self) or ()),
            "note": self.note,
        }

    def _reset_for_retry(self) -> None:
        self.status = None
        self.ok = False
        self.error = None
        self.error_comment = None
        self.offending_elements = []
        self.converted_to = None  # sent stays: the peer may hold what went out whole
        self.retryable = False
        self.association_failed = False
        self.attempts += 1


# A run holds one per file until it ends: its slots hold less than its fields say.
#: StoreResult's slots under store_compact's properties (a str, None for an empty list).
_PATH, _DROPPED_META, _OFFENDING_ELEMENTS = (
    StoreResult.__dict__[name] for name in ("path", "dropped_meta", "offending_elements"))
compact_fields(StoreResult, paths=("path",), tag_lists=("dropped_meta", "offending_elements"),
               docs={"path": "The file, as listed by ``collect_files``.",
                     "dropped_meta": "The group 0002 elements left out of what was sent "
                     "(PS3.5 7.1), as \"(0002,xxxx)\" tags; empty when none.",
                     "offending_elements": "The elements the peer named at fault with its "
                     "status (0000,0901: PS3.7 C.4), as \"(gggg,eeee)\" tags; empty when "
                     "none."})


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """What ``store_paths``' ``on_retry`` receives before sending failed objects
    again: which attempt comes next (2 for the first retry), of how many at
    most, how many objects, after how long, and the last failure's words;
    ``results``: those objects as their last attempt ended (copies: what the
    retry changes is not in them), for a caller stopped during the wait to say
    what each was answered."""

    attempt: int
    max_attempts: int
    count: int
    delay: float
    reason: str
    results: tuple[StoreResult, ...] = ()


def transient_failure(exc: BaseException) -> bool:
    """Whether an association-level failure may pass if tried again later: an
    abort, a dropped or refused connection, a timeout (a TLS handshake's too, or
    one cut short: ``TLSError.link_failed``), a transient rejection (PS3.8
    9.3.4: result 2). Not a permanent rejection, a certificate or TLS check
    that failed, a protocol error or a configuration error: those fail the same
    way every time; nor our own abort for the peer's protocol error (a response
    to no request of ours, say: ``__cause__``), which its next answer repeats."""
    if isinstance(exc, AssociationAborted) and isinstance(exc.__cause__, ProtocolError):
        return False
    if isinstance(exc, AssociationRejected):
        return exc.result == 2
    if isinstance(exc, TLSError):
        return exc.link_failed
    if isinstance(exc, ConfigurationError | ProtocolError | NoAcceptedContext):
        return False
    return isinstance(exc, AssociationAborted | TransportError | DimseTimeout)


#: PS3.7 C.5.x: a peer rejecting duplicates answers this to a retried object it kept.
_DUPLICATE_SOP_INSTANCE = 0x0111


def _retryable_status(status: int) -> bool:
    """Refused: Out of Resources (A7xxH, PS3.4 B.2.3): the peer may have room later."""
    return (status & 0xFF00) == 0xA700



#: Why an object cut part-way is not sent: a peer keeps a data set only once its
#: last fragment came (PS3.8 9.3.5, E.2); a partial message dies with the
#: association (PS3.7 8.1, PS3.8 7.3). Safe to send again.
PART_WAY = "interrupted part-way: the peer cannot hold a partial object"
#: The ``error`` of a result ``dicomdir``: why it was not sent, not a failure.
PASSED_OVER_DICOMDIR = ("passed over: a DICOMDIR (Media Storage Directory, "
                        "1.2.840.10008.1.3.10), the index of a medium, not an object to send")


def record(result: StoreResult, rsp: object, info: Named | None = None,
            sent_before: bool = False) -> None:
    """The outcome of a C-STORE from its response (PS3.4 B.2.3): a Warning of any
    kind PS3.7 Annex C names (0107H and 0116H too, as DCMTK and pynetdicom read
    them) means stored; not when the response names another object than
    ``info``'s, the request's (``_other_object``)."""
    status = int(getattr(rsp, "status", 0xFFFF))
    result.status = status
    # 0000H, the Success most answers are (PS3.7 C.1.1), without a lookup.
    result.ok = status == 0 or _category(status) in ("success", "warning")
    result.error_comment = getattr(rsp, "error_comment", None) or None
    offending = getattr(rsp, "offending_element", None)
    # Into its slot (store_compact: None for none), not through its setter's call.
    _OFFENDING_ELEMENTS.__set__(result, (tag_texts(offending) or None) if offending else None)
    other = None if info is None else _other_object(info, rsp)
    if other is not None:
        said = result.error_comment or str(Status(status, "storage"))
        result.ok = False
        result.error = f"{said}, but {other} (PS3.7 9.3.1.2): not taken as its answer"
        return
    if not result.ok:
        result.error = ((result.error_comment or str(Status(status, "storage")))
                        + offending_words(result.offending_elements, "; "))
        result.retryable = _retryable_status(status)
        if status == _DUPLICATE_SOP_INSTANCE and sent_before:
            result.error += (" (sent again after a lost answer: most likely stored by the "
                             "earlier attempt)")


def _category(code: int) -> str:
    """``Status(code).category`` (PS3.7 Annex C) without making the ``Status``, a
    frozen dataclass (its ``__init__`` and ``__post_init__``: ~80 byte code
    instructions, twice per sent object); a code out of range raises ValueError
    as ``Status`` does."""
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"status code out of range: {code}")
    return category_of(code)


def offending_words(tags: Sequence[str], before: str = "") -> str:
    """``tags`` (``StoreResult.offending_elements``) in words after ``before``:
    "; offending element (0028,0010)"; "" for none."""
    if not tags:
        return ""
    return f"{before}offending element{'s' if len(tags) > 1 else ''} {', '.join(tags)}"


def _other_object(info: Named, rsp: object) -> str | None:
    """Why ``rsp`` is no answer about ``info``'s object, or None: a C-STORE-RSP's
    Affected SOP Class and Instance UIDs, when present, are its request's (PS3.7
    9.3.1.2: U(=)). A peer naming another object answers of something else
    (a mix-up of its own), so its status says nothing of this one. A SOP Class
    is named where the registry knows it, and a peer's junk is cut (named_uid)."""
    for what, mine, theirs in (
            ("SOP Instance UID", info.sop_instance_uid,
             getattr(rsp, "affected_sop_instance_uid", None)),
            ("SOP Class UID", info.sop_class_uid, getattr(rsp, "affected_sop_class_uid", None))):
        if theirs and theirs != mine:
            return (f"the answer names Affected {what} {named_uid(theirs)}, not this "
                    f"object's {named_uid(mine)}")
    return None

