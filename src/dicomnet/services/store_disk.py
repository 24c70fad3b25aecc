"""The disk side of a :class:`~dicomnet.services.storage.StorageSCP`: its store's
folder held (store_opening), and a received data set put there for good
(PS3.4 B.2.2: stored before Success answered): its header read and its place
chosen (``Layout.place``), written, made durable, given its final name per the
duplicate policy (storage.files.AtomicWriter, storage.instances), its folder
fsynced, then its index row queued to the index thread (no row without a durable
file). Data sets received in memory go through the store thread in pipelined
rounds (``_start_round``, ``_finish_round``); a spilled one through ``_commit``
in a worker thread. The DIMSE side (sinks, answers, handlers, observers) is
:mod:`dicomnet.services.storage`'s, a subclass of :class:`StoreDisk`, so that
the store thread calls the same methods as before the split (no call added per
object).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..dimse.messages import CStoreRQ
from ..dimse.status import CANNOT_UNDERSTAND, PROCESSING_FAILURE
from ..dimse.status import DATASET_DOES_NOT_MATCH_SOP_CLASS as DATASET_MISMATCH
from ..errors import ConfigurationError
from ..storage.cleanup import open_index
from ..storage.damage import damaged_part10
from ..storage.direct import AlignedBuffer, DirectBatch
from ..storage.files import (
    AtomicWriter,
    CommitOutcome,
    CommitResult,
    DuplicatePolicy,
    Layout,
    StorageError,
    sync_folder,
)
from ..storage.header import HeaderAttributes, read_header
from ..storage.index import INDEX_NAME, NewInstance
from ..storage.instances import IndexRow, InstanceLocator
from ..storage.layout import PlacedFolder
from ..storage.names import UnsafeNameError
from ..storage.space import FreeSpace, SpaceReserve
from ..storage.syncfs import can_sync_together, sync_together
from .store_answers import Refused, Stored
from .store_jobs import Job, Round, finish_writes, round_size
from .store_opening import open_store
from .workers import Background, BatchWorker

if TYPE_CHECKING:
    from ..aio.server_association import ServerAssociation

__all__ = ["StoreDisk", "duplicate_policy"]

log = logging.getLogger("dicomnet.services")

#: What placing an object reads from its header (one ``texts`` call; four
#: ``text`` calls were three Python calls more per object).
_PLACING = ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID")


def duplicate_policy(duplicates: str | DuplicatePolicy) -> DuplicatePolicy:
    """``duplicates`` as a policy, or ``ConfigurationError``."""
    try:
        return DuplicatePolicy(duplicates)
    except ValueError as exc:
        raise ConfigurationError(
            f"duplicates must be keep, overwrite or reject, got {duplicates!r}"
        ) from exc


class StoreDisk:
    """A store's folder held, and the objects received written into it, named and
    indexed (see the module's docstring; the options are ``StorageSCP``'s)."""

    def __init__(self, root: Path | str, *, duplicates: DuplicatePolicy, layout: Layout,
                 index: bool, durable: bool, min_free: FreeSpace | None = None) -> None:
        self.root = Path(root)
        # Paths are text on the store thread (Layout.place_in): a Path per object
        # made, hashed and turned into text was ~16 Python calls and a dropped
        # AttributeError; the handler's is the one made, at the end.
        self._root_text = os.fspath(self.root)
        self._root_prefix = os.path.join(self._root_text, "")
        self._root_prefix_length = len(self._root_prefix)
        self.durable = durable
        self.duplicates = duplicates
        self.layout = layout
        #: The free space the store keeps (storage.space), or None: none kept.
        #: Before the store is opened: a folder whose file system cannot say
        #: leaves nothing to close.
        self.space = SpaceReserve(self._root_text, min_free) if min_free else None
        # sweep: what an interrupted run left, cleared while serving (StaleSweep).
        # recovery: after a server that did not close, its objects without rows
        # indexed while serving (storage.recovery).
        self._opened = opened = open_store(self.root, index=index, duplicates=self.duplicates)
        self._lock, self.index, self.sweep = opened.lock, opened.index, opened.sweep
        self.recovery, self._rows_lost = opened.recovery, False
        if self.space is not None:
            self.space.warn_if_short()
        # Duplicates found by SOP Instance UID wherever the file is; without an
        # index, only at the same path.
        self._locator = (InstanceLocator(self.root, self.index, self._relative,
                                         durable=durable)
                         if self.index is not None else None)
        # Rows wait up to 50 ms for others, so that a series arriving is indexed
        # a few hundred rows per transaction (the files are already durable).
        # Held by a batch of rows being written: the index is replaced between two
        # (_new_index), never under one.
        self._swapping = threading.Lock()
        # A round's rows are queued together (one put per round, not per object:
        # three Python calls each, and the index thread's take of each).
        self._index_writer: Background[list[IndexRow]] = Background(
            "dicomnet-index", self._write_index_rows, linger=0.05)
        # Pipelined: the disk writes one round while the thread names the last.
        self._committer: BatchWorker[Job, Stored] = BatchWorker.pipelined(
            "dicomnet-store", self._start_round, self._finish_round, round_size=round_size)
        self._closed = False

    def flush_index(self) -> None:
        """Wait until every stored object's index row is written."""
        self._index_writer.flush()

    def close(self) -> None:
        """Finish pending stores, write the pending index rows and close the index
        (the server calls this when it closes; calling it again does nothing); a
        start-up sweep still running stops first, its walk not waited for."""
        self._opened.stop()  # before the lock goes: another server may start then
        self._committer.close()
        self._index_writer.close()
        self._opened.close(rows_lost=self._rows_lost)  # how it stopped, once only
        if self.index is not None and not self._closed:
            self.index.close()
        self._lock.release()
        self._closed = True

    def _place(self, buffer: bytearray | AlignedBuffer | None, writer: AtomicWriter | None,
               message: CStoreRQ, transfer_syntax: str,
               ) -> tuple[HeaderAttributes, PlacedFolder, str]:
        """Read the header attributes and choose the folder and the file's name
        in it (worker thread; ``Layout.place_in``). Raises ``Refused``; a spilled
        object's temporary file is then removed."""

        def refuse(status: int, text: str) -> Refused:
            if writer is not None:
                writer.abort()
            return Refused(status, text)

        try:
            header = read_header(
                # store_sink.contents, inline (a call per object).
                buffer.view() if isinstance(buffer, AlignedBuffer) else buffer,
                None if writer is None else writer.temp_filename, transfer_syntax)
        except OSError as exc:
            # The spilled file gone (the store's folder removed under it), or not
            # readable (EIO, EMFILE): the store failed, not the data set (C000 would
            # tell the sender not to send it again).
            what = "is gone" if isinstance(exc, FileNotFoundError) else "cannot be read"
            raise refuse(PROCESSING_FAILURE, f"cannot store: its temporary file {what} "
                         f"({exc.strerror or exc})") from exc
        except Exception as exc:
            raise refuse(CANNOT_UNDERSTAND, f"data set cannot be parsed: {exc}") from exc
        try:
            try:
                values: list[str | None] | None = header.texts(_PLACING)
            except Exception:
                # A value pydicom cannot convert (a header it read): read one by one
                # below, so that the refusals come in the same order as ever.
                values = None
            for position, keyword, name, expected in (
                    (0, "SOPInstanceUID", "SOP Instance UID", message.affected_sop_instance_uid),
                    (1, "SOPClassUID", "SOP Class UID", message.affected_sop_class_uid)):
                value = header.text(keyword) if values is None else values[position]
                if value is None:
                    # A data set that does not say what it is (SOP Common, type 1):
                    # C000 as DCMTK's storescp answers, not stored under the command's.
                    tag = "(0008,0018)" if keyword == "SOPInstanceUID" else "(0008,0016)"
                    raise Refused(CANNOT_UNDERSTAND, f"no {name} {tag} in the data set")
                if value != expected:
                    raise Refused(DATASET_MISMATCH, f"{name} in the data set differs from the "
                                  "command")
            study, series = ((header.text("StudyInstanceUID"), header.text("SeriesInstanceUID"))
                             if values is None else (values[2], values[3]))
            if self.layout is Layout.HIERARCHICAL and (study is None or series is None):
                # Said whole within the Error Comment's 64 characters (LO).
                raise Refused(CANNOT_UNDERSTAND, "cannot place the object: no " + (
                    "Study or Series Instance UID" if study is None and series is None
                    else "Study Instance UID (0020,000D)" if study is None
                    else "Series Instance UID (0020,000E)"))
            folder, name = self.layout.place_in(
                self._root_text, sop_instance_uid=message.affected_sop_instance_uid,
                study_instance_uid=study, series_instance_uid=series)
        except (UnsafeNameError, StorageError) as exc:
            raise refuse(CANNOT_UNDERSTAND, f"cannot place the object: {exc}") from exc
        except Refused as exc:
            raise refuse(exc.status, str(exc)) from exc
        except Exception as exc:
            # pydicom decodes values lazily: an invalid value can raise here (reading
            # validation set to raise, or its warning turned into an error). The
            # temporary file must not outlive the refusal.
            raise refuse(CANNOT_UNDERSTAND, f"data set cannot be parsed: {exc}") from exc
        return header, folder, name

    def _commit(self, writer: AtomicWriter, message: CStoreRQ, *, transfer_syntax: str,
                assoc: ServerAssociation) -> Stored:
        """Runs in a worker thread for a data set that spilled to a temporary file
        (received on ``assoc``): parse its header, fsync, rename, then queue its
        index row."""
        try:
            self._follow_root()
            writer.flush()  # the header is read back from the file
            if self.space is not None:  # its bytes are on disk: none incoming
                self.space.check()
        except StorageError:
            writer.abort()
            raise
        header, folder, name = self._place(None, writer, message, transfer_syntax)
        # Spilled under a provisional name (store_sink): named into its folder now.
        result, generation = self._name(writer, message, folder, name, folder.prefix + name,
                                        synced=False)
        self._follow_root_again()
        rows: list[IndexRow] = []
        try:
            if self.durable and result.stored:  # named at destination, in folder
                try:
                    sync_folder(folder.text)
                except StorageError:
                    self._index(header, result, message, folder.relative + name,
                                transfer_syntax=transfer_syntax, assoc=assoc,
                                generation=generation, rows=rows)
                    raise
            self._settled(message, generation)
            return self._stored(header, result, message, folder, name,
                                transfer_syntax=transfer_syntax, assoc=assoc,
                                generation=generation, rows=rows)
        finally:
            if rows:
                self._index_writer.put(rows)

    def _follow_root(self) -> None:
        """Store only into the folder this server holds: one removed under it (rm -rf
        of the store) and made again is locked again first (storage.lock), so
        that a second server cannot start on it, or refused if one already has."""
        if not self._lock.follow(self._new_index):
            return
        index = self.index
        log.warning("the store's folder %s was removed while in use, with the objects%s it "
                    "held; made again, it holds the objects stored since%s, and this server "
                    "keeps it (one server per folder)", self.root,
                    "" if index is None else " and the index",
                    ", in a new index" if index is not None and not index.closed else "")

    def _follow_root_again(self) -> None:
        """After names were given: the folder removed since :meth:`_follow_root` was
        made again by the names themselves (their folders' parents are made as
        needed), without the lock and the new index; followed now, before the
        names' rows are queued, so that they go to the new index (their files
        are there) rather than with the removed one. One stat per round."""
        try:
            self._follow_root()
        except StorageError as exc:  # another server's folder: the next round refuses
            log.error("%s", exc)

    def _new_index(self) -> None:
        """The store's folder was made again and locked (before anything is stored
        into it): close the index that went with the old one and open a new one
        there, so that the objects stored from now on are indexed and their
        duplicates found. The objects stored before went with the old folder,
        and their rows with its index; rows still queued for them are dropped."""
        if self._locator is None:
            return
        with self._swapping:
            try:
                self.index = self._locator.replace_index(  # this start recorded in it
                    lambda: self._opened.reopened(open_index(self.root / INDEX_NAME)))
            except StorageError as exc:
                log.error("cannot open a new index in %s: %s; the objects stored from now on "
                          "have no rows until, with the server stopped, 'dicomnet reindex "
                          "--create %s' restores them", self.root, exc, self.root)

    def _name(self, writer: AtomicWriter, message: CStoreRQ, folder: PlacedFolder, name: str,
              destination: str, *, synced: bool) -> tuple[CommitResult, int | None]:
        """Give a written object its final name, ``destination`` (``name`` in
        ``folder``), per the duplicate policy (the folder's fsync is the
        caller's); with an index, wherever the instance already is
        (storage.instances). ``destination`` is the writer's own
        ``destination_name`` when it was made there: the commit then knows the
        folder is made (it compares the two by identity)."""
        # A damaged copy (storage.damage) is no reason to discard a duplicate.
        if self._locator is None:
            return writer.commit(self.duplicates, destination=destination, sync_folder=False,
                                 synced=synced, damaged=damaged_part10), None
        if not synced:
            writer.make_durable()  # the file's fsync outside the locator's lock
        return self._locator.commit(writer, message.affected_sop_instance_uid, destination,
                                    self.duplicates, damaged=damaged_part10,
                                    relative=folder.relative + name)

    def _settled(self, message: CStoreRQ, generation: int | None) -> None:
        if self._locator is not None:  # copies replaced elsewhere go once indexed
            self._locator.settled(message.affected_sop_instance_uid, generation)

    def _start_round(self, jobs: list[Job]) -> Round:
        """The first half of a store-thread round: choose each in-memory data set's
        path and start writing it to an unnamed file. Page-aligned ones are
        submitted together with O_DIRECT (storage.direct) and not waited for: the
        store thread finishes the previous round (fsync, names) while the disk
        writes this one. Nothing here gives a name or answers."""
        # A round of two or more is made durable with one syncfs, when little else
        # waits to be written (sync_together); otherwise each file is fsynced, and
        # its sync is started here, so that the fsyncs wait for writes in flight
        # together.
        together = self.durable and len(jobs) > 1 and can_sync_together()
        written: list[tuple[HeaderAttributes, PlacedFolder, str, AtomicWriter] | BaseException] = []
        batch = DirectBatch()
        try:
            self._follow_root()
        except StorageError as exc:
            return Round(jobs, [exc] * len(jobs), batch, together)
        # One reading of the free space for the round, each object taken from it.
        space = self.space
        free = None if space is None else space.available()
        for job in jobs:
            try:
                if free is not None:
                    assert space is not None
                    buffer = job.buffer
                    size = len(buffer) if isinstance(buffer, bytearray) else buffer.size
                    if free - size < space.minimum:
                        raise space.refusal(free, size)
                    free -= size
                header, folder, name = self._place(job.buffer, None, job.message,
                                                   job.transfer_syntax)
                writer = AtomicWriter(folder.prefix + name, durable=self.durable, unnamed=True,
                                      folder=folder.text)
                try:
                    buffer = job.buffer
                    # One isinstance per object: a small data set through the page
                    # cache; a page-aligned one directly, else (store_sink.contents,
                    # inline) through the page cache too.
                    if isinstance(buffer, bytearray):
                        writer.write(buffer)
                        if not together:
                            writer.start_sync()
                    elif not writer.write_in(batch, buffer):
                        writer.write(buffer.view())
                        if not together:
                            writer.start_sync()
                except BaseException:
                    writer.abort()  # no temporary file outlives a failure
                    raise
                written.append((header, folder, name, writer))
            except Exception as exc:
                written.append(exc)
            except BaseException:
                finish_writes(jobs, batch)
                for entry in written:
                    if not isinstance(entry, BaseException):
                        entry[3].abort()
                raise
        # The round's direct writes go to the device together, while the previous
        # round is finished.
        batch.submit()
        return Round(jobs, written, batch, together)

    def _finish_round(self, started: Round) -> list[Stored | BaseException]:
        """The second half of a round (PS3.4 B.2.2: stored before Success): wait for
        the writes, make the files durable (one ``syncfs`` for the round, or an
        fsync each), name them, fsync each folder once, and give one answer per
        job, in order."""
        jobs, written = started.jobs, started.written
        failed = finish_writes(jobs, started.batch)
        # Per job: its header, folder, file name, commit result and name's generation.
        done: list[tuple[HeaderAttributes, PlacedFolder, str, CommitResult, int | None]
                   | BaseException] = []
        synced = started.together and sync_together([
            entry[3] for entry in written
            if not isinstance(entry, BaseException)
            and (not failed or entry[3].fileno() not in failed)])
        locator = self._locator
        for job, entry in zip(jobs, written, strict=True):
            if isinstance(entry, BaseException):
                done.append(entry)
                continue
            header, folder, name, writer = entry
            if failed and writer.fileno() in failed:
                done.append(StorageError.from_os_error(
                    "cannot write", writer.destination, failed[writer.fileno()]))
                writer.abort()
                continue
            try:
                if locator is None:
                    result, generation = self._name(writer, job.message, folder, name,
                                                    writer.destination_name, synced=synced)
                else:  # _name's, inline (a call per object)
                    if not synced:
                        writer.make_durable()  # the file's fsync outside the locator's lock
                    result, generation = locator.commit(
                        writer, job.message.affected_sop_instance_uid, writer.destination_name,
                        self.duplicates, damaged=damaged_part10, relative=folder.relative + name)
                done.append((header, folder, name, result, generation))
            except Exception as exc:  # commit removed the temporary file
                done.append(exc)
        self._follow_root_again()
        unsynced: dict[str, StorageError] = {}
        if self.durable:
            # Those named in (result.stored without its call per object); one
            # PlacedFolder per folder, hashed by identity.
            folders = {outcome[1] for outcome in done
                       if not isinstance(outcome, BaseException)
                       and (outcome[3].outcome is CommitOutcome.STORED
                            or outcome[3].outcome is CommitOutcome.REPLACED)}
            for folder in folders:
                try:
                    sync_folder(folder.text)
                except StorageError as exc:
                    unsynced[folder.text] = exc
        answers: list[Stored | BaseException] = []
        rows: list[IndexRow] = []  # queued once the round's answers are made, before
        try:
            for job, outcome in zip(jobs, done, strict=True):
                if isinstance(outcome, BaseException):
                    answers.append(outcome)
                    continue
                header, folder, name, result, generation = outcome
                if unsynced and os.path.dirname(result.filename) in unsynced:
                    answers.append(unsynced[os.path.dirname(result.filename)])
                    if result.stored:  # not a duplicate kept in that folder
                        self._index(header, result, job.message, folder.relative + name,
                                    transfer_syntax=job.transfer_syntax, assoc=job.assoc,
                                    generation=generation, rows=rows)
                else:
                    if locator is not None:  # _settled, without its call per object
                        locator.settled(job.message.affected_sop_instance_uid, generation)
                    answers.append(self._stored(
                        header, result, job.message, folder, name,
                        transfer_syntax=job.transfer_syntax, assoc=job.assoc,
                        generation=generation, rows=rows))
        finally:
            if rows:
                self._index_writer.put(rows)
        return answers

    def _stored(self, header: HeaderAttributes, result: CommitResult, message: CStoreRQ,
                folder: PlacedFolder, name: str, *, transfer_syntax: str,
                assoc: ServerAssociation, generation: int | None,
                rows: list[IndexRow]) -> Stored:
        """The answer for an object named (``result``): its row appended to
        ``rows`` unless it is a duplicate, which is logged (:meth:`_kept`)."""
        outcome = result.outcome
        if outcome is CommitOutcome.DUPLICATE_KEPT or outcome is CommitOutcome.DUPLICATE_REJECTED:
            self._kept(result, message, assoc.calling_ae_title, assoc.peer, rows)
            # The copy kept, wherever it is.
            return Stored(None, result.filename, True, False, transfer_syntax)
        # The file is durable: its row may follow after the answer (the index's
        # rule is "no row without a durable file", and reindex restores rows a
        # crash lost). Off the critical path it costs nothing to the sender.
        self._index(header, result, message, folder.relative + name,
                    transfer_syntax=transfer_syntax, assoc=assoc, generation=generation,
                    rows=rows)
        replaced = outcome is CommitOutcome.REPLACED
        if replaced and self.duplicates is DuplicatePolicy.OVERWRITE:
            # Said as a duplicate kept is: the sender hears Success either way.
            log.info("C-STORE %s from %s@%s:%s: an earlier copy replaced (duplicates policy "
                     "overwrite)", message.affected_sop_instance_uid, assoc.calling_ae_title,
                     *assoc.peer[:2])
        # No Path here: made (the folder's and the name) if a handler reads one.
        return Stored(folder.path, name, False, replaced, transfer_syntax)

    def _kept(self, result: CommitResult, message: CStoreRQ, calling_ae: str,
              peer: tuple[str, int], rows: list[IndexRow]) -> None:
        """A duplicate discarded for the copy at ``result.path``: said at INFO, as
        with keep the sender hears Success and a corrected resend shows only here;
        a row the index lost for that copy is read back from it and added to
        ``rows``, in its place among the round's."""
        uid, relative = message.affected_sop_instance_uid, self._relative(result.filename)
        row = self._locator.lost_row(uid, relative) if self._locator is not None else None
        if row is not None:
            rows.append((row, uid, None))
        if row is None and self.duplicates is DuplicatePolicy.REJECT:
            return  # the refusal's line says it (_status), with its status
        log.info("C-STORE %s from %s@%s:%s: already stored at %s, %s (duplicates policy %s)%s",
                 uid, calling_ae, *peer[:2], relative,
                 "kept" if self.duplicates is DuplicatePolicy.KEEP else "rejected",
                 self.duplicates.value, "; its lost index row restored" if row else "")

    def _index(self, header: HeaderAttributes, result: CommitResult, message: CStoreRQ,
               relative: str, *, transfer_syntax: str, assoc: ServerAssociation,
               generation: int | None, rows: list[IndexRow]) -> None:
        """Add to ``rows`` (the caller queues them) the row of a file just named
        (``relative``: its path below the root, from ``Layout.place_in``). Also
        when its folder could not be synced and failure is answered: the name
        stands (taking it back could remove what another association has
        meanwhile relied on or stored), so the index describes what is on disk;
        the copies it replaced stay."""
        if self.index is None:
            return
        # The stream's field, not Association.security (a property: a Python call
        # per object on the store thread).
        fingerprint, security = None, assoc.stream.security
        if security is not None and security.peer_certificates:
            fingerprint = security.peer_certificates[0].sha256_fingerprint
        rows.append((NewInstance(
            header, relative_path=relative,
            transfer_syntax_uid=transfer_syntax, size=result.size,
            calling_ae=assoc.calling_ae_title, peer_fingerprint=fingerprint,
        ), message.affected_sop_instance_uid, generation))

    def _relative(self, path: Path | str) -> str:
        """``path`` below the root, ``/``-separated (as the index keeps it)."""
        text = path if isinstance(path, str) else str(path)
        if text.startswith(self._root_prefix):  # cheaper than Path.relative_to
            text = text[self._root_prefix_length:]
            return text if os.sep == "/" else text.replace(os.sep, "/")
        return Path(path).relative_to(self.root).as_posix()

    def _write_index_rows(self, batches: list[list[IndexRow]]) -> None:
        """Write the rows queued (a round's, a spilled object's, a lost one's read
        back), in one transaction."""
        if self.index is None:
            return
        rows = batches[0] if len(batches) == 1 else [row for batch in batches for row in batch]
        written = False
        with self._swapping:
            index = self.index
            try:
                if index.closed:  # a spilled commit that outlived close(): reindex repairs
                    log.warning("%d index row(s) arrived after the index closed; with the "
                                "server stopped, 'dicomnet reindex %s' restores them",
                                len(rows), self.root)
                elif self._locator is None:
                    index.add_instances(row for row, _, _ in rows)
                else:  # only each instance's latest name's row (storage.instances)
                    chosen = self._locator.rows_to_write(rows)
                    # Fewer: the index logged those it could not take (locked, full).
                    written = index.add_instances(chosen) == len(chosen)
            finally:
                self._rows_lost |= not written  # the next start checks (storage.recovery)
                if self._locator is not None:
                    self._locator.rows_written(rows, written=written)
