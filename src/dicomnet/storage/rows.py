"""What an index row holds of a stored instance, and such a row read back from
the instance's file.

A C-STORE SCP builds its rows from the header it has just received; a file whose
row is missing (a crash between its name and its row, an index deleted) gets one
read back from the file itself, with :func:`row_from_file`:
:meth:`~dicomnet.storage.index.StorageIndex.reindex` does so for every such file
under the root, and the SCP for a duplicate it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydicom.dataset import Dataset

from dicomnet.storage.header import HeaderAttributes, read_file_header
from dicomnet.storage.names import safe_relative_path
from dicomnet.storage.part10 import Part10Info, read_part10

__all__ = ["ROW_KEYWORDS", "NewInstance", "row_from_file"]

#: What an index row holds of a data set (the keys of PS3.4 C.6.1.1.2 to
#: C.6.1.1.5 the index matches on), in the order the index unpacks them.
ROW_KEYWORDS = (
    "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID",
    "InstanceNumber", "PatientID", "PatientName", "PatientBirthDate", "PatientSex",
    "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "StudyDescription",
    "ReferringPhysicianName", "Modality", "SeriesNumber", "SeriesDescription",
)


@dataclass(frozen=True, slots=True)
class NewInstance:
    """An instance to record with :meth:`~dicomnet.storage.index.StorageIndex.add_instances`."""

    ds: Dataset | HeaderAttributes
    relative_path: str
    transfer_syntax_uid: str
    size: int
    calling_ae: str
    peer_fingerprint: str | None
    #: The file's digest, when the caller has one (``StorageIndex.add_instance``).
    #: The C-STORE SCP leaves it empty: hashing every byte it receives would cost
    #: about as much CPU as receiving them over TLS (SHA-256 here: 1.4 GB/s).
    sha256: str | None = None
    received_at: datetime | None = None


def row_from_file(root: Path, relative: str, info: Part10Info | None = None) -> NewInstance:
    """The row of the Part 10 file at ``relative`` below ``root``, read from its
    File Meta Information and the keys of :data:`ROW_KEYWORDS` (not its pixels).
    Who sent it is not in the file: the calling AE title is empty, and the time
    received is the file's modification time.

    Raises :class:`~dicomnet.storage.names.UnsafeNameError` for a name no
    received object gets, :class:`~dicomnet.storage.part10.NotPart10Error` for
    a file that is not Part 10, and whatever pydicom raises for a damaged one.
    Values are decoded as the SCP decodes a received object's (storage.header),
    not converted by pydicom. ``info``: the file's :func:`read_part10`, when
    the caller already has it."""
    safe_relative_path(relative)
    path = root / relative
    if info is None:
        info = read_part10(path)
    header = read_file_header(str(path), info.dataset_offset, info.transfer_syntax_uid)
    stat = path.stat()
    return NewInstance(header, relative_path=relative,
                       transfer_syntax_uid=info.transfer_syntax_uid, size=stat.st_size,
                       calling_ae="", peer_fingerprint=None,
                       received_at=datetime.fromtimestamp(stat.st_mtime, UTC))
