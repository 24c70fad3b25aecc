"""The Storage service's SCU (PS3.4 Annex B): C-STORE of Part 10 files from disk,
without decoding them.

Presentation contexts are proposed from the files' own SOP classes and
transfer syntaxes; a file whose syntax was accepted as is goes from disk to the
wire untouched; an uncompressed file is converted by pydicom when only another
uncompressed syntax was accepted (``store_convert``: a large one through a
temporary file); a compressed file nobody accepted is skipped
with its reason. ``dicomnet.services.storage`` re-exports what is public here.
How each file is made ready (its context, checks, conversion, and its PDUs
read from disk) is in :mod:`dicomnet.services.store_prepare`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from ..config import Timeouts
from ..dimse.status import Status
from ..errors import (
    AssociationAborted,
    AssociationRejected,
    ConfigurationError,
    DicomNetError,
    DimseTimeout,
    NoAcceptedContext,
    ProtocolError,
    TLSError,
    TransportError,
)
from ..security.config import TLSConfig
from ..storage.files import StorageError
from ..storage.part10 import NotRegularFileError, Part10Info, read_part10
from ..ul.negotiation import (
    ContextRequest,
)
from .store_compact import compact_fields, stored
from .store_dataset import EXPLICIT_LE, IMPLICIT_LE, UNCOMPRESSED
from .store_listing import collect_files, not_read
from .store_prepare import PduBuffers, Prepared, as_it_is_now, prepare_file, refused, tag_texts

if TYPE_CHECKING:
    from ..aio.client import ClientAssociation, Reply
    from ..aio.transport import SecureLinkHook

__all__ = ["RetryEvent", "StoreResult", "collect_files", "store_paths", "transient_failure"]

log = logging.getLogger("dicomnet.services")

T = TypeVar("T")


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
        return self.ok and self.status is not None and Status(self.status).category == "warning"

    @property
    def dimse_status(self) -> Status | None:
        """``status`` as the ``Status`` that ``assoc.store`` returns (PS3.7 Annex C,
        worded for the Storage service): its ``category``, ``description`` and
        ``str()`` ("0xA701 (failure: Refused: out of resources)"); it equals the
        code. None when no response came."""
        return None if self.status is None else Status(self.status, "storage")

    def to_dict(self) -> dict[str, object]:
        """Every field, JSON-ready (the path as a string)."""
        return {
            "path": stored(self, "path"), "sop_instance_uid": self.sop_instance_uid,
            "status": self.status, "ok": self.ok, "error": self.error,
            "error_comment": self.error_comment, "size": self.size,
            "transfer_syntax_uid": self.transfer_syntax_uid, "converted_to": self.converted_to,
            "sent": self.sent, "attempts": self.attempts, "retryable": self.retryable,
            "not_dicom": self.not_dicom, "association_failed": self.association_failed,
            "dropped_meta": list(stored(self, "dropped_meta") or ()),
            "offending_elements": list(stored(self, "offending_elements") or ()),
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


@dataclass(slots=True)
class _Plan:
    info: Part10Info
    result: StoreResult
    #: Its C-STORE went out in this attempt (else the association ended before it).
    started: bool = False
    #: ... whole, its last fragment handed to the transport (``started`` alone:
    #: cut part-way, which the peer cannot hold).
    whole: bool = False
    #: An earlier attempt sent it whole, unanswered (``StoreResult.sent`` then).
    sent_before: bool = False
    #: Sent under a window and not yet answered (``_InFlight``).
    awaiting: bool = False
    #: The attempt its C-STORE first went out on (0: never), for the retry order.
    first_sent: int = 0


class _InFlight:
    """The C-STOREs of a batch sent under a window and not answered yet: one
    count, settled once per object, by whichever comes first of its answer (or
    the association's error, through ``send_request``'s callback) and the
    exception of its send. Both may come for one object: a send still writing
    when the association fails hears of it from its callback and its
    exception; a peer may answer before the data set is sent whole."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def add(self, plan: _Plan) -> None:
        plan.awaiting = True
        self.count += 1

    def settle(self, plan: _Plan) -> bool:
        """Whether ``plan`` was still awaiting its answer (no more now)."""
        if not plan.awaiting:
            return False
        plan.awaiting = False
        self.count -= 1
        return True


@dataclass(slots=True)
class _Batch:
    plans: list[_Plan] = field(default_factory=list)
    keys: dict[tuple[str, str], None] = field(default_factory=dict)


def _contexts_for(keys: Iterable[tuple[str, str]]) -> list[ContextRequest]:
    """One context per (SOP class, file syntax) asking for it as is, plus one per
    SOP class offering the uncompressed syntaxes pydicom can convert to."""
    requests: list[ContextRequest] = []
    fallback: dict[str, None] = {}
    for sop_class, ts in keys:
        requests.append(ContextRequest(sop_class, (ts,)))
        if ts in UNCOMPRESSED:
            fallback[sop_class] = None
    for sop_class in fallback:
        requests.append(ContextRequest(sop_class, (EXPLICIT_LE, IMPLICIT_LE)))
    return requests


def _batches(plans: list[_Plan]) -> Iterator[_Batch]:
    """Group files so that each association proposes at most 128 contexts (PS3.8 9.3.2.2)."""
    batch = _Batch()
    for plan in plans:
        key = (plan.info.sop_class_uid, plan.info.transfer_syntax_uid)
        if key not in batch.keys and len(_contexts_for([*batch.keys, key])) > 128:
            yield batch
            batch = _Batch()
        batch.keys[key] = None
        batch.plans.append(plan)
    if batch.plans:
        yield batch


def _as_it_is_now(plan: _Plan) -> str | None:
    """Make ``plan`` that of its file as it is now (``store_prepare.as_it_is_now``):
    one changed since it was listed is read again, and its result describes it
    so. Returns how it changed, or None. Raises StorageError."""
    info, change = as_it_is_now(plan.info)
    if change is not None:
        plan.info = info
        result = plan.result
        result.sop_instance_uid = info.sop_instance_uid
        result.size = info.dataset_length
        result.transfer_syntax_uid = info.transfer_syntax_uid
        result.dropped_meta = tag_texts(info.stray_meta)
    return change


def _changed_since_listed(result: StoreResult, change: str, sent: bool) -> None:
    """Say that ``result``'s file was read again before it went (``change``): in a
    note when it went, in its error when it could not."""
    if sent:
        result.note = f"{change}: sent as it is now"
        log.info("%s", result.note)
        return
    error = result.error or ""
    result.error = (f"not sent: {change}; as it is now, {error.removeprefix('not sent: ')}"
                    if error.startswith("not sent: ") and change not in error
                    else f"{error} ({change})" if change not in error else error)


def _record(result: StoreResult, rsp: object, info: Part10Info | None = None,
            sent_before: bool = False) -> None:
    """The outcome of a C-STORE from its response (PS3.4 B.2.3): a Warning of any
    kind PS3.7 Annex C names (0107H and 0116H too, as DCMTK and pynetdicom read
    them) means stored; not when the response names another object than
    ``info``'s, the request's (``_other_object``)."""
    status = int(getattr(rsp, "status", 0xFFFF))
    result.status = status
    result.ok = Status(status).category in ("success", "warning")
    result.error_comment = getattr(rsp, "error_comment", None) or None
    result.offending_elements = tag_texts(getattr(rsp, "offending_element", None) or ())
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


def offending_words(tags: Sequence[str], before: str = "") -> str:
    """``tags`` (``StoreResult.offending_elements``) in words after ``before``:
    "; offending element (0028,0010)"; "" for none."""
    if not tags:
        return ""
    return f"{before}offending element{'s' if len(tags) > 1 else ''} {', '.join(tags)}"


def _other_object(info: Part10Info, rsp: object) -> str | None:
    """Why ``rsp`` is no answer about ``info``'s object, or None: a C-STORE-RSP's
    Affected SOP Class and Instance UIDs, when present, are its request's (PS3.7
    9.3.1.2: U(=)). A peer naming another object answers of something else
    (a mix-up of its own), so its status says nothing of this one."""
    for what, mine, theirs in (
            ("SOP Instance UID", info.sop_instance_uid,
             getattr(rsp, "affected_sop_instance_uid", None)),
            ("SOP Class UID", info.sop_class_uid, getattr(rsp, "affected_sop_class_uid", None))):
        if theirs and theirs != mine:
            return f"the answer names Affected {what} {theirs}, not this object's {mine}"
    return None


async def _send_batch(assoc: ClientAssociation, plans: list[_Plan],
                      on_progress: Callable[[StoreResult], None] | None) -> None:
    """Send the plans on one association, up to its asynchronous window at a time.
    ``on_progress`` must not raise (``store_paths`` guards the caller's)."""
    buffers = PduBuffers()

    async def prepare(plan: _Plan) -> Prepared | None:
        """The plan's C-STORE, while the association stands; None (and reported)
        when it cannot be sent."""
        if assoc.failure is not None:
            raise assoc.failure
        change = None
        try:
            change = _as_it_is_now(plan)
            prepared = await prepare_file(assoc, plan.info, plan.result, buffers)
        except StorageError as exc:  # found before any byte of it went out
            plan.result.error = f"not sent: {exc}"
            prepared = None
        if change is not None:
            _changed_since_listed(plan.result, change, prepared is not None)
        if prepared is None and on_progress:
            on_progress(plan.result)
        plan.started = prepared is not None
        return prepared

    def went(plan: _Plan, rq: object) -> None:
        """Note whether ``plan``'s C-STORE (``rq``), its send just ended, went out
        whole: only then may the peer hold it (PS3.8 9.3.5)."""
        if assoc.sent_whole is rq:
            plan.whole = plan.result.sent = True

    async def cut_short(plan: _Plan, exc: StorageError,
                        unanswered: bool = True) -> AssociationAborted:
        """A file changed while its data set was being sent: the message cannot
        be completed (its length was promised), so the association is aborted;
        the other objects fail as on any abort (and may be retried). One the
        peer ``answered`` already (early) keeps that answer."""
        await assoc.abort()
        if unanswered:
            plan.result.error = str(exc)
            if on_progress:
                on_progress(plan.result)
        return AssociationAborted(
            0, 0, f"aborted locally, a file changed while it was sent: {exc}")

    if assoc.async_window <= 1:
        # One at a time (most peers grant no window): in order, each sent once
        # the last one's response came.
        for plan in plans:
            if (prepared := await prepare(plan)) is None:
                continue
            rq, context_id, pdus, data = prepared
            try:
                rsp, _ = await assoc.request_one(rq, context_id, pdus=pdus, dataset=data)
            except StorageError as exc:
                raise await cut_short(plan, exc) from exc
            finally:  # its file closed, sent or not (the association ended before)
                went(plan, rq)
                if pdus is not None:
                    pdus.close()
            _record(plan.result, rsp, plan.info, plan.sent_before)
            if on_progress:
                on_progress(plan.result)
        if assoc.failure is not None:
            raise assoc.failure
        return

    # Several in flight (PS3.7 D.3.3.3): each response is recorded by a callback
    # as it comes; no task per object. send_request holds the association's slot
    # of the window; our own count says when all ours are answered, and keeps the
    # next send from waiting there (with no other request of the association
    # outstanding, a slot is free whenever ours are below the window).
    loop = asyncio.get_running_loop()
    window = assoc.async_window
    in_flight = _InFlight()
    error: BaseException | None = None
    room: asyncio.Future[None] | None = None

    def answered(plan: _Plan, reply: Reply | BaseException) -> None:
        nonlocal error
        if not in_flight.settle(plan):
            return  # its send's exception settled it: the caller heard of it there
        if isinstance(reply, BaseException):
            if error is None:
                error = reply  # the batch ends with the first error
        else:
            _record(plan.result, reply[0], plan.info, plan.sent_before)
            if on_progress:
                on_progress(plan.result)
        if room is not None and not room.done():
            room.set_result(None)

    async def wait_for_room(most: int) -> None:
        nonlocal room
        while in_flight.count > most and error is None and assoc.failure is None:
            room = loop.create_future()
            try:
                await room
            finally:
                room = None

    for plan in plans:
        await wait_for_room(window - 1)
        if error is not None:
            raise error
        if (prepared := await prepare(plan)) is None:
            continue
        rq, context_id, pdus, data = prepared
        in_flight.add(plan)
        try:
            await assoc.send_request(rq, context_id, functools.partial(answered, plan),
                                     pdus=pdus, dataset=data)
        except StorageError as exc:
            raise await cut_short(plan, exc, in_flight.settle(plan)) from exc
        except BaseException:
            in_flight.settle(plan)
            raise
        finally:  # its file closed, sent or not (the association ended before)
            went(plan, rq)
            if pdus is not None:
                pdus.close()
    await wait_for_room(0)
    if error is not None:
        raise error
    if assoc.failure is not None:
        raise assoc.failure


#: The longest wait between two attempts, however many retries were asked for.
MAX_RETRY_DELAY = 60.0


class _Guarded(Generic[T]):
    """A caller's callback whose exceptions are logged, not raised: a bug in a
    progress display must not drop a transfer, nor the results of the objects
    sent so far. The first exception is logged with its traceback, the others
    counted (``summary``): one per object could be thousands."""

    def __init__(self, name: str, callback: Callable[[T], None] | None) -> None:
        self.name = name
        self.callback = callback
        self.failures = 0

    def __call__(self, arg: T) -> None:
        if self.callback is None:
            return
        try:
            self.callback(arg)
        except Exception:
            self.failures += 1
            if self.failures == 1:
                log.exception("store_paths: the %s callback raised; the transfer goes on "
                              "(later exceptions of it are counted, not logged)", self.name)

    def summary(self) -> None:
        if self.failures > 1:
            log.error("store_paths: the %s callback raised %d times in all (the first "
                      "logged above)", self.name, self.failures)


def _warn_of_repeated_uids(plans: list[_Plan]) -> None:
    """Say when files listed hold the SOP Instance UID of another (a copy, or an
    object edited without a new UID): each is sent and counted stored on its
    answer, but a peer holds one object per UID (PS3.3 C.12.1.1.1), so the run's
    count of objects stored is more than the peer's."""
    # A set of the UIDs, the paths looked up again for the one named: this runs with
    # every file's header in memory (the run's peak), before any is sent.
    seen: set[str] = set()
    repeats = 0
    later: _Plan | None = None
    for plan in plans:
        if plan.info.sop_instance_uid in seen:
            repeats += 1
            if later is None:
                later = plan
        else:
            seen.add(plan.info.sop_instance_uid)
    if later is not None:
        uid = later.info.sop_instance_uid
        earlier = next(p for p in plans if p.info.sop_instance_uid == uid)
        log.warning("%d file(s) have the SOP Instance UID of another listed (%s as %s: %s): "
                    "each is sent, and counted stored if the peer says so, but a peer "
                    "holds one object per SOP Instance UID", repeats, later.info.path,
                    earlier.info.path, uid)


#: Why an object cut part-way is not sent: a peer keeps a data set only once its
#: last fragment came (PS3.8 9.3.5, E.2); a partial message dies with the
#: association (PS3.7 8.1, PS3.8 7.3). Safe to send again.
PART_WAY = "interrupted part-way: the peer cannot hold a partial object"


def _unanswered(plan: _Plan, why: str) -> str:
    """Why ``plan``'s object got no answer on this attempt: one sent whole says
    ``why`` alone (the peer may hold it), one never sent or cut part-way says
    it was not ("the peer aborted" read as if it had been), and one an earlier
    attempt sent whole, unanswered, that the peer may hold it."""
    if plan.whole:
        return why
    how = f" ({PART_WAY})" if plan.started else ""
    if plan.result.sent:
        return f"not sent again{how}: {why}; an earlier attempt sent it, unanswered"
    return f"not sent{how}: {why}"


def _cancelled(plans: list[_Plan], max_attempts: int,
               live: tuple[ClientAssociation, list[_Plan]] | None,
               report: Callable[[StoreResult], None]) -> None:
    """Say what a cancel left of the attempt's objects not answered for good.
    Those of the association ``live`` (the one standing, with its batch's plans)
    that it cannot take keep that reason, told to ``report`` as when they are
    reached (``store_prepare.refused``): the cancel did not decide their fate."""
    # By identity, once: a plan compares equal field by field, and a batch may hold
    # thousands.
    standing = {id(plan) for plan in live[1]} if live is not None else set()
    for plan in plans:
        result = plan.result
        if result.retryable and result.attempts < max_attempts:  # its retry will not come
            result.error = f"{result.error or 'failed'}; cancelled before it was sent again"
            result.retryable = False
        elif result.status is None and not result.error:
            refusal = (refused(live[0], plan.info)
                       if live is not None and not plan.started and id(plan) in standing
                       else None)
            if refusal is not None:
                result.error = refusal
                report(result)
            else:
                result.error = ("cancelled before an answer" if plan.whole
                                else _unanswered(plan, "cancelled"))


async def store_paths(
    host: str,
    port: int,
    paths: Sequence[Path | str] | Path | str,
    *,
    tls: TLSConfig | None = None,
    calling_ae_title: str = "DICOMNET",
    called_ae_title: str = "ANY-SCP",
    timeouts: Timeouts | None = None,
    on_progress: Callable[[StoreResult], None] | None = None,
    max_async_operations: int = 32,
    on_secure_link_ready: SecureLinkHook | None = None,
    retries: int = 0,
    retry_delay: float = 2.0,
    on_retry: Callable[[RetryEvent], None] | None = None,
    results: list[StoreResult] | None = None,
    listed: bool = False,
) -> list[StoreResult]:
    """C-STORE every file (folders recursively) to ``host:port``; one result per file.
    ``paths`` may be one path alone (``"study/"``: a str is one path, not its
    letters).

    An asynchronous operations window of ``max_async_operations`` is proposed
    (PS3.7 D.3.3.3): a peer that grants it gets several C-STOREs in flight, so
    the round trip and its disk flush no longer gate every object; a peer that
    does not (most) gets them one at a time. Objects go out in order either way.

    Files that are not DICOM Part 10 are reported, not sent; so are files that
    cannot be read ("not sent: cannot read ..."). With ``listed``, ``paths``
    are files ``collect_files`` listed already (the caller's own listing, made
    before it asked for a key's password, say): they are not listed again, and
    one gone since fails alone instead of refusing the run. Association-level
    failures (TLS, rejection, abort) mark the remaining files of that
    association failed and are re-raised only if nothing could be sent at all.

    With ``retries``, the objects whose failure may pass (``StoreResult.retryable``:
    the link broke before their answer, or the peer was out of resources) are
    sent again on a new association, up to ``retries`` more times, after
    ``retry_delay`` seconds, doubled at each retry (at most ``MAX_RETRY_DELAY``).
    ``on_retry`` hears of each retry before its wait; ``on_progress`` hears of
    each object once, when its last attempt ended. An object whose answer was
    lost with the link may reach a peer twice: a peer keeping the first copy
    answers Success, one rejecting duplicates answers a failure (0111H).

    When no object was stored and the association failed (a refused TLS
    handshake, a rejection, an abort...), that error is raised, and its
    ``results`` holds every file's result all the same: the files that are not
    DICOM, and the others "not sent" with why. A permanent failure (see
    ``transient_failure``) with nothing stored ends the run at once: the
    batches not yet tried are "not sent" with that error too.

    ``on_progress`` and ``on_retry`` are the caller's code: an exception they
    raise does not stop the transfer nor lose its results; it is logged on the
    ``dicomnet.services`` logger with its traceback (the first; later ones are
    counted). To stop a transfer, cancel the task running it.

    ``results``, an empty list of the caller's, is filled with the results (one
    per file, as soon as the files are listed, updated as they go) and returned:
    what survives a cancellation, which raises ``CancelledError`` as asyncio
    requires. Each says then what became of its file, as ``dicomnet store``
    does after a Ctrl-C: stored or failed; "cancelled before an answer" (its
    C-STORE was out whole: the peer may hold it; ``sent``); "not sent: cancelled"
    ("not sent again: cancelled; ..." when an earlier attempt sent it whole),
    "not sent (interrupted part-way: ...): cancelled" for the one whose data set
    was going out (``PART_WAY``: the peer cannot hold it);
    or, waiting for a retry, its last answer then "; cancelled before it was
    sent again"; one the association standing could not take (no context for
    its transfer syntax), not reached yet, says so, as when reached, and
    ``on_progress`` hears of it. ``on_progress`` does not hear of those the
    cancel ended.
    """
    from ..aio.client import associate

    if retries < 0:
        raise ConfigurationError("retries must be 0 or more")
    if not 0 <= retry_delay <= MAX_RETRY_DELAY:
        raise ConfigurationError(f"retry_delay must be within 0 and {MAX_RETRY_DELAY:g} seconds")
    if results is None:
        results = []
    elif results:
        raise ConfigurationError("results must be an empty list: store_paths fills it")
    max_attempts = retries + 1
    progress = _Guarded("on_progress", on_progress)
    retry_heard = _Guarded("on_retry", on_retry)

    def report(result: StoreResult) -> None:
        if not (result.retryable and result.attempts < max_attempts):
            progress(result)

    def failed(exc: DicomNetError) -> DicomNetError:
        """``exc``, to raise, with every file's result; the files never tried say why."""
        for plan in plans:
            if plan.result.status is None and not plan.result.error:
                plan.result.error = _unanswered(plan, str(exc))
                plan.result.retryable = False
                plan.result.association_failed = True
                report(plan.result)
        exc.results = results
        return exc

    plans: list[_Plan] = []
    if isinstance(paths, str | Path):  # one path, not a sequence of letters
        paths = [paths]
    # The caller's own Paths, not copies: a listing kept by the caller (dicomnet store
    # keeps its own) is then held once.
    listing = ((p if isinstance(p, Path) else Path(p) for p in paths) if listed
               else collect_files(paths))
    for path in listing:
        result = StoreResult(path=path)
        results.append(result)
        try:
            info = read_part10(path)
        except (StorageError, OSError) as exc:
            # A file gone since it was listed, or unreadable, is no proof of what it holds.
            unreadable = (isinstance(exc, (OSError, NotRegularFileError))
                          or exc.errno is not None)
            result.error = (f"not sent: {not_read(path, exc)}" if unreadable
                            else f"not a DICOM Part 10 file: {exc}")
            result.not_dicom = not unreadable
            report(result)
            continue
        result.sop_instance_uid = info.sop_instance_uid
        result.size = info.dataset_length
        result.transfer_syntax_uid = info.transfer_syntax_uid
        result.dropped_meta = tag_texts(info.stray_meta)
        plans.append(_Plan(info, result))
    _warn_of_repeated_uids(plans)
    attempt = 1
    # The association standing and its plans, for a cancel to tell which of them
    # it cannot take.
    live: tuple[ClientAssociation, list[_Plan]] | None = None
    try:
        while True:
            failure: DicomNetError | None = None  # this attempt's last link failure
            for batch in _batches(plans):
                negotiated: ClientAssociation | None = None
                try:
                    async with associate(
                        host, port, contexts=_contexts_for(batch.keys), tls=tls,
                        calling_ae_title=calling_ae_title, called_ae_title=called_ae_title,
                        timeouts=timeouts, max_async_operations=max_async_operations,
                        on_secure_link_ready=on_secure_link_ready,
                    ) as assoc:
                        negotiated = assoc
                        live = (assoc, batch.plans)
                        await _send_batch(assoc, batch.plans, report)
                    live = None
                except DicomNetError as exc:
                    live = None
                    failure = exc
                    transient = transient_failure(exc)
                    pending = [p for p in batch.plans
                               if p.result.status is None and not p.result.error]
                    for plan in pending:
                        refusal = None if negotiated is None else refused(negotiated, plan.info)
                        if refusal is not None:  # its own reason, told when negotiated
                            plan.result.error = refusal
                        else:
                            plan.result.error = _unanswered(plan, str(exc))
                            plan.result.retryable = transient
                            plan.result.association_failed = True
                        report(plan.result)
                    if not transient and not any(r.ok for r in results):
                        failed(exc)
                        raise
            # Those whose message was out when the link failed go last: one that makes
            # the peer abort (a data set it cannot take) must not take the others down
            # at every attempt. Sent on any attempt, not this one alone (one suspected
            # before and not reached now is no less suspect), the earliest last.
            for plan in plans:
                if plan.started and not plan.first_sent:
                    plan.first_sent = attempt
            again = sorted((p for p in plans if p.result.retryable),
                           key=lambda p: (p.first_sent > 0, -p.first_sent))
            if not again or attempt >= max_attempts:
                break
            attempt += 1
            delay = min(retry_delay * 2 ** (attempt - 2), MAX_RETRY_DELAY)
            retry_heard(RetryEvent(attempt=attempt, max_attempts=max_attempts,
                                   count=len(again), delay=delay,
                                   reason=again[-1].result.error or "failed",
                                   results=tuple(replace(p.result) for p in again)))
            await asyncio.sleep(delay)
            for plan in again:
                plan.result._reset_for_retry()
                plan.started = plan.whole = False
                plan.sent_before = plan.result.sent
            plans = again
        if failure is not None and not any(r.ok for r in results):
            raise failed(failure)
        return results
    except asyncio.CancelledError:
        _cancelled(plans, max_attempts, live, report)
        raise
    finally:
        progress.summary()
        retry_heard.summary()
