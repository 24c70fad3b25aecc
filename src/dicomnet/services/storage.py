"""The Storage service (PS3.4 Annex B): C-STORE SCP into safe, atomic files with an
index, and a C-STORE SCU that sends Part 10 files from disk without decoding them.

SCP: each data set streams, as its PDVs arrive, into a temporary file beside
its destination, after a Part 10 header (PS3.10 7.1); when the last fragment is
in, the file is fsynced and renamed, the index learns of it, and only then is
Success answered. Any failure leaves no file under a final name.

SCU: presentation contexts are proposed from the files' own SOP classes and
transfer syntaxes; a file whose syntax was accepted as is goes from disk to the
wire untouched; an uncompressed file is converted by pydicom when only another
uncompressed syntax was accepted; a compressed file nobody accepted is skipped
with its reason.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ..config import Timeouts
from ..dimse.fragments import max_pdv_data_length
from ..dimse.messages import CStoreRQ, CStoreRSP, DimseMessage
from ..errors import ConfigurationError, DicomNetError
from ..security.config import TLSConfig
from ..security.info import SecurityInfo
from ..storage.files import (
    AtomicWriter,
    CommitOutcome,
    CommitResult,
    DuplicatePolicy,
    Layout,
    StorageError,
    cleanup_stale,
    sync_folder,
)
from ..storage.header import HeaderAttributes, read_header
from ..storage.index import NewInstance, StorageIndex
from ..storage.names import UnsafeNameError, safe_uid
from ..storage.part10 import Part10Info, part10_header, read_part10
from ..ul.negotiation import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, ContextRequest
from ..ul.pdu import pdata_header
from .workers import Background, BatchWorker

if TYPE_CHECKING:
    from ..aio.client import ClientAssociation
    from ..aio.server import Response, ServerAssociation
    from ..aio.transport import SecureLinkHook

__all__ = [
    "INDEX_NAME",
    "StorageSCP",
    "StoreResult",
    "StoredInstance",
    "collect_files",
    "store_paths",
]

log = logging.getLogger("dicomnet.services")

INDEX_NAME = "index.sqlite"
IMPLICIT_LE = str(ImplicitVRLittleEndian)
EXPLICIT_LE = str(ExplicitVRLittleEndian)
DEFLATED_LE = str(DeflatedExplicitVRLittleEndian)
EXPLICIT_BE = str(ExplicitVRBigEndian)
UNCOMPRESSED = (EXPLICIT_LE, IMPLICIT_LE, DEFLATED_LE, EXPLICIT_BE)

# C-STORE statuses (PS3.4 B.2.3, PS3.7 C).
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
DUPLICATE_INSTANCE = 0x0111
PROCESSING_FAILURE = 0x0110


def _storage_sop_classes() -> list[str]:
    """Every Storage SOP Class pydicom knows (PS3.4 B.5), for the SCP's contexts."""
    from pydicom.uid import UID_dictionary  # type: ignore[attr-defined]

    return sorted(
        uid for uid, entry in UID_dictionary.items()
        if entry[1] == "SOP Class" and "Storage" in entry[0] and "Commitment" not in entry[0]
    )


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """What ``on_c_store`` receives once an object is durable on disk."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    calling_ae_title: str
    security: SecurityInfo | None
    duplicate: bool

    def dataset(self, *, stop_before_pixels: bool = False) -> Dataset:
        """Read the stored file (lazily, only when asked)."""
        return pydicom.dcmread(self.path, stop_before_pixels=stop_before_pixels)


StoreHook = Callable[[StoredInstance], int | None | Awaitable[int | None]]


#: Data sets up to this size are received in memory and written in one go by a
#: worker thread, so no file-system call blocks the event loop for them; larger
#: ones spill to a temporary file as they arrive: memory stays bounded. 1 MiB
#: keeps a 512x512 16-bit image in memory, and bounds what a window of 32
#: operations holds to 32 MiB (with 4 MiB, a server receiving 256 MB objects
#: peaked 6 MiB higher, growing that buffer before spilling it).
SPILL_THRESHOLD = 1 << 20
#: Once spilled, where the file system has no O_DIRECT (see AtomicWriter's
#: ``direct``), bytes are pushed to disk every this many in a worker thread, so
#: the fsync before the answer has little left to wait for.
SYNC_EVERY = 32 << 20


class _StoreSink:
    """Receives one C-STORE data set after its Part 10 header: in memory while
    small, then into an AtomicWriter's temporary file."""

    __slots__ = ("_syncing", "_unsynced", "buffer", "durable", "error", "provisional", "status",
                 "writer")

    def __init__(self, header: bytes = b"", provisional: tuple[Path, str] | None = None,
                 error: str | None = None, *, durable: bool = True) -> None:
        self.durable = durable
        self.buffer: bytearray | None = bytearray(header) if error is None else None
        self.provisional = provisional
        self.writer: AtomicWriter | None = None
        self.error = error
        self.status = CANNOT_UNDERSTAND
        self._unsynced = 0
        self._syncing: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            if self.writer is None:
                assert self.buffer is not None
                self.buffer += data
                if len(self.buffer) > SPILL_THRESHOLD and self.provisional is not None:
                    # Built only now: most data sets never spill, and a Path per
                    # object was a measurable part of receiving a small one.
                    folder, name = self.provisional
                    # Durable: straight to disk, as the answer waits for it anyway.
                    self.writer = AtomicWriter(folder / name, durable=self.durable,
                                               direct=self.durable)
                    self.writer.write(self.buffer)
                    self.buffer = None
            else:
                self.writer.write(data)
                self._unsynced += len(data)
                if self._unsynced >= SYNC_EVERY and self.durable and not self.writer.direct:
                    self._background_sync(self.writer)
        except StorageError as exc:
            self.error = str(exc)
            self.status = OUT_OF_RESOURCES if exc.out_of_resources else PROCESSING_FAILURE
            self.abort()

    def _background_sync(self, writer: AtomicWriter) -> None:
        if self._syncing is not None and not self._syncing.done():
            return
        self._unsynced = 0
        self._syncing = asyncio.get_running_loop().run_in_executor(None, writer.sync_data)

    def abort(self) -> None:
        self.buffer = None
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


class StorageSCP:
    """C-STORE SCP (PS3.4 B.2.2) writing Part 10 files under ``root``.

    ``duplicates``: "keep" (default; the first copy stays, Success is
    answered), "overwrite", or "reject" (failure 0111H, Duplicate SOP
    Instance). ``layout``: hierarchical (study/series/instance.dcm) or flat.
    ``on_c_store`` runs after the file is durable; it may return a status to
    answer instead of Success. ``durable=False`` skips the fsyncs (renames stay
    atomic: never a partial file under a final name, even if the process is
    killed; but a power cut may lose objects already acknowledged): for
    benchmarks and scratch stores only. Stale temporary files are removed
    when the SCP is created.
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
    ) -> None:
        self.root = Path(root)
        self._root_prefix = os.path.join(os.fspath(self.root), "")
        self.durable = durable
        try:
            self.duplicates = DuplicatePolicy(duplicates)
        except ValueError as exc:
            raise ConfigurationError(
                f"duplicates must be keep, overwrite or reject, got {duplicates!r}"
            ) from exc
        self.layout = layout
        self.on_c_store = on_c_store
        self.root.mkdir(parents=True, exist_ok=True)
        removed = cleanup_stale(self.root)
        if removed:
            log.warning("removed %d stale temporary file(s) under %s", removed, self.root)
        self.index = StorageIndex(self.root / INDEX_NAME) if index else None
        # Rows wait up to 50 ms for others, so that a series arriving is indexed
        # a few hundred rows per transaction (the files are already durable).
        self._index_writer: Background[NewInstance] = Background(
            "dicomnet-index", self._write_index_rows, linger=0.05)
        self._committer: BatchWorker[_Job, StoredInstance] = BatchWorker(
            "dicomnet-store", self._commit_batch)
        self._closed = False
        accepted = tuple(transfer_syntaxes) if transfer_syntaxes is not None else None
        self.contexts: Mapping[str, Sequence[str] | None] = dict.fromkeys(
            _storage_sop_classes(), accepted
        )

    def flush_index(self) -> None:
        """Wait until every stored object's index row is written."""
        self._index_writer.flush()

    def close(self) -> None:
        """Finish pending stores, write the pending index rows and close the index
        (the server calls this when it closes; calling it again does nothing)."""
        self._committer.close()
        self._index_writer.close()
        if self.index is not None and not self._closed:
            self.index.close()
        self._closed = True

    def open_sink(self, assoc: ServerAssociation, context_id: int,
                  message: DimseMessage) -> _StoreSink:
        assert isinstance(message, CStoreRQ)
        if assoc.failure is not None:
            # The command arrived in the same read as the A-ABORT (or the transport
            # closing): the association already failed, and nobody would ever abort a
            # sink opened now, so its temporary file would stay behind.
            return _StoreSink(error=f"association aborted: {assoc.failure}")
        ctx = assoc.contexts.get(context_id)
        if ctx is None:
            return _StoreSink(error="presentation context not accepted")
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
            # is known once the data set (study, series) has arrived.
            provisional = (self.root, safe_uid(message.affected_sop_instance_uid) + ".dcm")
        except UnsafeNameError as exc:
            return _StoreSink(error=f"refused unsafe UID: {exc}")
        except ConfigurationError as exc:
            return _StoreSink(error=str(exc))
        return _StoreSink(header, provisional, durable=self.durable)

    async def handle(self, assoc: ServerAssociation, context_id: int, message: DimseMessage,
                     sink: object) -> Sequence[Response]:
        assert isinstance(message, CStoreRQ)
        status, comment = await self._store(assoc, context_id, message, sink)
        rsp = CStoreRSP(
            message_id_being_responded_to=message.message_id,
            status=status,
            affected_sop_class_uid=_echoable_uid(message.affected_sop_class_uid),
            affected_sop_instance_uid=_echoable_uid(message.affected_sop_instance_uid),
            error_comment=_comment(comment),
        )
        return [(rsp, None)]

    async def _store(self, assoc: ServerAssociation, context_id: int, message: CStoreRQ,
                     sink: object) -> tuple[int, str | None]:
        if not isinstance(sink, _StoreSink) or sink.error is not None or (
            sink.writer is None and sink.buffer is None
        ):
            error = getattr(sink, "error", None) or "no data set received"
            log.warning("C-STORE %s from %s refused: %s", message.affected_sop_instance_uid,
                        assoc.calling_ae_title, error)
            return getattr(sink, "status", CANNOT_UNDERSTAND), error
        writer, buffer = sink.writer, sink.buffer
        sink.writer = sink.buffer = None
        transfer_syntax = assoc.contexts[context_id].transfer_syntax
        try:
            if writer is None:
                # In memory: written, with others of its round, by the store thread.
                assert buffer is not None
                instance = await self._committer.submit(_Job(
                    buffer, message, transfer_syntax, assoc.calling_ae_title, assoc.security))
            else:
                instance = await asyncio.get_running_loop().run_in_executor(
                    None, functools.partial(
                        self._commit, writer, message, transfer_syntax=transfer_syntax,
                        calling_ae=assoc.calling_ae_title, security=assoc.security))
        except StorageError as exc:
            log.error("C-STORE %s: %s", message.affected_sop_instance_uid, exc)
            return (OUT_OF_RESOURCES if exc.out_of_resources else PROCESSING_FAILURE), str(exc)
        except _Refused as exc:
            log.warning("C-STORE %s refused: %s", message.affected_sop_instance_uid, exc)
            return exc.status, str(exc)
        if instance.duplicate and self.duplicates is DuplicatePolicy.REJECT:
            return DUPLICATE_INSTANCE, "duplicate SOP Instance UID"
        status = SUCCESS
        if self.on_c_store is not None:
            result = self.on_c_store(instance)
            if asyncio.iscoroutine(result):
                result = await result
            if isinstance(result, int):
                status = result
        return status, None

    def _place(self, buffer: bytearray | None, writer: AtomicWriter | None,
               message: CStoreRQ, transfer_syntax: str) -> tuple[HeaderAttributes, Path]:
        """Read the header attributes and choose the final path (worker thread).
        Raises ``_Refused``; a spilled object's temporary file is then removed."""

        def refuse(status: int, text: str) -> _Refused:
            if writer is not None:
                writer.abort()
            return _Refused(status, text)

        try:
            header = read_header(buffer, None if writer is None else str(writer.temp_path),
                                 transfer_syntax)
        except Exception as exc:
            raise refuse(CANNOT_UNDERSTAND, f"data set cannot be parsed: {exc}") from exc
        try:
            if header.text("SOPInstanceUID") not in (None, message.affected_sop_instance_uid):
                raise _Refused(DATASET_MISMATCH,
                               "SOP Instance UID in the data set differs from the command")
            destination = self.layout.destination(
                self.root,
                sop_instance_uid=message.affected_sop_instance_uid,
                study_instance_uid=header.text("StudyInstanceUID"),
                series_instance_uid=header.text("SeriesInstanceUID"),
            )
        except (UnsafeNameError, StorageError) as exc:
            raise refuse(CANNOT_UNDERSTAND, f"cannot place the object: {exc}") from exc
        except _Refused as exc:
            raise refuse(exc.status, str(exc)) from exc
        except Exception as exc:
            # pydicom decodes values lazily: an invalid value can raise here (reading
            # validation set to raise, or its warning turned into an error). The
            # temporary file must not outlive the refusal.
            raise refuse(CANNOT_UNDERSTAND, f"data set cannot be parsed: {exc}") from exc
        return header, destination

    def _commit(self, writer: AtomicWriter, message: CStoreRQ, *, transfer_syntax: str,
                calling_ae: str, security: SecurityInfo | None) -> StoredInstance:
        """Runs in a worker thread for a data set that spilled to a temporary file:
        parse its header, fsync, rename, then queue its index row."""
        try:
            writer.flush()  # the header is read back from the file
        except StorageError:
            writer.abort()
            raise
        header, destination = self._place(None, writer, message, transfer_syntax)
        result = writer.commit(self.duplicates, destination=destination)
        return self._stored(header, result, message, transfer_syntax=transfer_syntax,
                            calling_ae=calling_ae, security=security)

    def _commit_batch(self, jobs: list[_Job]) -> list[StoredInstance | BaseException]:
        """The store thread's round: write, fsync and name each in-memory data set,
        then fsync each folder once (PS3.4 B.2.2: stored before Success)."""
        done: list[tuple[HeaderAttributes, CommitResult] | BaseException] = []
        # First write them all and start their I/O, then commit each: the fsyncs
        # then wait for writes already in flight together, not one after another.
        written: list[tuple[HeaderAttributes, Path, AtomicWriter] | BaseException] = []
        for job in jobs:
            try:
                header, destination = self._place(job.buffer, None, job.message,
                                                  job.transfer_syntax)
                writer = AtomicWriter(destination, durable=self.durable, unnamed=True)
                try:
                    writer.write(job.buffer)
                    writer.start_sync()
                except BaseException:
                    writer.abort()  # no temporary file outlives a failure
                    raise
                written.append((header, destination, writer))
            except Exception as exc:
                written.append(exc)
        for entry in written:
            if isinstance(entry, BaseException):
                done.append(entry)
                continue
            header, destination, writer = entry
            try:
                done.append((header, writer.commit(self.duplicates, destination=destination,
                                                   sync_folder=False)))
            except Exception as exc:  # commit removed the temporary file
                done.append(exc)
        unsynced: dict[Path, StorageError] = {}
        if self.durable:
            folders = {outcome[1].path.parent for outcome in done
                       if not isinstance(outcome, BaseException) and outcome[1].stored}
            for folder in folders:
                try:
                    sync_folder(folder)
                except StorageError as exc:
                    unsynced[folder] = exc
        answers: list[StoredInstance | BaseException] = []
        for job, outcome in zip(jobs, done, strict=True):
            if isinstance(outcome, BaseException):
                answers.append(outcome)
            elif outcome[1].path.parent in unsynced:
                answers.append(unsynced[outcome[1].path.parent])
            else:
                answers.append(self._stored(
                    outcome[0], outcome[1], job.message, transfer_syntax=job.transfer_syntax,
                    calling_ae=job.calling_ae, security=job.security))
        return answers

    def _stored(self, header: HeaderAttributes, result: CommitResult, message: CStoreRQ, *,
                transfer_syntax: str, calling_ae: str,
                security: SecurityInfo | None) -> StoredInstance:
        duplicate = result.outcome in (CommitOutcome.DUPLICATE_KEPT,
                                       CommitOutcome.DUPLICATE_REJECTED)
        if self.index is not None and not duplicate:
            fingerprint = None
            if security is not None and security.peer_certificates:
                fingerprint = security.peer_certificates[0].sha256_fingerprint
            # The file is durable: its row may follow after the answer (the
            # index's rule is "no row without a durable file", and reindex
            # restores rows a crash lost). Off the critical path it costs
            # nothing to the sender.
            self._index_writer.put(NewInstance(
                header, relative_path=self._relative(result.path),
                transfer_syntax_uid=transfer_syntax, size=result.size,
                calling_ae=calling_ae, peer_fingerprint=fingerprint,
            ))
        return StoredInstance(
            path=result.path, sop_class_uid=message.affected_sop_class_uid,
            sop_instance_uid=message.affected_sop_instance_uid,
            transfer_syntax_uid=transfer_syntax, calling_ae_title=calling_ae,
            security=security, duplicate=duplicate,
        )

    def _relative(self, path: Path) -> str:
        """``path`` below the root, ``/``-separated (as the index keeps it)."""
        text, prefix = os.fspath(path), self._root_prefix
        if text.startswith(prefix):  # cheaper than Path.relative_to, per object
            return text[len(prefix):].replace(os.sep, "/")
        return path.relative_to(self.root).as_posix()

    def _write_index_rows(self, rows: list[NewInstance]) -> None:
        if self.index is not None:
            self.index.add_instances(rows)


@dataclass(frozen=True, slots=True)
class _Job:
    """A data set received in memory, for the store thread."""

    buffer: bytearray
    message: CStoreRQ
    transfer_syntax: str
    calling_ae: str
    security: SecurityInfo | None


def _echoable_uid(value: str) -> str | None:
    """The UID to echo in the response (PS3.7 9.3.1.2: optional there), or None when
    the request's value could not be encoded (over 64 characters, not ASCII): the
    peer then still gets its failure status instead of an A-ABORT."""
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        return None
    return value if len(raw) <= 64 else None


def _comment(comment: str | None) -> str | None:
    """Error Comment (LO, at most 64 characters of the default repertoire)."""
    if not comment:
        return None
    return comment.encode("ascii", "replace").decode("ascii")[:64]


class _Refused(DicomNetError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# -- SCU -------------------------------------------------------------------------------


@dataclass(slots=True)
class StoreResult:
    """The outcome of sending one file."""

    path: Path
    sop_instance_uid: str | None = None
    status: int | None = None
    ok: bool = False
    error: str | None = None
    size: int = 0
    transfer_syntax_uid: str | None = None
    converted_to: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path), "sop_instance_uid": self.sop_instance_uid,
            "status": self.status, "ok": self.ok, "error": self.error, "size": self.size,
            "transfer_syntax_uid": self.transfer_syntax_uid, "converted_to": self.converted_to,
        }


def collect_files(paths: Iterable[Path | str]) -> list[Path]:
    """Files named, and every file below the folders named (sorted, recursive)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.name != "DICOMDIR"
                            and not f.name.startswith("."))
        elif p.is_file():
            found.append(p)
        else:
            raise ConfigurationError(f"no such file or folder: {p}")
    return found


@dataclass(slots=True)
class _Plan:
    info: Part10Info
    result: StoreResult


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


def _convert(info: Part10Info, target: str) -> bytes:
    """Re-encode an uncompressed data set in another uncompressed syntax (pydicom).

    Only the data set is written: no preamble and no File Meta Information (a
    C-STORE carries the data set alone, PS3.7 9.3.1.1). Elements with byte-order
    sensitive VRs are decoded and re-encoded by pydicom; OW/OL/OF/OD values are
    not swapped by pydicom, so a big endian source with such values is not exact.
    """
    ds = pydicom.dcmread(info.path)
    buffer = DicomBytesIO()
    buffer.is_little_endian = target != EXPLICIT_BE
    buffer.is_implicit_VR = target == IMPLICIT_LE
    write_dataset(buffer, ds)
    raw = bytes(buffer.getvalue())
    if target == DEFLATED_LE:  # PS3.5 A.5: raw deflate, padded to an even length
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        raw = compressor.compress(raw) + compressor.flush()
        if len(raw) % 2:
            raw += b"\x00"
    return raw


#: PDV data per PDU when the peer sets no maximum (0): as our own default maximum.
_UNLIMITED_PDV = (1 << 20) - 6


def _file_pdus(info: Part10Info, context_id: int, max_pdu: int) -> Iterator[bytearray]:
    """The data set of ``info``'s file as P-DATA-TF PDUs (PS3.7 8.2, PS3.8 9.3.5),
    each read from disk straight into its PDU after the 12-byte header: no other
    copy of the bytes is made on their way to the transport. Raises
    :class:`StorageError` if the file shrank since it was read."""
    size = max_pdv_data_length(max_pdu) if max_pdu else _UNLIMITED_PDV
    remaining = info.dataset_length
    try:
        with open(info.path, "rb", buffering=0) as fp:
            fp.seek(info.dataset_offset)
            while True:
                length = min(size, remaining)
                pdu = bytearray(12 + length)
                view = memoryview(pdu)
                filled = 12
                while filled < len(pdu):
                    got = fp.readinto(view[filled:])
                    if not got:
                        raise StorageError(f"{info.path} is shorter than when it was read")
                    filled += got
                view.release()
                remaining -= length
                pdu[:12] = pdata_header(context_id, False, remaining == 0, length)
                yield pdu
                if remaining == 0:
                    return
    except OSError as exc:
        raise StorageError.from_os_error("cannot read", info.path, exc) from exc


async def _send_one(assoc: ClientAssociation, plan: _Plan) -> None:
    info, result = plan.info, plan.result
    as_is = next((c for c in assoc.contexts.values()
                  if c.abstract_syntax == info.sop_class_uid
                  and c.transfer_syntax == info.transfer_syntax_uid), None)
    rq_kwargs = {
        "message_id": assoc.dimse.next_message_id(),
        "affected_sop_class_uid": info.sop_class_uid,
        "affected_sop_instance_uid": info.sop_instance_uid,
    }
    if as_is is not None:
        pdus = _file_pdus(info, as_is.context_id, assoc.ul.peer_max_pdu_length)
        rsp, _ = await assoc.request_one(CStoreRQ(**rq_kwargs), as_is.context_id,  # type: ignore[arg-type]
                                         pdus=pdus)
    else:
        other = next((c for c in assoc.contexts.values()
                      if c.abstract_syntax == info.sop_class_uid
                      and c.transfer_syntax in UNCOMPRESSED), None)
        if other is None or info.transfer_syntax_uid not in UNCOMPRESSED:
            result.error = (f"the peer accepted no context for {info.sop_class_uid} in "
                            f"{info.transfer_syntax_uid}" + ("" if info.transfer_syntax_uid in
                            UNCOMPRESSED else " (compressed; not converted)"))
            return
        try:
            data = await asyncio.get_running_loop().run_in_executor(
                None, _convert, info, other.transfer_syntax)
        except Exception as exc:  # pydicom: a file that cannot be decoded or re-encoded
            result.error = f"cannot convert to {other.transfer_syntax}: {exc}"
            return
        result.converted_to = other.transfer_syntax
        rsp, _ = await assoc.request_one(CStoreRQ(**rq_kwargs), other.context_id,  # type: ignore[arg-type]
                                         dataset=data)
    status = int(getattr(rsp, "status", 0xFFFF))
    result.status = status
    result.ok = status == 0 or (status & 0xF000) == 0xB000
    if not result.ok:
        result.error = getattr(rsp, "error_comment", None) or f"status 0x{status:04X}"


async def _send_batch(assoc: ClientAssociation, plans: list[_Plan],
                      on_progress: Callable[[StoreResult], None] | None) -> None:
    """Send the plans on one association, up to its asynchronous window at a time."""
    slots = asyncio.Semaphore(max(1, assoc.async_window))

    async def one(plan: _Plan) -> None:
        try:
            await _send_one(assoc, plan)
        except StorageError as exc:
            plan.result.error = str(exc)
        finally:
            slots.release()
        if on_progress:
            on_progress(plan.result)

    tasks: list[asyncio.Task[None]] = []
    try:
        for plan in plans:
            await slots.acquire()
            if assoc.failure is not None:
                raise assoc.failure
            tasks.append(asyncio.get_running_loop().create_task(one(plan)))
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if assoc.failure is not None:
        raise assoc.failure


async def store_paths(
    host: str,
    port: int,
    paths: Sequence[Path | str],
    *,
    tls: TLSConfig | None = None,
    calling_ae_title: str = "DICOMNET",
    called_ae_title: str = "ANY-SCP",
    timeouts: Timeouts | None = None,
    on_progress: Callable[[StoreResult], None] | None = None,
    max_async_operations: int = 32,
    on_secure_link_ready: SecureLinkHook | None = None,
) -> list[StoreResult]:
    """C-STORE every file (folders recursively) to ``host:port``; one result per file.

    An asynchronous operations window of ``max_async_operations`` is proposed
    (PS3.7 D.3.3.3): a peer that grants it gets several C-STOREs in flight, so
    the round trip and its disk flush no longer gate every object; a peer that
    does not (most) gets them one at a time. Objects go out in order either way.

    Files that are not DICOM Part 10 are reported, not sent. Association-level
    failures (TLS, rejection, abort) mark the remaining files of that
    association failed and are re-raised only if nothing could be sent at all.
    """
    from ..aio.client import associate

    plans: list[_Plan] = []
    results: list[StoreResult] = []
    for path in collect_files(paths):
        result = StoreResult(path=path)
        results.append(result)
        try:
            info = read_part10(path)
        except (StorageError, OSError) as exc:
            result.error = f"not a DICOM Part 10 file: {exc}"
            if on_progress:
                on_progress(result)
            continue
        result.sop_instance_uid = info.sop_instance_uid
        result.size = info.dataset_length
        result.transfer_syntax_uid = info.transfer_syntax_uid
        plans.append(_Plan(info, result))
    for batch in _batches(plans):
        try:
            async with associate(
                host, port, contexts=_contexts_for(batch.keys), tls=tls,
                calling_ae_title=calling_ae_title, called_ae_title=called_ae_title,
                timeouts=timeouts, max_async_operations=max_async_operations,
                on_secure_link_ready=on_secure_link_ready,
            ) as assoc:
                await _send_batch(assoc, batch.plans, on_progress)
        except DicomNetError as exc:
            pending = [p for p in batch.plans if p.result.status is None and not p.result.error]
            for plan in pending:
                plan.result.error = str(exc)
                if on_progress:
                    on_progress(plan.result)
            if not any(r.ok for r in results):
                raise
    return results

