"""The Storage service (PS3.4 Annex B): C-STORE SCP into safe, atomic files with an
index, and a C-STORE SCU that sends Part 10 files from disk without decoding them.

SCP: each data set is received, as its PDVs arrive, after a Part 10 header
(PS3.10 7.1): in memory up to 1 MiB, past that into a temporary file in the
store's folder (services.store_sink); when the last fragment is in, the store
thread writes it, makes it durable and names it (storage.files.AtomicWriter),
and only then is Success answered (PS3.4 B.2.2); its index row follows (no row
without a durable file). Any failure leaves no file under a final name.

The SCU (``store_paths``, ``StoreResult``, ``collect_files``) lives in
:mod:`dicomnet.services.store_scu` and is re-exported here, as is what the SCP
answers (``StoredInstance``, the ``on_c_store`` handler's answer, the response:
:mod:`dicomnet.services.store_answers`); the contexts it accepts are in
:mod:`dicomnet.services.store_contexts`. Here is the SCP's DIMSE side: where a
data set streams, the answer, the user's handler and observers; its disk side
(the store's folder, the store thread's rounds, the names, the index rows) is
:class:`~dicomnet.services.store_disk.StoreDisk`, which it extends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..aio.server_hooks import contained
from ..dimse.messages import CStoreRQ, DimseMessage
from ..dimse.status import (
    CANNOT_UNDERSTAND,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    SOP_CLASS_NOT_SUPPORTED,
    SUCCESS,
)
from ..dimse.status import DUPLICATE_SOP_INSTANCE as DUPLICATE_INSTANCE
from ..errors import ConfigurationError
from ..storage.direct import AlignedBuffer
from ..storage.files import DuplicatePolicy, Layout, StorageError
from ..storage.index import INDEX_NAME
from ..storage.names import UnsafeNameError
from ..storage.part10 import part10_header
from ..storage.space import FreeSpace
from ..ul.negotiation import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from .store_answers import (
    HookAnswer,
    Refused,
    RefusedInstance,
    RefusedObserver,
    Stored,
    StoredInstance,
    StoredObserver,
    StoreHook,
    refuse,
    response,
    run_hook,
)
from .store_contexts import StorageContexts
from .store_disk import StoreDisk, duplicate_policy
from .store_jobs import Job
from .store_oddities import log_oddities
from .store_scu import RetryEvent, StoreResult, collect_files, store_paths
from .store_sink import StoreSink

if TYPE_CHECKING:
    from ..aio.server_association import Answer, Response, ServerAssociation

__all__ = [
    "INDEX_NAME",
    "FreeSpace",
    "HookAnswer",
    "RetryEvent",
    "StorageSCP",
    "StoreHook",
    "StoreResult",
    "RefusedInstance",
    "RefusedObserver",
    "StoredInstance",
    "StoredObserver",
    "collect_files",
    "store_paths",
]

log = logging.getLogger("dicomnet.services")


def _is_coroutine_function(hook: object) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one."""
    return (inspect.iscoroutinefunction(hook)
            or inspect.iscoroutinefunction(type(hook).__call__))


class StorageSCP(StoreDisk):
    """C-STORE SCP (PS3.4 B.2.2) writing Part 10 files under ``root``.

    ``duplicates``: "keep" (default; the first copy stays, Success is
    answered), "overwrite", or "reject" (failure 0111H, Duplicate SOP
    Instance), for a SOP Instance UID already stored wherever its file is (the
    same instance under another study or series too; ``index=False`` sees only
    a file at the same path). ``layout``: hierarchical
    (study/series/instance.dcm) or flat.
    ``on_c_store`` runs after the file is durable and its index row queued; it
    may return a status to answer instead of Success (None: Success), with an
    Error Comment if it returns ``(status, comment)``. The object stays stored
    whatever it answers: the handler decides what the sender hears, not what the
    store keeps. It runs within the sender's wait for the response (its DIMSE
    timeout): an async handler on the event loop (it must await slow work, never
    block), a plain function in a worker thread (it may block: a database, a
    request to another node, reading the data set), holding its own association
    only. It is cancelled when the association ends (an abort, the server
    closing) before it returns; a thread cannot be stopped, its answer is then
    dropped. A handler
    that raises (``SystemExit`` too: it ends that object's C-STORE, not the
    server; ``aio.server_hooks``), or returns what is not a status or one no C-STORE-RSP carries
    (Pending, Cancel: PS3.4 B.2.3), is logged and that object answered with
    Processing Failure (0110H); the association goes on.
    ``on_stored`` is told of each object stored, once it is durable (a
    duplicate kept under "keep" too, its existing file the path), on the event
    loop: a quick, synchronous observer (a line to a log or a queue) that
    cannot change the answer; what it raises is logged. Unlike ``on_c_store``
    it leaves the store's fast path (no task per object) as it is. A coroutine
    function is refused (``ConfigurationError``): nothing would await it, and
    work it started per object would pile up unbounded while senders keep
    sending; slow work goes in ``on_c_store`` (the sender waits for it: the
    back-pressure) or in the user's own bounded queue that ``on_stored`` feeds.
    ``on_refused`` is told, the same way, of each object answered with a
    failure and not stored (a ``RefusedInstance``: status, reason; a duplicate
    rejected under "reject" too, ``path`` its copy kept), once its log line is
    written; never ``on_stored`` for it.
    An object being written when its association ends (an abort) is kept: its
    write goes on, it is indexed and told to ``on_stored`` (before the
    association's end, unless the write outlasts ``Timeouts.operation``), but
    not answered and not handed to ``on_c_store``. The peer, never answered,
    may send it again: the duplicate policy then applies.
    ``durable=False`` skips the fsyncs (renames stay atomic: never a partial
    file under a final name, even if the process is killed; but a power cut
    may lose objects already acknowledged): for benchmarks and scratch stores
    only. Stale temporary files, and the empty study and series folders
    stores leave, are removed by a thread (``sweep``) while the server already
    serves: storage.cleanup says why it never touches a transfer under way.
    After a server of the store that did not close (``kill -9``, a crash), a
    thread (``recovery``) then gives the objects it answered but never indexed
    their rows, beside the stores: storage.recovery.
    ``min_free`` keeps that much free on the store's file system (a
    ``FreeSpace``, its text: "5GiB", "10%", or bytes; storage.space): an object
    that would leave less is refused with 0xA700 (out of resources) and removed,
    so that no sender can fill the disk. Default: none kept.
    ``accept_unknown_sop_classes`` also accepts presentation contexts for SOP
    classes pydicom does not know (private or newer ones), as DCMTK's
    ``storescp --promiscuous`` and Orthanc's ``UnknownSopClassAccepted`` do.
    """

    command_fields = frozenset({CStoreRQ.command_field})

    def __init__(
        self,
        root: Path | str,
        *,
        duplicates: str | DuplicatePolicy = DuplicatePolicy.KEEP,
        layout: Layout = Layout.HIERARCHICAL,
        index: bool = True,
        on_c_store: StoreHook | None = None,
        transfer_syntaxes: Sequence[str] | None = None,
        durable: bool = True,
        accept_unknown_sop_classes: bool = False,
        on_stored: StoredObserver | None = None,
        on_refused: RefusedObserver | None = None,
        min_free: FreeSpace | str | int | None = None,
    ) -> None:
        # Checked before the store is opened (its lock taken).
        policy = duplicate_policy(duplicates)
        reserve = (min_free if isinstance(min_free, FreeSpace | None)
                   else FreeSpace.parse(min_free) if isinstance(min_free, str)
                   else FreeSpace(size=min_free))
        for name, observer in (("on_stored", on_stored), ("on_refused", on_refused)):
            if observer is not None and _is_coroutine_function(observer):
                raise ConfigurationError(
                    f"{name} must be a plain function (a quick observer, run on the "
                    f"event loop); {observer!r} is a coroutine function, which nothing "
                    "would await: use on_c_store for work the sender waits for, or have "
                    f"{name} put the object on your own queue")
        self.on_c_store = on_c_store
        self.on_stored = on_stored
        self.on_refused = on_refused
        super().__init__(root, duplicates=policy, layout=layout, index=index,
                         durable=durable, min_free=reserve)
        accepted = tuple(transfer_syntaxes) if transfer_syntaxes is not None else None
        self.contexts: Mapping[str, Sequence[str] | None] = StorageContexts(
            accepted, unknown=accept_unknown_sop_classes)

    def open_sink(self, assoc: ServerAssociation, context_id: int,
                  message: DimseMessage) -> StoreSink:
        """Where a C-STORE's data set streams as it arrives: a temporary file
        after its Part 10 header, or a sink that keeps the refusal to answer."""
        assert isinstance(message, CStoreRQ)
        if assoc.failure is not None:
            # The command arrived in the same read as the A-ABORT (or the transport
            # closing): the association already failed, and nobody would ever abort a
            # sink opened now, so its temporary file would stay behind.
            return StoreSink(error=f"association aborted: {assoc.failure}")
        ctx = assoc.contexts.get(context_id)
        if ctx is None:
            return StoreSink(error="presentation context not accepted")
        if ctx.abstract_syntax != message.affected_sop_class_uid:
            # PS3.7 9.1.1.1: the SOP Class is the presentation context's abstract
            # syntax; a C-STORE on the Verification context, say, stores nothing.
            return StoreSink(error="SOP Class differs from the presentation context's",
                              status=SOP_CLASS_NOT_SUPPORTED)
        try:
            header = part10_header(
                sop_class_uid=message.affected_sop_class_uid,
                sop_instance_uid=message.affected_sop_instance_uid,
                transfer_syntax_uid=ctx.transfer_syntax,
                implementation_class_uid=IMPLEMENTATION_CLASS_UID,
                implementation_version_name=IMPLEMENTATION_VERSION_NAME,
                source_ae_title=assoc.calling_ae_title or None,
            )
            # Should it spill, its temporary file goes in the root; the final folder
            # is known once the data set (study, series) has arrived. The UID was
            # checked just above (part10_header: safe_uid); this is what safe_uid
            # returns for it, without checking it twice per object.
            provisional = (self.root, message.affected_sop_instance_uid.rstrip("\x00 ") + ".dcm")
        except UnsafeNameError as exc:
            return StoreSink(error=f"refused unsafe UID: {exc}")
        except ConfigurationError as exc:
            return StoreSink(error=str(exc))
        return StoreSink(header, provisional, durable=self.durable,
                          transfer_syntax=ctx.transfer_syntax, space=self.space)

    async def handle(self, assoc: ServerAssociation, context_id: int, message: DimseMessage,
                     sink: object) -> Sequence[Response]:
        """Store a received C-STORE (PS3.4 B.2.2) and answer its C-STORE-RSP."""
        assert isinstance(message, CStoreRQ)
        status, comment = await self._store(assoc, context_id, message, sink)
        return [(response(message, status, comment), None)]

    def start(self, assoc: ServerAssociation, context_id: int, message: DimseMessage,
              sink: object, answer: Answer) -> bool:
        """Hand a data set received in memory to the store thread, which answers
        through ``answer`` once it is durable: no task per object (see
        ``ServiceProvider``). Anything else (a spilled or refused data set, an
        ``on_c_store`` handler to run) goes through :meth:`handle`."""
        # Classes compared, not isinstance (two built-in calls per object): a
        # subclass of either goes through handle(), which takes anything.
        if (self.on_c_store is not None or message.__class__ is not CStoreRQ
                or sink.__class__ is not StoreSink
                or not sink.check_complete(message.affected_sop_instance_uid)
                or sink.writer is not None or sink.buffer is None):
            return False
        buffer = sink.buffer
        # log_oddities has a line only for these: most objects need no call to it.
        if (sink.relabelled is not None or sink.trailing or sink.stray is not None
                or (buffer.size if buffer.__class__ is AlignedBuffer else len(buffer)) % 2):
            log_oddities(assoc, message, sink)
        sink.buffer = None
        syntax = sink.transfer_syntax or assoc.contexts[context_id].transfer_syntax
        self._committer.submit_call(Job(buffer, message, syntax, assoc, answer),
                                    self._answer_stored)
        return True

    def _answer_stored(self, job: Job, outcome: Stored | BaseException) -> None:
        message, answer = job.message, job.answer
        assert answer is not None
        if (outcome.__class__ is Stored and self.on_stored is None
                and not outcome.duplicate):
            # The usual answer: _status's first case, without its call per object.
            answer(response(message, SUCCESS, None))
            return
        try:
            status, comment = self._status(job.assoc, message, outcome)
        except BaseException as exc:  # not a storage failure: the association ends
            answer(exc)
            return
        answer(response(message, status, comment))

    async def _store(self, assoc: ServerAssociation, context_id: int, message: CStoreRQ,
                     sink: object) -> tuple[int, str | None]:
        if not isinstance(sink, StoreSink) or not sink.check_complete(
                message.affected_sop_instance_uid) or (
            sink.writer is None and sink.buffer is None
        ):
            # An Error Comment is one LO value: 64 characters at most (PS3.7 C.4).
            error = getattr(sink, "error", None) or (
                "no data set received" if message.has_dataset
                else "no data set: Command Data Set Type (0000,0800) is 0101H")
            status = getattr(sink, "status", CANNOT_UNDERSTAND)
            detail = getattr(sink, "detail", None)
            refuse(self.on_refused, assoc, message, status, detail or error,
                   level=logging.ERROR if detail else logging.WARNING)
            return status, error
        log_oddities(assoc, message, sink)
        writer, buffer = sink.writer, sink.buffer
        sink.writer = sink.buffer = None
        # The data set's own: the context's, unless the sink relabelled it.
        transfer_syntax = sink.transfer_syntax or assoc.contexts[context_id].transfer_syntax
        outcome: Stored | BaseException
        commit: asyncio.Future[Stored]
        if writer is None:
            # In memory: written, with others of its round, by the store thread.
            assert buffer is not None
            commit = self._committer.submit(Job(buffer, message, transfer_syntax, assoc))
        else:
            commit = asyncio.get_running_loop().run_in_executor(
                None, functools.partial(
                    self._commit, writer, message, transfer_syntax=transfer_syntax,
                    assoc=assoc))
        try:
            # Shielded: an operation cancelled because its association ended must
            # not cancel a commit the executor has not started yet (its temporary
            # file would stay, with no one to remove it: found by fuzzing). The
            # commit goes on, as the store thread's do; only its answer is dropped.
            outcome = await asyncio.shield(commit)
        except (StorageError, Refused) as exc:
            outcome = exc
        except asyncio.CancelledError:
            await self._settle_unanswered(assoc, message, commit)
            raise
        status, comment = self._status(assoc, message, outcome)
        if status != SUCCESS or self.on_c_store is None:
            return status, comment
        assert isinstance(outcome, Stored)
        return await run_hook(self.on_c_store, outcome.instance(message, assoc))

    async def _settle_unanswered(self, assoc: ServerAssociation, message: CStoreRQ,
                                 commit: asyncio.Future[Stored]) -> None:
        """The operation was cancelled (its association ended) while ``commit``
        stored its object: what it stores is told all the same (``on_stored``),
        as the store thread's objects are, and before the association's end is:
        waited for up to the operation timeout (``Timeouts.operation``; a hung
        disk is let go, its object told when it ends). Not answered, and
        ``on_c_store`` is not run: the peer never hears of it."""
        # Cancelled again (the server closing): told when it ends.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait((commit,), timeout=assoc.timeouts.operation)
        if commit.done():
            self._settled_late(assoc, message, commit)
        else:
            commit.add_done_callback(functools.partial(self._settled_late, assoc, message))

    def _settled_late(self, assoc: ServerAssociation, message: CStoreRQ,
                      commit: asyncio.Future[Stored]) -> None:
        """Tell (or log the refusal of) an object its cancelled operation stored."""
        if commit.cancelled():
            return
        outcome = commit.exception() or commit.result()
        if isinstance(outcome, Stored | StorageError | Refused):
            self._status(assoc, message, outcome)

    def _status(self, assoc: ServerAssociation, message: CStoreRQ,
                outcome: Stored | BaseException) -> tuple[int, str | None]:
        """The status (and Error Comment) for a store's outcome, a refusal logged
        once; an exception that is no storage failure or refusal is raised again."""
        if isinstance(outcome, Stored):  # first: the usual case, one call
            if outcome.duplicate and self.duplicates is DuplicatePolicy.REJECT:
                # A failure as the others are: its line, and on_refused (not on_stored);
                # at INFO, as a duplicate kept: the operator's policy, no anomaly.
                refuse(self.on_refused, assoc, message, DUPLICATE_INSTANCE,
                       f"duplicate SOP Instance UID, already stored at "
                       f"{self._relative(outcome.path)} (duplicates policy reject)",
                       level=logging.INFO, path=outcome.path)
                return DUPLICATE_INSTANCE, "duplicate SOP Instance UID"
            if self.on_stored is not None:
                self._tell_stored(outcome.instance(message, assoc))
            return SUCCESS, None
        if isinstance(outcome, StorageError):
            status = OUT_OF_RESOURCES if outcome.out_of_resources else PROCESSING_FAILURE
            refuse(self.on_refused, assoc, message, status, str(outcome), level=logging.ERROR)
            # The peer learns why, not where: no local path in the Error Comment.
            return status, f"cannot store: {outcome.reason}"
        if isinstance(outcome, Refused):
            refuse(self.on_refused, assoc, message, outcome.status, str(outcome),
                   level=logging.WARNING)
            return outcome.status, str(outcome)
        raise outcome

    def _tell_stored(self, outcome: StoredInstance) -> None:
        """Tell ``on_stored`` of an object stored; what it raises is logged (the
        object is stored all the same)."""
        assert self.on_stored is not None
        try:
            with contained("on_stored observer"):  # its SystemExit too
                told = self.on_stored(outcome)
        except Exception:  # an observer's bug
            log.exception("C-STORE %s: the on_stored observer failed",
                          outcome.sop_instance_uid)
            return
        if inspect.iscoroutine(told):  # a plain lambda around a coroutine function
            told.close()  # never run: closed here, not left to a RuntimeWarning
            log.error("C-STORE %s: the on_stored observer returned a coroutine, which "
                      "nothing awaits: it was not run", outcome.sop_instance_uid)
