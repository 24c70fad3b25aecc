"""Helpers for the storage tests: data sets and Part 10 files built by pydicom."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomnet.aio.client import open_association
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
from dicomnet.services.storage import StorageSCP, StoreResult, store_paths
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.files import TEMP_SUFFIX
from dicomnet.storage.part10 import part10_header, read_part10
from dicomnet.storage.rows import NewInstance, row_from_file
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import make_image, write_part10

if TYPE_CHECKING:
    from dicomnet.aio.server_association import ServerAssociation

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

MakeDataset = Callable[..., Dataset]


def sender() -> ServerAssociation:
    """What the store thread reads of a job's association (``store_jobs.Job``): a
    plain-TCP one from SCU at 127.0.0.1:104, to SCP (its TLS link read from its
    stream, as ``Association.security`` reads it)."""
    return cast("ServerAssociation", SimpleNamespace(
        calling_ae_title="SCU", called_ae_title="SCP", security=None,
        stream=SimpleNamespace(security=None), peer=("127.0.0.1", 104)))


def make_dataset(
    *,
    sop_instance_uid: str = "1.2.826.0.1.3680043.8.498.1",
    study_uid: str = "1.2.826.0.1.3680043.8.498.10",
    series_uid: str = "1.2.826.0.1.3680043.8.498.100",
    sop_class_uid: str = SECONDARY_CAPTURE,
    patient_id: str = "PID-1",
    patient_name: str = "Doe^Jane",
    study_date: str = "20240115",
    modality: str = "OT",
    **extra: str,
) -> Dataset:
    """A small but complete image data set; ``extra`` sets more keywords."""
    ds = Dataset()
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC" + study_uid[-3:]
    ds.StudyID = "S1"
    ds.StudyDescription = "Head"
    ds.ReferringPhysicianName = "Who^Doctor"
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.SeriesNumber = "1"
    ds.SeriesDescription = "Axial"
    ds.InstanceNumber = "1"
    ds.Rows = 2
    ds.Columns = 2
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = b"\x01\x02\x03\x04"
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def write_part10_file(
    path: Path, ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian
) -> Path:
    """Write ``ds`` as a Part 10 file with pydicom, in ``transfer_syntax``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def tree(path: Path) -> set[str]:
    """Every path below ``path``, relative, as text (folders included)."""
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


def data_set_bytes(ds: Dataset, syntax: str) -> bytes:
    """The data set as a sender encodes it in ``syntax`` (deflated for Deflated)."""
    buffer = DicomBytesIO()
    buffer.is_little_endian = syntax != ExplicitVRBigEndian
    buffer.is_implicit_VR = syntax == ImplicitVRLittleEndian
    write_dataset(buffer, ds)
    encoded: bytes = buffer.getvalue()
    if syntax == DeflatedExplicitVRLittleEndian:
        # Raw deflate (no zlib header), as PS3.5 A.5 asks.
        deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        encoded = deflater.compress(encoded) + deflater.flush()
    return encoded


def received(ds: Dataset, syntax: str) -> bytearray:
    """What a C-STORE SCP holds: its own Part 10 header, then the data set as sent."""
    header = part10_header(sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
                           transfer_syntax_uid=syntax, implementation_class_uid="1.2.3",
                           implementation_version_name="T", source_ae_title="A")
    return bytearray(header + data_set_bytes(ds, syntax))


async def store_data_sets(scp: StorageSCP, syntax: str,
                          data_sets: Iterable[tuple[str, bytes]]) -> list[CStoreRSP]:
    """C-STORE each (SOP Instance UID, data set bytes) as it is, as Secondary
    Capture in ``syntax``, on one association to a server running ``scp``
    (closed at the end); the answers in order."""
    from tests.aio.helpers import running_server  # the aio tests' helpers, loaded on use

    try:
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            assoc = await open_association(
                "127.0.0.1", server.port, contexts=[ContextRequest(SECONDARY_CAPTURE, (syntax,))])
            ctx = assoc.context_for(SECONDARY_CAPTURE).context_id
            answers: list[CStoreRSP] = []
            for uid, data in data_sets:
                rq = CStoreRQ(message_id=assoc.dimse.next_message_id(),
                              affected_sop_class_uid=SECONDARY_CAPTURE,
                              affected_sop_instance_uid=uid)
                rsp, _ = await assoc.request_one(rq, ctx, dataset=data)
                assert isinstance(rsp, CStoreRSP)
                answers.append(rsp)
            await assoc.release()
            return answers
    finally:
        scp.close()


def fill_disk(path: Path, leave: int = 0) -> None:
    """Write ``path`` until its file system has at most ``leave`` bytes free."""
    with open(path, "wb") as f:
        while True:
            stat = os.statvfs(path)
            free = stat.f_bavail * stat.f_frsize - leave
            if free <= 0:
                break
            try:
                f.write(bytes(min(free, 1 << 20)))
                f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break


def send_files(root: Path, files: list[Path], accepted: list[str]) -> list[StoreResult]:
    """``store_paths`` of ``files`` to a StorageSCP under ``root`` that accepts only
    the transfer syntaxes ``accepted`` (so that the SCU converts), on loopback."""
    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(root, transfer_syntaxes=accepted)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return await store_paths("127.0.0.1", server.port, files)
        finally:
            scp.close()

    return run(scenario(), timeout=60)


def index_rows(folder: Path, count: int, first: int = 1) -> list[NewInstance]:
    """Rows of ``count`` images (``tests.storage.dicomfiles.make_image(first)`` on)
    written as Part 10 files ``N.dcm`` in ``folder``, read back as the index reads
    a stored file."""
    rows = []
    for n in range(first, first + count):
        write_part10(folder / f"{n}.dcm", make_image(n), str(ExplicitVRLittleEndian))
        rows.append(row_from_file(folder, f"{n}.dcm"))
    return rows


def indexed_uids(path: Path) -> list[str]:
    """The SOP Instance UIDs the index file at ``path`` holds, in order, read by a
    connection of its own (as another process, or the server's next start,
    reads it), its integrity checked first."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return [uid for (uid,) in db.execute(
            "SELECT sop_instance_uid FROM instance ORDER BY sop_instance_uid")]
    finally:
        db.close()


def copy_file(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target`` as another program would (``cp``, which writes
    in place), never from this process: closing any descriptor of a file drops every
    POSIX lock the process holds on it (sqlite.org/howtocorrupt.html, 2.2), SQLite's
    own on a live index among them, so an in-process copy of or over the index would
    let other programs in where they could not come."""
    subprocess.run(["cp", str(source), str(target)], check=True, timeout=60)


def index_backup(tmp_path: Path, rows: list[NewInstance]) -> tuple[Path, list[str]]:
    """Another index, ``backup.sqlite`` in ``tmp_path``, holding ``rows`` and closed
    (its log in its file), to copy over a live one; and its SOP Instance UIDs."""
    from dicomnet.storage.index import StorageIndex

    backup = tmp_path / "backup.sqlite"
    with StorageIndex(backup) as other:
        assert other.add_instances(rows) == len(rows)
    return backup, indexed_uids(backup)


async def raw_stores(root: Path, syntax: str,
                     sent: list[tuple[str, bytes]]) -> list[tuple[int, str]]:
    """Each data set of ``sent`` ((SOP Instance UID, its bytes as they go on the
    wire)) C-STOREd as a Secondary Capture on one ``syntax`` context into a
    StorageSCP on ``root``, through the raw SCU (bytes unchecked by our own
    client); the answers' (status, Error Comment), in order."""
    from tests.storage.dicomfiles import SECONDARY_CAPTURE
    from tests.storage.rawscu import RawAssociation, store_command

    scp = StorageSCP(root)
    try:
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            assoc = await RawAssociation.open(
                server.port, [ContextRequest(SECONDARY_CAPTURE, (syntax,))])
            context = assoc.context_id(SECONDARY_CAPTURE, syntax)
            answers = []
            for number, (uid, data) in enumerate(sent, 1):
                await assoc.send_store(context, store_command(
                    SECONDARY_CAPTURE.encode(), uid.encode(), number), data)
                answer = await assoc.read_message()
                answers.append((getattr(answer, "status", -1),
                                str(getattr(answer, "error_comment", "") or "")))
            await assoc.release()
            return answers
    finally:
        scp.close()


#: rows x columns of 8-bit images, one per path to disk of a StorageSCP: the page
#: cache below 64 KiB, one page-aligned direct write up to 1 MiB, a streamed file above.
PATH_SHAPES = {"small": (50, 100), "image": (700, 700), "spilled": (1600, 1500)}


def one_per_path(folder: Path) -> dict[str, Path]:
    """A Part 10 file (Explicit VR Little Endian) of each of :data:`PATH_SHAPES`,
    made with ``make_image(0)``, ``(1)``, ``(2)`` in that order."""
    return {name: write_part10(folder / f"{name}.dcm", make_image(i, rows=rows, columns=cols),
                               str(ExplicitVRLittleEndian))
            for i, (name, (rows, cols)) in enumerate(PATH_SHAPES.items())}


def send_batches(scp: StorageSCP, *batches: list[Path],
                 between: Callable[[int], object] = lambda batch: None,
                 ) -> list[list[StoreResult]]:
    """Each batch on its own association to one server running ``scp`` (closed at
    the end); ``between(n)`` runs before batch n, the server running."""
    async def scenario() -> list[list[StoreResult]]:
        results = []
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                for n, paths in enumerate(batches):
                    between(n)
                    results.append(await store_paths("127.0.0.1", server.port, paths,
                                                     called_ae_title="DICOMNET-SCP"))
        finally:
            scp.close()
        return results

    return run(scenario())


def temporary_files(root: Path) -> list[Path]:
    """Our temporary files (``*.dicomnet-part``) anywhere under ``root``."""
    return [p for p in root.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def same_dataset(stored: Path, source: Path) -> bool:
    """Whether two Part 10 files hold the same data set bytes (their headers aside)."""
    return (stored.read_bytes()[read_part10(stored).dataset_offset:]
            == source.read_bytes()[read_part10(source).dataset_offset:])
