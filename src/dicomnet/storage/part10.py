"""DICOM Part 10 file framing: the header an SCP writes, the header an SCU reads.

PS3.10 7.1: a DICOM file is a 128-byte preamble, the prefix ``DICM``, the
File Meta Information (group 0002, always Explicit VR Little Endian, led by
its group length (0002,0000)), and then the data set encoded in the transfer
syntax named by (0002,0010). The data set bytes a C-STORE carries are exactly
those bytes (for Deflated Explicit VR Little Endian, the deflated stream), so
an SCP can write :func:`part10_header` and then stream what it receives, and
an SCU can send a file from :attr:`Part10Info.dataset_offset` onwards without
decoding it. pydicom encodes and decodes the meta group; this module only
frames it.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import stat
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset, read_preamble

from dicomnet.errors import ConfigurationError
from dicomnet.storage.files import StorageError
from dicomnet.storage.names import is_uid, safe_uid
from dicomnet.storage.scan import LONG_VRS, RawElements, implicit_vr_at, scan_elements
from dicomnet.storage.stray_meta import StrayMeta, meta_group_end

__all__ = [
    "NotPart10Error",
    "PREAMBLE_LENGTH",
    "Part10Info",
    "dataset_syntax",
    "part10_header",
    "read_part10",
    "with_transfer_syntax",
]

logger = logging.getLogger("dicomnet.storage")

#: 128-byte preamble + 4-byte "DICM" prefix (PS3.10 7.1).
PREAMBLE_LENGTH = 132
_GROUP_LENGTH_HEADER = b"\x02\x00\x00\x00UL\x04\x00"  # (0002,0000) UL, length 4
#: The uncompressed transfer syntaxes (PS3.5 A.1, A.2, A.3), for the storage modules.
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
#: Syntaxes whose data set, after the File Meta Information, is deflated as a whole:
#: Deflated Explicit VR Little Endian (PS3.5 A.5) and the two JPIP Referenced
#: Deflate ones (A.7, A.12). Not Deflated Image Frame Compression
#: (1.2.840.10008.1.2.8.1, A.4.13), which deflates frames, encapsulated.
DEFLATED_DATA_SETS = frozenset({
    "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.205"})
# SH and AE (PS3.5 Table 6.2-1): at most 16 characters of the default
# repertoire without backslash or control characters.
_SHORT_TEXT = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}", re.ASCII)


class NotPart10Error(StorageError):
    """A file is not a DICOM Part 10 file (no preamble and ``DICM`` prefix,
    or a File Meta Information group that cannot be read)."""


class NotRegularFileError(StorageError):
    """A path names no regular file: a FIFO, a socket, a device (what it holds
    is not a file's bytes; a FIFO would block its reader until a writer came)."""


#: What ``stat.S_IFMT`` says a path is, for one that is not a regular file.
_FILE_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
               stat.S_IFBLK: "a device", stat.S_IFDIR: "a folder"}


def _open_nonblocking(path: str, flags: int) -> int:
    # Opening a FIFO to read waits for a writer unless non-blocking; a regular
    # file ignores the flag.
    return os.open(path, flags | os.O_NONBLOCK)


def _short_text(name: str, value: str) -> str:
    text = value.strip(" ")
    if _SHORT_TEXT.fullmatch(text) is None:
        raise ConfigurationError(
            f"{name} must be 1 to 16 printable ASCII characters without '\\': {value!r}"
        )
    return text


def part10_header(
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    implementation_class_uid: str,
    implementation_version_name: str | None,
    source_ae_title: str | None,
) -> bytes:
    """Return preamble, ``DICM`` and the File Meta Information (PS3.10 7.1).

    The preamble is all zeros (PS3.10 7.1 allows that when it is unused).
    The meta group holds (0002,0000) with its correct length, (0002,0001)
    version 00 01, Media Storage SOP Class and Instance UIDs (the Affected
    SOP Class/Instance UIDs of the C-STORE-RQ), the transfer syntax of the
    accepted presentation context, our implementation class UID and version
    name, and (0002,0016) Source Application Entity Title, the calling AE of
    the association, when given. UIDs are checked with
    :func:`~dicomnet.storage.names.safe_uid` (``UnsafeNameError``); a
    version name or AE title that does not fit its VR raises
    ``ConfigurationError``.
    """
    # Encoded here rather than through pydicom's FileMetaDataset: this runs once per
    # received object and the group is six fixed elements (pydicom took ~1 ms).
    # All but the instance UID repeat from one object to the next: cached.
    instance = _uid_value(sop_instance_uid)
    body = b"".join((
        _fixed_element(0x0001, b"OB", ""),
        _fixed_element(0x0002, b"UI", sop_class_uid),
        _SHORT_HEADER.pack(0x0002, 0x0003, b"UI", len(instance)), instance,
        _fixed_element(0x0010, b"UI", transfer_syntax_uid),
        _fixed_element(0x0012, b"UI", implementation_class_uid),
        b"" if implementation_version_name is None
        else _fixed_element(0x0013, b"SH", implementation_version_name),
        b"" if source_ae_title is None else _fixed_element(0x0016, b"AE", source_ae_title),
    ))
    # (0002,0000) UL, and (0002,0003) above: _element's bytes, packed in place.
    return _PREAMBLE + _GROUP_LENGTH.pack(0x0002, 0x0000, b"UL", 4, len(body)) + body


_PREAMBLE = b"\x00" * 128 + b"DICM"
#: An Explicit VR Little Endian element header with a 2-byte length (PS3.5 7.1.2),
#: and the whole of (0002,0000) File Meta Information Group Length (UL, 4 bytes).
_SHORT_HEADER = struct.Struct("<HH2sH")
_GROUP_LENGTH = struct.Struct("<HH2sHI")


@functools.lru_cache(maxsize=512)
def _fixed_element(element: int, vr: bytes, value: str) -> bytes:
    """A group 0002 element that repeats between objects, encoded once: (0002,0001)
    (its fixed value; ``value`` unused), a UI, or the SH/AE text elements."""
    if element == 0x0001:
        return _element(0x0001, b"OB", b"\x00\x01")
    if vr == b"UI":
        return _element(element, vr, _uid_value(value))
    name = "implementation_version_name" if element == 0x0013 else "source_ae_title"
    return _element(element, vr, _padded(_short_text(name, value).encode("ascii"), b" "))


def _padded(value: bytes, pad: bytes) -> bytes:
    return value + pad if len(value) % 2 else value


def _uid_value(uid: str) -> bytes:
    """A UID value, checked (``safe_uid``) and NUL-padded to even length (PS3.5 9.1)."""
    return _padded(safe_uid(uid).encode("ascii"), b"\x00")


def with_transfer_syntax(header: bytes | bytearray, transfer_syntax_uid: str) -> bytes:
    """``header`` (preamble, ``DICM`` and a File Meta Information of defined
    lengths, as :func:`part10_header` makes) with (0002,0010) Transfer Syntax
    UID set to ``transfer_syntax_uid`` and (0002,0000) to the group's new length
    (PS3.10 7.1): for a data set found not to be in the syntax it was sent in.
    Raises ``NotPart10Error`` for a header it cannot read so."""
    scanned = scan_elements(header, PREAMBLE_LENGTH, implicit=False, group=0x0002)
    if header[128:132] != b"DICM" or scanned is None or scanned[1] != len(header):
        raise NotPart10Error("not a File Meta Information of defined lengths")
    elements = scanned[0]
    elements[0x00020010] = ("UI", _uid_value(transfer_syntax_uid))
    body = b"".join(_element(tag & 0xFFFF, (vr or "UN").encode("ascii"), value)
                    for tag, (vr, value) in sorted(elements.items()) if tag != 0x00020000)
    return bytes(header[:PREAMBLE_LENGTH]) + _element(
        0x0000, b"UL", struct.pack("<I", len(body))) + body


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    """One group 0002 element in Explicit VR Little Endian (PS3.5 7.1.2)."""
    if vr in LONG_VRS:
        return struct.pack("<HH2sHI", 0x0002, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


@dataclass(frozen=True, slots=True)
class Part10Info:
    """What an SCU needs to send a stored file without decoding it.

    ``dataset_offset`` is the byte offset of the data set's first byte: after
    the File Meta Information, and after any group 0002 elements that follow it
    (``stray_meta``: no data set holds them, PS3.5 7.1); ``size`` the file size
    when it was read. The bytes in between are the data set in
    ``transfer_syntax_uid``. A deflated data set's (PS3.5 A.5) group 0002
    elements are inside its stream, which starts at ``dataset_offset``: such a
    file's bytes are never sent as they are (services.store_convert).
    """

    #: The file. Given as a str (``read_part10`` of a str, ``store_batch``), it is
    #: kept so and made a ``Path`` when first asked for: an SCU reads every file's
    #: header, and parsing a ``Path`` cost more than the rest of it (``path_text``
    #: is the text, without one).
    path: Path
    transfer_syntax_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    dataset_offset: int
    size: int
    #: Tags of the group 0002 elements found at the start of the data set, and
    #: passed over (storage.stray_meta); empty for a well-formed file. For a
    #: deflated data set, those its stream's first inflated bytes hold (perhaps
    #: not all of them: see ``_deflated_stray_meta``).
    stray_meta: tuple[int, ...] = ()
    #: A deflated data set whose first inflated bytes showed no element but group
    #: 0002 ones, or nothing (an empty stream, a long run of empty blocks, one
    #: that does not inflate): whether it holds anything else is known only
    #: further in (services.store_prepare looks before sending). False for
    #: every other file: its ``dataset_length`` says whether it is empty.
    dataset_unseen: bool = False
    #: The File Meta Information's Transfer Syntax UID where the data set is not
    #: in it (``transfer_syntax_uid`` says what it is in): Explicit VR Little
    #: Endian over an Implicit VR data set (:func:`dataset_syntax`); None for a
    #: well-formed file.
    relabelled_from: str | None = None
    #: The file read: (st_dev, st_ino, st_mtime_ns, st_ctime_ns) before it was,
    #: so that one rewriting it (storage.relabel) can tell it is still the same
    #: (the change time too: a program may give back the modification time).
    identity: tuple[int, int, int, int] | None = None
    #: The File Meta Information's Media Storage SOP Class and Instance UIDs
    #: where the data set's own (0008,0016), (0008,0018) were not both read
    #: and found the same (PS3.10 7.1 makes them one object's): one differs, is
    #: missing, or lies past the bytes read. None for a well-formed file.
    #: ``services.store_identity`` reads the data set's before it is sent.
    meta_uids: tuple[str, str] | None = None

    @property
    def path_text(self) -> str:
        """``str(self.path)``, without making the ``Path`` of a file given by its text."""
        path = _PATH_SLOT.__get__(self)
        return path if path.__class__ is str else str(path)

    @property
    def meta(self) -> FileMetaDataset:
        """The File Meta Information, read again from the file by pydicom (an SCU
        reading thousands of headers needs only the three UIDs above)."""
        try:
            with open(self.path, "rb") as fp:
                fp.seek(PREAMBLE_LENGTH)
                body = fp.read(self.dataset_offset - PREAMBLE_LENGTH)
        except OSError as exc:
            raise StorageError.from_os_error("cannot read", self.path, exc) from exc
        return FileMetaDataset(read_dataset(io.BytesIO(body), is_implicit_VR=False,
                                            is_little_endian=True, stop_when=_meta_ended()))

    @property
    def dataset_length(self) -> int:
        """Number of data set bytes after the meta group."""
        return self.size - self.dataset_offset

    def iter_dataset(self, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Yield the data set bytes from disk in chunks of at most ``chunk_size``.

        Raises :class:`StorageError` if the file shrank since it was read.
        """
        remaining = self.dataset_length
        try:
            with open(self.path, "rb") as fp:
                fp.seek(self.dataset_offset)
                while remaining:
                    chunk = fp.read(min(chunk_size, remaining))
                    if not chunk:
                        raise StorageError(f"{self.path} is shorter than when it was read")
                    remaining -= len(chunk)
                    yield chunk
        except OSError as exc:
            raise StorageError.from_os_error("cannot read", self.path, exc) from exc


#: ``Part10Info.path``'s slot, under a property that makes a ``Path`` of a str
#: kept there when first read (and keeps it). The dataclass's ``__init__``,
#: ``==``, ``hash``, ``repr`` and ``replace`` go through the property: they see
#: a ``Path``, as before. Put by setattr: to mypy, the field stays a ``Path``.
_PATH_SLOT: Any = Part10Info.__dict__["path"]


def _path_of(info: Part10Info) -> Path:
    path = _PATH_SLOT.__get__(info)
    if not isinstance(path, Path):
        path = Path(path)
        _PATH_SLOT.__set__(info, path)
    return path


setattr(Part10Info, "path", property(_path_of, _PATH_SLOT.__set__,  # noqa: B010
                                     doc="The file (a str given is made a Path when read)."))

_POSIX = os.name == "posix"


def path_text(path: Path | str) -> str:
    """``str(Path(path))``, without making the ``Path`` when ``path`` is text
    spelled so already (a listing's paths are): the text an SCU names and opens
    its files by."""
    # A POSIX Path spells a text otherwise where it has an empty or "." part
    # ("a//b", "./a", "a/./b", "a/."), a trailing "/", or is empty. Substring
    # tests: a regular expression cost ten times their instructions.
    if (isinstance(path, str) and _POSIX and path and "//" not in path and "/./" not in path
            and not path.startswith("./") and not path.endswith(("/", "/."))):
        return path
    return str(Path(path))


def _not_group_0002(tag: Any, vr: str | None, length: int) -> bool:
    return int(tag) >> 16 != 0x0002


def _meta_ended() -> Callable[[Any, str | None, int], bool]:
    """A ``stop_when`` for the meta group: another group, or a tag already read (a
    second group 0002 at the start of the data set; see ``meta_group_end``)."""
    seen: set[int] = set()

    def stop(tag: Any, vr: str | None, length: int) -> bool:
        value = int(tag)
        if value >> 16 != 0x0002 or value in seen:
            return True
        seen.add(value)
        return False

    return stop


_READ_ERRORS = (ValueError, NotImplementedError, EOFError, KeyError, struct.error)


def _meta_by_scanning(fp: BinaryIO) -> tuple[FileMetaDataset, int]:
    """Read the meta group element by element until another group starts.

    This is what ``pydicom.dcmread`` does, and it is exact whatever
    (0002,0000) says, provided the next bytes are element headers.
    """
    _check_meta_headers(fp)
    fp.seek(PREAMBLE_LENGTH)
    meta = FileMetaDataset(
        read_dataset(fp, is_implicit_VR=False, is_little_endian=True, stop_when=_meta_ended())
    )
    return meta, fp.tell()


def _check_meta_headers(fp: BinaryIO, start: int = PREAMBLE_LENGTH) -> None:
    """Walk the meta group's element headers as ``_meta_ended`` bounds it, seeking
    over values; ValueError where pydicom would warn rather than raise: a first
    header without VR letters (it reads on in Implicit VR), an undefined length (it
    looks for a delimiter to the end of the file). A warning is an exception under
    -W error, and no StorageError; and PS3.10 7.1 has the group in Explicit VR
    Little Endian, each length defined."""
    fp.seek(start)
    if implicit_vr_at(fp.read(6)):
        raise ValueError("its first element has no VR: not in Explicit VR Little Endian "
                         "(PS3.10 7.1)")
    at, seen = start, set()
    while True:
        fp.seek(at)
        head = fp.read(12)
        if len(head) < 8:
            return
        group, element, vr, length = _SHORT_HEADER.unpack_from(head)
        if group != 0x0002 or element in seen:
            return
        seen.add(element)
        start = at + 8
        if vr in LONG_VRS:
            if len(head) < 12:
                return  # cut short: pydicom raises (EOFError)
            length, start = int.from_bytes(head[8:], "little"), at + 12
        elif not b"AA" <= vr <= b"ZZ":  # pydicom: this one element in Implicit VR
            length = int.from_bytes(head[4:8], "little")
        if length == 0xFFFFFFFF:
            raise ValueError(f"(0002,{element:04X}) has an undefined length (PS3.10 7.1)")
        at = start + length


def _meta_by_group_length(fp: BinaryIO) -> tuple[FileMetaDataset, int] | None:
    """Read exactly the bytes (0002,0000) covers; ``None`` if that fails.

    Needed for deflated data sets: their first bytes are a deflate stream,
    not an element header, so a scan could misread them as more meta.
    """
    fp.seek(PREAMBLE_LENGTH)
    head = fp.read(12)
    if len(head) != 12 or head[:8] != _GROUP_LENGTH_HEADER:
        return None
    group_length = int.from_bytes(head[8:], "little")
    body = fp.read(group_length)
    if len(body) != group_length:
        return None
    buffer = io.BytesIO(head + body)
    try:
        _check_meta_headers(buffer, 0)
        buffer.seek(0)
        meta = FileMetaDataset(
            read_dataset(
                buffer, is_implicit_VR=False, is_little_endian=True, stop_when=_not_group_0002
            )
        )
    except _READ_ERRORS:
        return None
    if buffer.tell() != len(head) + len(body):
        return None  # the stated length runs past the group
    return meta, PREAMBLE_LENGTH + 12 + group_length


def _is_deflated(meta: FileMetaDataset) -> bool:
    return _uid_text(meta, "TransferSyntaxUID") in DEFLATED_DATA_SETS


def _read_meta(fp: BinaryIO, path: Path) -> tuple[FileMetaDataset, int]:
    """Choose between scanning and (0002,0000); see :func:`read_part10`."""
    try:
        scanned: tuple[FileMetaDataset, int] | None = _meta_by_scanning(fp)
    except _READ_ERRORS as exc:
        scanned, error = None, exc
    if scanned is not None and not _is_deflated(scanned[0]):
        return scanned
    bounded = _meta_by_group_length(fp)
    if bounded is not None and (scanned is None or _is_deflated(bounded[0])):
        return bounded
    if scanned is not None:
        return scanned  # deflated without a usable (0002,0000): the scan is all we have
    raise NotPart10Error(f"{path}: unreadable File Meta Information: {error}") from error


def read_part10(path: Path | str) -> Part10Info:
    """Read only the preamble and File Meta Information of a Part 10 file.

    The data set is never parsed. The meta group is read element by element
    until the next group starts, as ``pydicom.dcmread`` does; that stays
    exact when (0002,0000) is wrong, which happens in the wild. For a
    deflated data set (PS3.5 A.5), whose first bytes are not an element
    header, the length in (0002,0000) (Type 1, PS3.10 Table 7.1-1) decides
    instead when it is present and consistent.

    A file without the preamble and ``DICM`` prefix (a raw data set) raises
    :class:`NotPart10Error`: there is no fallback, because such a file does
    not state its transfer syntax and guessing it would send wrong bytes.
    So do a missing Transfer Syntax, SOP Class or SOP Instance UID.

    A str is read as ``Path(path)`` is, and kept as its text (``Part10Info.path``).
    """
    if not isinstance(path, Path):
        path = path_text(path)  # as Path(path) spells it; no Path made unless needed
    try:
        # Unbuffered: the quick look is one read; an SCU does this for every file
        # before it can propose anything.
        with open(path, "rb", buffering=0, opener=_open_nonblocking) as raw:
            status = os.fstat(raw.fileno())
            if not stat.S_ISREG(status.st_mode):
                kind = _FILE_KINDS.get(stat.S_IFMT(status.st_mode), "not a file")
                raise NotRegularFileError(f"{path} is not a regular file but {kind}")
            size = status.st_size
            identity = status.st_dev, status.st_ino, status.st_mtime_ns, status.st_ctime_ns
            quick = _read_meta_quickly(raw, path, size, identity)
            if quick is not None:
                return quick
            path = Path(path)  # the rest, rare, as it was
            raw.seek(0)
            fp = io.BufferedReader(raw)
            try:
                read_preamble(fp, False)
            except InvalidDicomError as exc:
                raise NotPart10Error(
                    f"{path} has no DICOM preamble and 'DICM' prefix (PS3.10 7.1)"
                ) from exc
            meta, offset = _read_meta(fp, path)
            stray, unseen = (_deflated_stray_meta(fp, offset, path) if _is_deflated(meta)
                             else ((), False))
    except OSError as exc:
        raise StorageError.from_os_error("cannot read", Path(path), exc) from exc
    values = {keyword: _uid_text(meta, keyword) for keyword in (
        "TransferSyntaxUID", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID")}
    missing = [keyword for keyword, value in values.items() if not value]
    if missing:
        raise NotPart10Error(f"{path}: File Meta Information lacks {', '.join(missing)}")
    syntax, relabelled = values["TransferSyntaxUID"], None
    if syntax not in DEFLATED_DATA_SETS:
        try:
            with open(path, "rb") as again:
                offset, stray = _past_stray_meta(again, b"", offset, size,
                                                 transfer_syntax=syntax, path=path)
                again.seek(offset)
                syntax, relabelled = dataset_syntax(syntax, again.read(8), path)
        except OSError as exc:
            raise StorageError.from_os_error("cannot read", path, exc) from exc
    return Part10Info(
        path=path,
        transfer_syntax_uid=sys.intern(syntax),
        sop_class_uid=sys.intern(values["MediaStorageSOPClassUID"]),
        sop_instance_uid=values["MediaStorageSOPInstanceUID"],
        dataset_offset=offset,
        size=size,
        stray_meta=stray,
        dataset_unseen=unseen,
        relabelled_from=relabelled,
        identity=identity,
        meta_uids=(values["MediaStorageSOPClassUID"], values["MediaStorageSOPInstanceUID"]),
    )


def dataset_syntax(declared: str, first: bytes, path: Path | str) -> tuple[str, str | None]:
    """The transfer syntax of a file's data set whose first bytes (an element
    header) are ``first``, its File Meta Information saying ``declared``: that,
    but for Explicit VR Little Endian over a data set in Implicit VR (no VR where
    PS3.5 7.1.2 puts one: ``implicit_vr_at``), which pydicom writes when told
    so and reads by guessing. PS3.10 7.1 makes the Transfer Syntax UID the data
    set's encoding, and PS3.5 A.2 an Explicit VR data set's every element
    explicit: such a data set is Implicit VR Little Endian (PS3.5 A.1), and is
    taken as one (an SCU proposes and sends it so), said once in the log.
    Returns (the syntax, ``declared`` when it differs, else None)."""
    if declared != EXPLICIT_LE or len(first) < 8 or not implicit_vr_at(first):
        return declared, None
    logger.warning("%s: its File Meta Information says Explicit VR Little Endian (%s), but its "
                   "data set is in Implicit VR (PS3.10 7.1, PS3.5 A.2): taken as Implicit VR "
                   "Little Endian (%s)", path, declared, IMPLICIT_LE)
    return IMPLICIT_LE, declared


def _past_stray_meta(fp: BinaryIO, head: bytes, offset: int, size: int, *, transfer_syntax: str,
                     path: Path | str) -> tuple[int, tuple[int, ...]]:
    """Where the data set that follows the meta group at ``offset`` really starts:
    past the group 0002 elements it may start with (storage.stray_meta), said once
    in the log. ``head`` holds the file's first bytes (empty: none read yet); more
    are read from ``fp`` as needed (a value is read through, not held)."""
    stray = StrayMeta(implicit=transfer_syntax == IMPLICIT_LE,
                      big_endian=transfer_syntax == BIG_ENDIAN)
    piece: bytes | memoryview = memoryview(head)[offset:] if len(head) > offset else b""
    if not piece:
        fp.seek(offset)
        piece = fp.read(_QUICK_READ)
    while piece:
        stray.feed(piece)
        if stray.done:
            break
        piece = fp.read(_QUICK_READ)
    if not stray.tags:
        return offset, ()
    logger.warning("%s: its data set starts with File Meta Information element(s) %s, which "
                   "no data set holds (PS3.5 7.1): passed over, not sent%s", path, stray.names,
                   "" if stray.done else " (nothing follows them)")
    return min(offset + stray.dropped, size), tuple(stray.tags)


def _deflated_stray_meta(fp: BinaryIO, offset: int, path: Path
                         ) -> tuple[tuple[int, ...], bool]:
    """The group 0002 elements a deflated data set (PS3.5 A.5) starting at
    ``offset`` starts with (storage.stray_meta), said once in the log, and
    whether no other element was seen (``Part10Info.dataset_unseen``): seen by
    inflating the stream's first ``_DEFLATED_LOOK`` bytes (one small read),
    two bytes out for a well-formed one (its first group), ``_QUICK_READ`` at
    most for one starting with group 0002 (deflate inflates up to a
    thousandfold). The elements past those (a long Private Information value)
    are not named here, only dropped when sent. A stream that does not
    inflate says nothing here: its walk before sending tells why."""
    fp.seek(offset)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        first = inflater.decompress(fp.read(_DEFLATED_LOOK), 2)
        if first != b"\x02\x00":  # the usual case: another group first, or nothing
            return (), not first
        first += inflater.decompress(inflater.unconsumed_tail, _QUICK_READ)
    except zlib.error:
        return (), True
    stray = StrayMeta(implicit=False)
    unseen = not stray.feed(first)
    if not stray.tags:
        return (), unseen
    logger.warning("%s: its deflated data set starts with File Meta Information element(s) "
                   "%s%s, which no data set holds (PS3.5 7.1): passed over, not sent (its "
                   "stream deflated again without them)", path, stray.names,
                   "" if stray.done else " and perhaps more")
    return tuple(stray.tags), unseen


#: Bytes read first: the whole of a small file, the meta group of any other
#: (typically under 1 KiB; a longer one goes to the full reader).
_QUICK_READ = 16 << 10
#: Bytes of a deflated data set's stream inflated to look for group 0002 in it.
_DEFLATED_LOOK = 4 << 10
#: The File Meta Information's Transfer Syntax, Media Storage SOP Class and
#: Instance UIDs (PS3.10 Table 7.1-1).
_TRANSFER_SYNTAX, _SOP_CLASS, _SOP_INSTANCE = 0x00020010, 0x00020002, 0x00020003


def _declared_meta_end(elements: RawElements) -> int | None:
    """Where the File Meta Information ends by its Group Length (0002,0000), the
    first element (PS3.10 7.1: an UL after its 12-byte header), or None."""
    length = elements.get(0x00020000)
    if length is None or len(length[1]) != 4:
        return None
    return PREAMBLE_LENGTH + 12 + int.from_bytes(length[1], "little")


def _read_meta_quickly(fp: BinaryIO, path: Path | str, size: int,
                       identity: tuple[int, int, int, int]) -> Part10Info | None:
    """The common case, found by element lengths alone (storage.scan): the meta
    group within the first 16 KiB, not deflated, with its three UIDs. None for
    anything else, which the full reader then handles (and explains)."""
    head = fp.read(_QUICK_READ)
    if head[128:132] != b"DICM":
        return None
    scanned = scan_elements(head, PREAMBLE_LENGTH, implicit=False, group=0x0002)
    if scanned is None or scanned[1] != _declared_meta_end(scanned[0]):
        # Not where its group length says it ends: a second group 0002 may follow
        # it (storage.stray_meta), or the length is wrong; where it ends first.
        meta_end = meta_group_end(head, PREAMBLE_LENGTH)
        if meta_end is None:
            return None
        scanned = scan_elements(memoryview(head)[:meta_end], PREAMBLE_LENGTH, implicit=False,
                                group=0x0002)
        if scanned is None:
            return None
    elements, offset, _ = scanned
    if offset == len(head) and len(head) != size:
        return None  # the meta group may go on past what was read
    # Each of the three is there, not empty, and the syntax not deflated.
    raw_syntax, raw_class, raw_instance = (elements.get(_TRANSFER_SYNTAX),
                                           elements.get(_SOP_CLASS), elements.get(_SOP_INSTANCE))
    if raw_syntax is None or raw_class is None or raw_instance is None:
        return None
    syntax = raw_syntax[1].decode("ascii", "replace").strip("\0 ")
    meta_class = raw_class[1].decode("ascii", "replace").strip("\0 ")
    meta_instance = raw_instance[1].decode("ascii", "replace").strip("\0 ")
    if not (syntax and meta_class and meta_instance) or syntax in DEFLATED_DATA_SETS:
        return None
    stray: tuple[int, ...] = ()
    if offset + 2 <= len(head) and head[offset:offset + 2] in (b"\x02\x00", b"\x00\x02"):
        offset, stray = _past_stray_meta(fp, head, offset, size, transfer_syntax=syntax,
                                         path=path)
    first = head[offset:offset + 8]
    if len(first) < 8 and offset + 8 <= size:  # past what was read (after stray meta)
        fp.seek(offset)
        first = fp.read(8)
    syntax, relabelled = dataset_syntax(syntax, first, path)
    meta_uids = meta_class, meta_instance
    sop_class, sop_instance, same = _dataset_uids(
        head, offset, syntax, path, meta_class=meta_class, meta_instance=meta_instance)
    return Part10Info(
        path=path,  # type: ignore[arg-type]  # a str is kept as it is (Part10Info.path)
        # One string each for the thousands of files an SCU lists (most share them).
        transfer_syntax_uid=sys.intern(syntax),
        sop_class_uid=sys.intern(sop_class),
        sop_instance_uid=sop_instance,
        dataset_offset=offset,
        size=size,
        stray_meta=stray,
        relabelled_from=relabelled,
        identity=identity,
        meta_uids=None if same else meta_uids,
    )


#: The data set's SOP Class and Instance UIDs (PS3.3 C.12.1).
_SOP_TAGS = ((0x00080016, "SOP Class"), (0x00080018, "SOP Instance"))


def _dataset_uids(head: bytes, offset: int, transfer_syntax: str, path: Path | str, *,
                  meta_class: str, meta_instance: str) -> tuple[str, str, bool]:
    """The SOP Class and Instance UIDs a C-STORE of this file must name: the data
    set's own (the SCP checks the command against them, PS3.4 B.2.3 A900), where
    they can be read from the first bytes of the data set (Big Endian's too, PS3.5
    A.3: a UID is text, the same bytes in either order); else those of the File
    Meta Information, which PS3.10 7.1 makes the same. A file whose two differ is
    sent as its data set says, as DCMTK's storescu does, and said in the log. The
    third value: both were read and are the File Meta Information's."""
    scanned = scan_elements(head, offset, implicit=transfer_syntax == IMPLICIT_LE,
                            end_tag=0x00080019, big_endian=transfer_syntax == BIG_ENDIAN)
    if scanned is None:
        return meta_class, meta_instance, False
    found = scanned[0]
    uids = [meta_class, meta_instance]
    agreed = 0
    for index, (tag, what) in enumerate(_SOP_TAGS):
        element = found.get(tag)
        if element is None:
            continue
        mine = element[1].decode("ascii", "replace").strip("\0 ")
        # Only a UID (PS3.5 9.1) replaces the File Meta Information's; the same
        # text needs no look.
        if mine and mine != uids[index] and is_uid(mine):
            logger.warning("%s: its File Meta Information names %s UID %s, its data set %s: "
                           "sent as its data set says", path, what, uids[index], mine)
            uids[index] = mine
        elif mine == uids[index]:
            agreed += 1
    return uids[0], uids[1], agreed == 2


def _uid_text(meta: FileMetaDataset, keyword: str) -> str:
    """A UI value of the meta group as text. A value still raw (as read) is decoded
    from its bytes: an SCU reads every file's meta before sending, and pydicom's
    value conversion cost more than the rest of reading it."""
    # keep_deferred: an empty raw value (nothing is deferred here) is not converted,
    # which for a VR pydicom does not know ("U\\0") raised NotImplementedError.
    element = meta.get_item(keyword, keep_deferred=True)
    if element is None:
        return ""
    value = element.value
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip("\0 ")
    return str(value or "").strip("\0 ")
