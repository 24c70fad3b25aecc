"""The Storage SCU's work on one association (PS3.4 B.2.1, PS3.7 D.3.3.3): the
files grouped so that each association proposes at most 128 contexts
(``batches``, ``contexts_for``), and their C-STOREs sent in order, up to the
association's asynchronous operations window at a time (``send_batch``). Used
by :mod:`dicomnet.services.store_scu`."""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import AssociationAborted
from ..storage.files import StorageError
from ..storage.part10 import Part10Info
from ..uids import named_uid
from ..ul.negotiation import ContextRequest
from .store_dataset import DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, UNCOMPRESSED
from .store_prepare import PduBuffers, Prepared, as_it_is_now, prepare_file, tag_texts
from .store_result import StoreResult, record

if TYPE_CHECKING:
    from ..aio.client import ClientAssociation, Reply

__all__ = ["LAST_RESORT", "LITTLE_ENDIAN", "MAX_CONTEXTS", "Batch", "InFlight", "Plan", "batches",
           "contexts_for", "main_contexts", "send_batch"]

log = logging.getLogger("dicomnet.services")

#: The syntaxes an uncompressed file is converted to for a peer that did not take
#: it as it is: Little Endian, which every Storage SCP takes (PS3.5 10.1: Implicit
#: VR Little Endian is the default)...
LITTLE_ENDIAN = (EXPLICIT_LE, IMPLICIT_LE)
#: ... and, only for a peer that takes neither, these, in a context of their own:
#: Deflated first, Explicit VR Big Endian being retired (PS3.5 A.3).
LAST_RESORT = (DEFLATED_LE, EXPLICIT_BE)
_SYNTAX_NAMES = {DEFLATED_LE: "Deflated Explicit VR Little Endian",
                 EXPLICIT_BE: "Explicit VR Big Endian"}


#: A common file's header as ``Plan.stamp`` keeps it: its data set's offset, the
#: file's size, and its identity (``Part10Info.identity``: device, inode,
#: modification and change times in ns), in 81 bytes where the Part10Info took
#: ~650 with its Path, ints and tuple.
_STAMP = struct.Struct("<qqQQqq")


@dataclass(slots=True, eq=False)
class Plan:
    """One file to send, from its listing to its answer: a run holds one per
    file, all at once before its first association (to propose contexts), so it
    keeps what that and the "changed since listed" check need, not the file's
    ``Part10Info``, which is made again from it when the file's turn comes
    (``header``: no I/O). Compared by identity."""

    result: StoreResult
    #: Its SOP Class and transfer syntax (interned by ``read_part10``: one string
    #: for all the files that share them), for the contexts proposed.
    sop_class_uid: str
    transfer_syntax_uid: str
    #: ``_STAMP``, packed; None when ``odd`` holds the header.
    stamp: bytes | None = None
    #: The whole header of a file whose header says more than ``stamp`` (group
    #: 0002 elements in its data set, a deflated one not seen into, a data set
    #: relabelled): rare, kept as read.
    odd: Part10Info | None = None
    #: Its C-STORE went out in this attempt (else the association ended before it).
    started: bool = False
    #: ... whole, its last fragment handed to the transport (``started`` alone:
    #: cut part-way, which the peer cannot hold).
    whole: bool = False
    #: An earlier attempt sent it whole, unanswered (``StoreResult.sent`` then).
    sent_before: bool = False
    #: Sent under a window and not yet answered (``InFlight``).
    awaiting: bool = False
    #: The attempt its C-STORE first went out on (0: never), for the retry order.
    first_sent: int = 0

    @classmethod
    def of(cls, info: Part10Info, result: StoreResult) -> Plan:
        """The plan of ``info``'s file, whose ``result`` describes it already."""
        plan = cls(result, info.sop_class_uid, info.transfer_syntax_uid)
        plan.keep(info)
        return plan

    def keep(self, info: Part10Info) -> None:
        """Hold ``info`` (the file's header, read again) as this plan's."""
        self.sop_class_uid = info.sop_class_uid
        self.transfer_syntax_uid = info.transfer_syntax_uid
        if (info.identity is None or info.stray_meta or info.dataset_unseen
                or info.relabelled_from is not None):
            self.stamp, self.odd = None, info
        else:
            self.stamp = _STAMP.pack(info.dataset_offset, info.size, *info.identity)
            self.odd = None

    @property
    def sop_instance_uid(self) -> str:
        return self.result.sop_instance_uid or ""

    def header(self) -> Part10Info:
        """The file's header as it was read (``Part10Info``)."""
        if self.stamp is None:
            assert self.odd is not None
            return self.odd
        offset, size, device, inode, modified, changed = _STAMP.unpack(self.stamp)
        result = self.result
        # The path's text (as read_part10 of it keeps it): no Path made here.
        return Part10Info(_RESULT_PATH.__get__(result), self.transfer_syntax_uid,
                          self.sop_class_uid, result.sop_instance_uid or "", offset, size,
                          identity=(device, inode, modified, changed))


#: ``StoreResult.path``'s slot (store_compact): the path's text read as it is
#: kept, without ``store_compact.stored``'s call per object sent.
_RESULT_PATH: Any = StoreResult._compact_slots["path"]  # type: ignore[attr-defined]


class InFlight:
    """The C-STOREs of a batch sent under a window and not answered yet: one
    count, settled once per object, by whichever comes first of its answer (or
    the association's error, through ``send_request``'s callback) and the
    exception of its send. Both may come for one object: a send still writing
    when the association fails hears of it from its callback and its
    exception; a peer may answer before the data set is sent whole."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def add(self, plan: Plan) -> None:
        plan.awaiting = True
        self.count += 1

    def settle(self, plan: Plan) -> bool:
        """Whether ``plan`` was still awaiting its answer (no more now)."""
        if not plan.awaiting:
            return False
        plan.awaiting = False
        self.count -= 1
        return True


@dataclass(slots=True)
class Batch:
    plans: list[Plan] = field(default_factory=list)
    keys: dict[tuple[str, str], None] = field(default_factory=dict)


#: The most contexts one association proposes: context IDs are odd, 1 to 255
#: (PS3.8 9.3.2.2).
MAX_CONTEXTS = 128


def contexts_for(keys: Iterable[tuple[str, str]]) -> list[ContextRequest]:
    """The presentation contexts proposed for files of these (SOP class, file
    syntax) pairs (PS3.8 7.1.1.13): one per pair asking for its file as it is;
    one per SOP class of an uncompressed file offering the Little Endian
    syntaxes it can be converted to; then one per such class offering
    :data:`LAST_RESORT`, the uncompressed syntaxes a peer may take when it
    takes neither Little Endian one. A peer answers each context alone, so
    that last one takes nothing from the others: ``prepare_file`` sends a
    file as it is first, else converted in Little Endian, and only then in
    what the last resort context was accepted in. :func:`batches` groups the
    files so that all of them fit in :data:`MAX_CONTEXTS`; keys from
    elsewhere that do not fit leave the last classes without one."""
    requests = main_contexts(keys)
    own: dict[str, set[str]] = {}
    for request in requests:
        own.setdefault(request.abstract_syntax, set()).update(request.transfer_syntaxes)
    for sop_class, syntaxes in own.items():
        if len(requests) >= MAX_CONTEXTS:
            break
        if syntaxes.isdisjoint(LITTLE_ENDIAN):
            continue  # compressed files alone: none is converted
        if extra := tuple(s for s in LAST_RESORT if s not in syntaxes):
            requests.append(ContextRequest(sop_class, extra))
    return requests


def main_contexts(keys: Iterable[tuple[str, str]]) -> list[ContextRequest]:
    """One context per (SOP class, file syntax) asking for it as is, plus one per
    SOP class of an uncompressed file offering the Little Endian syntaxes it
    can be converted to (:func:`contexts_for` without its last resort ones)."""
    requests: list[ContextRequest] = []
    fallback: dict[str, None] = {}
    for sop_class, ts in keys:
        requests.append(ContextRequest(sop_class, (ts,)))
        if ts in UNCOMPRESSED:
            fallback[sop_class] = None
    for sop_class in fallback:
        requests.append(ContextRequest(sop_class, LITTLE_ENDIAN))
    return requests


def _class_contexts(syntaxes: set[str]) -> int:
    """How many contexts :func:`contexts_for` proposes for one SOP class whose
    files are in ``syntaxes``: one per syntax; for a class with an
    uncompressed file, a Little Endian one, and a last resort one unless its
    own files are in every last resort syntax already."""
    if syntaxes.isdisjoint(UNCOMPRESSED):
        return len(syntaxes)
    return len(syntaxes) + 1 + (not syntaxes.issuperset(LAST_RESORT))


def batches(plans: list[Plan]) -> Iterator[Batch]:
    """Group files so that each association proposes at most 128 contexts (PS3.8
    9.3.2.2), all of :func:`contexts_for`'s counted, the last resort ones too: a
    peer that takes an uncompressed class in Big Endian or Deflated alone is
    offered that for every class of the batch, not only for those that came
    first in the room the others left (43 classes of files in Implicit and
    Explicit VR Little Endian took 128 contexts, none a last resort one: 85
    files went nowhere). At most four contexts for one file: it always fits
    in a batch of its own."""
    batch = Batch()
    classes: dict[str, set[str]] = {}  # the batch's SOP classes: their files' syntaxes
    count = 0
    for plan in plans:
        key = (plan.sop_class_uid, plan.transfer_syntax_uid)
        if key not in batch.keys:
            own = classes.get(key[0], set())
            more = _class_contexts(own | {key[1]}) - (_class_contexts(own) if own else 0)
            if count + more > MAX_CONTEXTS and batch.plans:
                yield batch
                batch, classes, count = Batch(), {}, 0
                own = set()
                more = _class_contexts({key[1]})
            batch.keys[key] = None
            classes[key[0]] = own | {key[1]}
            count += more
        batch.plans.append(plan)
    if batch.plans:
        yield batch


def _as_it_is_now(plan: Plan) -> tuple[Part10Info, str | None]:
    """``plan``'s file's header as it is now (``store_prepare.as_it_is_now``): one
    changed since it was listed is read again, kept, and its result describes
    it so. Returns it, and how it changed, or None. Raises StorageError."""
    info, change = as_it_is_now(plan.header())
    if change is not None:
        plan.keep(info)
        result = plan.result
        result.sop_instance_uid = info.sop_instance_uid
        result.size = info.dataset_length
        result.transfer_syntax_uid = info.transfer_syntax_uid
        result.dropped_meta = tag_texts(info.stray_meta)
    return info, change


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



async def send_batch(assoc: ClientAssociation, plans: list[Plan],
                      on_progress: Callable[[StoreResult], None] | None) -> None:
    """Send the plans on one association, up to its asynchronous window at a time.
    ``on_progress`` must not raise (``store_paths`` guards the caller's)."""
    buffers = PduBuffers()
    told: set[tuple[str, str]] = set()  # (SOP class, last resort syntax) logged

    async def prepare(plan: Plan) -> Prepared | None:
        """The plan's C-STORE, while the association stands; None (and reported)
        when it cannot be sent."""
        if assoc.failure is not None:
            raise assoc.failure
        change = None
        try:
            info, change = _as_it_is_now(plan)
            prepared = await prepare_file(assoc, info, plan.result, buffers)
        except StorageError as exc:  # found before any byte of it went out
            plan.result.error = f"not sent: {exc}"
            prepared = None
        if change is not None:
            _changed_since_listed(plan.result, change, prepared is not None)
        if prepared is None and on_progress:
            on_progress(plan.result)
        if (target := plan.result.converted_to) in LAST_RESORT and (
                key := (plan.sop_class_uid, target)) not in told:
            told.add(key)
            log.info("the peer takes %s in neither Little Endian syntax: its files are "
                     "converted to %s%s", named_uid(plan.sop_class_uid), _SYNTAX_NAMES[target],
                     ", a retired syntax (PS3.5 A.3) the peer still accepts"
                     if target == EXPLICIT_BE else "")
        plan.started = prepared is not None
        return prepared

    def went(plan: Plan, rq: object) -> None:
        """Note whether ``plan``'s C-STORE (``rq``), its send just ended, went out
        whole: only then may the peer hold it (PS3.8 9.3.5)."""
        if assoc.sent_whole is rq:
            plan.whole = plan.result.sent = True

    async def cut_short(plan: Plan, exc: StorageError,
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
            0, 0, f"a file changed while it was sent: {exc}", by="us")

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
            record(plan.result, rsp, plan, plan.sent_before)
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
    in_flight = InFlight()
    error: BaseException | None = None
    room: asyncio.Future[None] | None = None

    def answered(plan: Plan, reply: Reply | BaseException) -> None:
        nonlocal error
        if not in_flight.settle(plan):
            return  # its send's exception settled it: the caller heard of it there
        if isinstance(reply, BaseException):
            if error is None:
                error = reply  # the batch ends with the first error
        else:
            record(plan.result, reply[0], plan, plan.sent_before)
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
        if in_flight.count >= window:  # (wait_for_room's own test: no call with room)
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

