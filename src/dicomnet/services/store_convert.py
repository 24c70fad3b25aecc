"""Re-encoding a Part 10 file's data set in another uncompressed transfer syntax,
for a peer that did not accept the file's own (PS3.5 A.1-A.3, A.5), with pydicom.

A small data set is re-encoded in memory. A large one whose byte order stays
(Explicit and Implicit VR Little Endian, either way) is written by pydicom to an
anonymous temporary file (in :func:`temporary_folder`), and sent from there as a
file is: its bulk values (Pixel Data and the other OB, OW, OF, OL, OD, OV values
of defined length at the top level) are never held in memory whole, pydicom
copies them from the source file piece by piece (:class:`FileSlice`, a
"buffered" value to pydicom). Converting a 268 MB file
to Implicit VR in memory peaked at 812 MB (the data set read, its encoding, the
bytes of it); this way the process peaked at 34 MB in all. A change of byte order
(Big Endian is retired, PS3.5 A.3) and Deflated Explicit VR Little Endian
(compressed whole, PS3.5 A.5) stay in memory.
"""

from __future__ import annotations

import io
import os
import tempfile

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset
from pydicom.valuerep import BUFFERABLE_VRS

from ..storage.files import StorageError
from ..storage.part10 import Part10Info
from .store_dataset import EXPLICIT_LE, IMPLICIT_LE, encode_dataset

__all__ = ["IN_MEMORY_MOST", "FileSlice", "conversion_error", "convert_in_memory",
           "convert_to_file", "converts_through_file", "temporary_folder"]

#: Data sets up to this long are converted in memory (about three times their
#: size at the peak); longer ones through a temporary file when they can be.
IN_MEMORY_MOST = 16 << 20
#: Values from this long are left unread by pydicom (``defer_size``), to be
#: copied from the source file when written.
_DEFER = 64 << 10
_LITTLE_ENDIAN = frozenset({EXPLICIT_LE, IMPLICIT_LE})
_UNDEFINED = 0xFFFFFFFF
#: On disk where /tmp often is not (FHS 3.0 5.15: kept across reboots, so never
#: a RAM file system).
_VAR_TMP = "/var/tmp"


def temporary_folder() -> str | None:
    """The folder of the conversions' temporary files: the one the user named
    (``TMPDIR``, ``TEMP`` or ``TMP``, as :mod:`tempfile` reads them), else
    /var/tmp where there is one, else :mod:`tempfile`'s choice (None).
    /tmp is a tmpfs on many systems (Debian 13, Fedora, Arch): a converted
    gigabyte would sit in memory there, or fail with the file system full at
    half the RAM. The files are anonymous (``O_TMPFILE``): none outlives us."""
    if any(os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")):
        return None
    if os.path.isdir(_VAR_TMP) and os.access(_VAR_TMP, os.W_OK | os.X_OK):
        return _VAR_TMP
    return None


def converts_through_file(info: Part10Info, target: str) -> bool:
    """Whether ``info``'s data set goes to ``target`` through a temporary file."""
    return (info.dataset_length > IN_MEMORY_MOST and target in _LITTLE_ENDIAN
            and info.transfer_syntax_uid in _LITTLE_ENDIAN)


def convert_in_memory(info: Part10Info, target: str) -> bytes:
    """The data set of ``info``'s file re-encoded in ``target``, any uncompressed
    syntax. Only the data set is written: no preamble and no File Meta
    Information (a C-STORE carries the data set alone, PS3.7 9.3.1.1). Values
    pydicom decodes it re-encodes in the target's byte order; those it keeps as
    bytes (OW, OF, OL, OD, OV) are swapped by ``encode_dataset`` when the byte
    order changes."""
    return encode_dataset(pydicom.dcmread(info.path), target, source=info.transfer_syntax_uid)


def convert_to_file(info: Part10Info, target: str) -> tuple[io.BufferedRandom, int]:
    """The data set of ``info``'s file, in the Little Endian syntax ``target``
    (its own being Little Endian too: :func:`converts_through_file`), written to
    an anonymous temporary file: (the file, at its start; its length). The caller
    closes the file. Raises what pydicom raises, ``OSError``, and
    :class:`StorageError` when the source file is shorter than its elements say."""
    ds = pydicom.dcmread(info.path, defer_size=_DEFER)
    implicit = info.transfer_syntax_uid == IMPLICIT_LE
    with open(info.path, "rb", buffering=0) as source:
        for tag in list(ds.keys()):
            raw = ds.get_item(tag, keep_deferred=True)
            if not isinstance(raw, RawDataElement) or raw.value is not None:
                continue  # read already: small, or changed
            if raw.length == _UNDEFINED or raw.value_tell is None:
                continue
            vr = raw.VR
            if vr is None and implicit:
                try:  # PS3.5 A.1: the VR of an Implicit VR element is the dictionary's
                    vr = dictionary_VR(tag)
                except KeyError:  # private, unknown: pydicom reads it whole
                    continue
            if vr not in BUFFERABLE_VRS:
                continue
            # "OB or OW" (Pixel Data read in Implicit VR) is decided by pydicom as
            # it writes, as for the rest of the data set (OW, PS3.5 A.1).
            ds[tag] = DataElement(tag, vr, FileSlice(source.fileno(), raw.value_tell,
                                                     raw.length, str(info.path)))
        out = tempfile.TemporaryFile(dir=temporary_folder())  # noqa: SIM115 (sent, then closed)
        try:
            writer = DicomFileLike(out)
            writer.is_little_endian = True
            writer.is_implicit_VR = target == IMPLICIT_LE
            write_dataset(writer, ds)
            out.flush()
            length = out.tell()
            out.seek(0)
        except BaseException:
            out.close()
            raise
    return out, length


def conversion_error(exc: Exception) -> str:
    """pydicom's reason in one line. Its writer wraps what an element raised in
    "With tag (gggg,eeee) got exception: ..." followed by the whole traceback (a
    value pydicom warns about fails so where warnings are errors: ``-W error``,
    pytest's filterwarnings); the result's error is read in a table or a log."""
    text = str(exc).strip().split("\n", 1)[0] or type(exc).__name__
    prefix, found, reason = text.partition(" got exception: ")
    if found and prefix.startswith("With tag "):
        text = f"{prefix.removeprefix('With tag ')}: {reason}"
    return text


class FileSlice(io.BufferedIOBase):
    """``length`` bytes of an open file from ``start``, as a read-only, seekable
    buffer: what pydicom writes in pieces as a bulk value (``DataElement``'s
    buffered values). Read with ``pread``, so that slices of one descriptor do
    not move each other's position. A file that holds fewer bytes than the
    slice raises :class:`StorageError` on the read that finds it: pydicom has
    written the value's length by then, so a short value must not pass."""

    def __init__(self, fd: int, start: int, length: int, name: str) -> None:
        super().__init__()
        self._fd, self._start, self._length, self._name = fd, start, length, name
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}
        if whence not in base:
            raise ValueError(f"invalid whence ({whence})")
        position = base[whence] + offset
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, self._length - self._position)
        wanted = left if size is None or size < 0 else min(size, left)
        if wanted == 0:
            return b""
        data = os.pread(self._fd, wanted, self._start + self._position)
        if len(data) < wanted:
            raise StorageError(f"{self._name} is shorter than when it was read")
        self._position += wanted
        return data

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)
