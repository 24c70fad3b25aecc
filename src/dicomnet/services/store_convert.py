"""Re-encoding a Part 10 file's data set in another uncompressed transfer syntax,
for a peer that did not accept the file's own (PS3.5 A.1-A.5), with pydicom.

A small data set is re-encoded in memory. A large one is written by pydicom to
an anonymous temporary file (in :func:`temporary_folder`), and sent from there
as a file is: its bulk values (Pixel Data and the other OB, OW, OF, OL, OD, OV
values of defined length at the top level) are never held in memory whole,
pydicom copies them from the source file piece by piece (:class:`FileSlice`, a
"buffered" value to pydicom), their words swapped on the way when the byte order
changes (Explicit VR Big Endian, PS3.5 A.3; PS3.5 7.3). Converting a 268 MB
file to Implicit VR in memory peaked at 812 MB (the data set read, its
encoding, the bytes of it); this way the process peaked at 34 MB in all.

Deflated Explicit VR Little Endian (PS3.5 A.5) is the Explicit VR Little Endian
data set compressed whole with raw deflate (RFC 1951): a deflated source is
inflated in pieces into a temporary Part 10 file first, whatever its size (how
large it inflates is known only then), and a deflated target is compressed in
pieces from the Explicit VR Little Endian data set. A deflated data set that
starts with group 0002 elements (storage.stray_meta) is inflated without them,
and deflated again so (:func:`redeflated`) for a peer that takes it deflated.
"""

from __future__ import annotations

import array
import io
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.datadict import dictionary_description, dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.filebase import DicomFileLike
from pydicom.filereader import read_dataset
from pydicom.filewriter import correct_ambiguous_vr_element, write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import UID
from pydicom.valuerep import BUFFERABLE_VRS

from ..storage.completeness import MAX_INFLATED, inflated_past
from ..storage.files import StorageError
from ..storage.part10 import PREAMBLE_LENGTH, Part10Info
from ..storage.stray_meta import StrayMeta
from .store_dataset import (
    DEFLATED_LE,
    EXPLICIT_BE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    UNCOMPRESSED,
    WORD_SIZES,
    array_code,
    encode_dataset,
    swapped_copy,
)

__all__ = ["INFLATED_MOST", "IN_MEMORY_MOST", "FileSlice", "NotConvertible", "conversion_error",
           "convert_in_memory", "convert_to_file", "converts_through_file", "redeflated",
           "temporary_folder"]

#: Data sets up to this long are converted in memory (about three times their
#: size at the peak); longer ones through a temporary file.
IN_MEMORY_MOST = 16 << 20
#: Values from this long are left unread by pydicom (``defer_size``), to be
#: copied from the source file when written.
_DEFER = 64 << 10
#: Bytes read (and compressed or inflated) at a time.
_PIECE = 1 << 20
_UNDEFINED = 0xFFFFFFFF
#: The most a deflated data set may inflate to in a temporary file (the bound of
#: a peer's in storage.completeness): the space it takes where temporary files go.
INFLATED_MOST = MAX_INFLATED
#: On disk where /tmp often is not (FHS 3.0 5.15: kept across reboots, so never
#: a RAM file system).
_VAR_TMP = "/var/tmp"


class NotConvertible(ValueError):
    """A data set that cannot be re-encoded without guessing: the reason, in
    words naming the element (``prepare_file`` reports it as the file's error)."""


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
    """Whether ``info``'s data set goes to ``target`` (an uncompressed syntax)
    through a temporary file: when it is large, or deflated (its size once
    inflated is not known before)."""
    if info.transfer_syntax_uid not in UNCOMPRESSED or target not in UNCOMPRESSED:
        return False
    return info.transfer_syntax_uid == DEFLATED_LE or info.dataset_length > IN_MEMORY_MOST


def convert_in_memory(info: Part10Info, target: str) -> bytes:
    """The data set of ``info``'s file re-encoded in ``target``, any uncompressed
    syntax. Only the data set is written: no preamble and no File Meta
    Information (a C-STORE carries the data set alone, PS3.7 9.3.1.1). Values
    pydicom decodes it re-encodes in the target's byte order; those it keeps as
    bytes (OW, OF, OL, OD, OV) are swapped by ``encode_dataset`` when the byte
    order changes."""
    return encode_dataset(_read(info), target, source=info.transfer_syntax_uid)


def _read(info: Part10Info, defer_size: int | None = None) -> Dataset:
    """``info``'s file read by pydicom. One whose data set starts with group 0002
    elements (``stray_meta``) is read from where its data set starts, in the
    syntax of its own meta group: ``dcmread`` would read them as more meta, and
    the data set in the Transfer Syntax UID they name. So is one whose data set
    is not in its meta group's syntax (``relabelled_from``): ``dcmread`` would
    guess, with a warning."""
    if not info.stray_meta and info.relabelled_from is None:
        return _checked(pydicom.dcmread(info.path, defer_size=defer_size),
                        info.transfer_syntax_uid)
    syntax = info.transfer_syntax_uid
    implicit, little = syntax == IMPLICIT_LE, syntax != EXPLICIT_BE
    with open(info.path, "rb") as fp:
        fp.seek(info.dataset_offset)
        ds = read_dataset(fp, is_implicit_VR=implicit, is_little_endian=little,
                          defer_size=defer_size)
    # A FileDataset named by its path, so that pydicom reads deferred values from it.
    return _checked(FileDataset(str(info.path), ds, file_meta=info.meta,
                                is_implicit_VR=implicit, is_little_endian=little), syntax)


def _checked(ds: Dataset, source: str) -> Dataset:
    """``ds``, read in ``source``, made safe to re-encode: in Implicit VR, refused
    (:class:`NotConvertible`) when a value's VR cannot be known; in Explicit VR
    Big Endian, its UN values kept UN (:func:`_unknown_kept`)."""
    if source == IMPLICIT_LE:
        _refuse_unknown_sign(ds, signed_known=False)
    elif source == EXPLICIT_BE:
        _unknown_kept(ds)
    return ds


def _raw_vr(ds: Dataset, tag: int) -> tuple[str | None, bool]:
    """The VR of ``ds``'s element ``tag`` without decoding it (nor reading a
    deferred value): its own, else the dictionary's (None: unknown); and
    whether it holds items (a sequence: SQ, or of undefined length)."""
    element = ds.get_item(tag, keep_deferred=True)
    if not isinstance(element, RawDataElement):
        return str(element.VR), element.VR == "SQ"
    vr = element.VR
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = None
    return (None if vr is None else str(vr)), vr == "SQ" or element.length == _UNDEFINED


def _refuse_unknown_sign(ds: Dataset, *, signed_known: bool) -> None:
    """Raise :class:`NotConvertible` for an element whose VR is "US or SS" (PS3.6:
    Smallest Image Pixel Value (0028,0106) and the like) where no Pixel
    Representation (0028,0103) says which, here or in a data set around it.
    Read in Implicit VR (PS3.5 A.1), its VR is the dictionary's, both; an
    Explicit VR target must write one (PS3.5 7.1.2). Its bytes would swap
    alike either way, but its value means 65531 as US and -5 as SS: written
    as either, it would claim what the file never said (pydicom picks US
    when there is no Pixel Data either, and fails when there is)."""
    signed_known = signed_known or "PixelRepresentation" in ds
    for tag in list(ds.keys()):
        vr, items = _raw_vr(ds, tag)
        if vr == "US or SS" and not signed_known:
            name = dictionary_description(tag)
            raise NotConvertible(
                f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {name} is US or SS as Pixel "
                "Representation (0028,0103) says, and the data set has none: read in "
                "Implicit VR, its VR is unknown, and an Explicit VR syntax would have to "
                "name one (PS3.5 7.1.2, A.1); not converted")
        if items and isinstance(value := ds[tag].value, Sequence):
            for item in value:
                _refuse_unknown_sign(item, signed_known=signed_known)


def _unknown_kept(ds: Dataset) -> None:
    """Keep the UN values of a data set read in Explicit VR Big Endian as they
    are, UN: a UN value is in Little Endian whatever the transfer syntax, and
    is not swapped (PS3.5 6.2.2: it holds the Implicit VR Little Endian
    encoding of a value whose VR was not known). pydicom gives one whose tag
    it knows that VR, and decodes its bytes in the file's Big Endian: 300 came
    out as 11265. Values not read yet (deferred) are left to ``_reencoded``."""
    for tag in list(ds.keys()):
        element = ds.get_item(tag, keep_deferred=True)
        if (isinstance(element, RawDataElement) and element.VR == "UN"
                and element.value is not None and element.length != _UNDEFINED):
            ds[tag] = _unknown(tag, element.value)
            continue
        if _raw_vr(ds, tag)[0] == "SQ" and isinstance(value := ds[tag].value, Sequence):
            for item in value:
                _unknown_kept(item)


def convert_to_file(info: Part10Info, target: str) -> tuple[io.BufferedRandom, int]:
    """The data set of ``info``'s file in the uncompressed syntax ``target``
    (its own being another uncompressed one), written to an anonymous temporary
    file: (the file, at the data set's first byte; the data set's length). The
    caller closes the file. Raises what pydicom raises, ``OSError``, and
    :class:`StorageError` when the source file is shorter than its elements say
    or its deflated data set is cut or damaged."""
    source = info.transfer_syntax_uid
    name = str(info.path)
    if source == DEFLATED_LE:
        inflated, offset = _inflated(info)
        try:
            if target == EXPLICIT_LE:  # the inflated data set is the answer
                inflated.seek(0, io.SEEK_END)
                length = inflated.tell() - offset
                inflated.seek(offset)
                return inflated, length
            with inflated:
                return _reencoded(inflated, EXPLICIT_LE, target, f"the inflated {name}")
        except BaseException:
            inflated.close()
            raise
    if target == DEFLATED_LE:
        if source == EXPLICIT_LE:
            with open(info.path, "rb", buffering=0) as fp:
                return _deflated(_pieces(fp, info.dataset_offset, info.dataset_length, name))
        plain, length = _reencoded(info.path, source, EXPLICIT_LE, name, info)
        with plain:
            return _deflated(_pieces(plain, 0, length, name))
    return _reencoded(info.path, source, target, name, info)


def _temporary() -> io.BufferedRandom:
    return tempfile.TemporaryFile(dir=temporary_folder())


def _reencoded(source_file: Path | io.BufferedRandom, source: str, target: str,
               name: str, info: Part10Info | None = None) -> tuple[io.BufferedRandom, int]:
    """A Part 10 file (a path, with its ``info``, or an open temporary file) in
    the syntax ``source`` (not deflated) re-encoded as a data set in ``target``
    (not deflated) into a new temporary file, its deferred bulk values copied
    in pieces (swapped when the byte order changes)."""
    ds: Dataset = (_read(info, _DEFER) if info is not None
                   else pydicom.dcmread(source_file, defer_size=_DEFER))
    implicit = source == IMPLICIT_LE
    little_endian = target != EXPLICIT_BE
    swap = (source == EXPLICIT_BE) != (target == EXPLICIT_BE)
    with open(source_file, "rb", buffering=0) if isinstance(source_file, Path) else (
            open(os.dup(source_file.fileno()), "rb", buffering=0)) as fp:
        for tag in list(ds.keys()):
            raw = ds.get_item(tag, keep_deferred=True)
            if not isinstance(raw, RawDataElement) or raw.value is not None:
                continue  # read already: small, or changed
            if raw.length == _UNDEFINED or raw.value_tell is None:
                continue
            vr = raw.VR
            if vr == "UN" and source == EXPLICIT_BE:
                # As it is, not swapped, UN (``_unknown_kept``; PS3.5 6.2.2).
                ds[tag] = _unknown(tag, _pieces_joined(fp, raw.value_tell, raw.length, name))
                continue
            if vr is None and implicit:
                try:  # PS3.5 A.1: the VR of an Implicit VR element is the dictionary's
                    vr = dictionary_VR(tag)
                except KeyError:  # private, unknown: pydicom reads it whole
                    continue
            if vr not in BUFFERABLE_VRS:
                continue
            width = 0
            if swap:
                if vr == "OB or OW":  # Pixel Data read in Implicit VR: OW or OB, as written
                    vr = str(correct_ambiguous_vr_element(
                        DataElement(tag, vr, b""), ds, little_endian).VR)
                width = WORD_SIZES.get(vr, 0)
                if width and raw.length % width:
                    continue  # not whole words: read and left as they are, as in memory
            # Otherwise "OB or OW" is decided by pydicom as it writes, as for the rest
            # of the data set (OW, PS3.5 A.1). An odd length is padded here: pydicom
            # writes a buffered value's length as the buffer's, then pads after it.
            ds[tag] = DataElement(tag, vr, FileSlice(fp.fileno(), raw.value_tell, raw.length,
                                                     name, swap=width,
                                                     pad=bool(raw.length % 2)))
        if swap:  # the values pydicom holds as bytes, in sequences too (PS3.5 7.3)
            ds = swapped_copy(ds, little_endian)
        out = _temporary()
        try:
            writer = DicomFileLike(out)
            writer.is_little_endian = little_endian
            writer.is_implicit_VR = target == IMPLICIT_LE
            write_dataset(writer, ds)
            out.flush()
            length = out.tell()
            out.seek(0)
        except BaseException:
            out.close()
            raise
    return out, length


def _inflated(info: Part10Info) -> tuple[io.BufferedRandom, int]:
    """``info``'s deflated data set inflated, in pieces, into a temporary Part 10
    file in Explicit VR Little Endian (PS3.5 A.5): (the file; its data set's
    offset). Group 0002 elements at the data set's start are left out
    (:func:`_inflating`): pydicom would read them as more File Meta Information,
    and the data set in the Transfer Syntax UID they name."""
    meta = info.meta
    meta.TransferSyntaxUID = UID(EXPLICIT_LE)
    out = _temporary()
    try:
        out.write(bytes(PREAMBLE_LENGTH - 4) + b"DICM")
        writer = DicomFileLike(out)
        writer.is_little_endian, writer.is_implicit_VR = True, False
        write_file_meta_info(writer, meta, enforce_standard=False)
        offset = out.tell()
        for chunk in _inflating(info):
            out.write(chunk)
        out.flush()
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out, offset


def redeflated(info: Part10Info) -> tuple[io.BufferedRandom, int]:
    """``info``'s deflated data set (PS3.5 A.5) without the group 0002 elements
    its stream starts with (``info.stray_meta``; PS3.5 7.1 puts none in a data
    set), deflated again into a temporary file, padded to an even length: (the
    file, at its start; its length). Inflated and deflated a piece at a time:
    memory stays flat whatever the size. Raises :class:`StorageError` as
    :func:`_inflating` does, and ``OSError``.

    At level 1: the stream is made again only to leave a few elements out, by
    the sender, whose CPU also drives the association; level 1 deflates several
    times faster than the default (6) for a stream a little longer, and the
    peer inflates either alike (RFC 1951: the level is no part of the format)."""
    return _deflated(_inflating(info), level=1)


def _inflating(info: Part10Info) -> Iterator[bytes | memoryview]:
    """``info``'s deflated data set inflated, at most ``_PIECE`` bytes at a time,
    without the group 0002 elements it may start with (storage.stray_meta: looked
    for whatever ``info.stray_meta`` says; past them, the bytes pass as they
    are). Raises :class:`StorageError` when it inflates past
    :data:`INFLATED_MOST`, or its stream is cut short or damaged."""
    stray = StrayMeta(implicit=False)
    inflater = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
    most, inflated = INFLATED_MOST, 0
    try:
        with open(info.path, "rb", buffering=0) as fp:
            for piece in _pieces(fp, info.dataset_offset, info.dataset_length, str(info.path)):
                data = piece
                while data and not inflater.eof:
                    # At most a piece out at a time: deflate inflates up to a
                    # thousandfold, a megabyte of zeros into a gigabyte.
                    chunk = inflater.decompress(data, _PIECE)
                    inflated += len(chunk)
                    if inflated > most:
                        raise StorageError(f"{info.path}: {inflated_past(most, 'convert')}; "
                                           "not sent")
                    kept = stray.feed(chunk)
                    if kept:
                        yield kept
                    data = inflater.unconsumed_tail
                if inflater.eof:
                    break
            rest = inflater.flush()
    except zlib.error as exc:
        raise StorageError(f"{info.path}: its deflated data set is damaged ({exc})") from exc
    if inflated + len(rest) > most:
        raise StorageError(f"{info.path}: {inflated_past(most, 'convert')}; not sent")
    # The stream may be followed by one byte of padding (PS3.5 A.5: even length).
    if not inflater.eof:
        raise StorageError(f"{info.path}: its deflated data set is cut short")
    kept = stray.feed(rest)
    if kept:
        yield kept


def _deflated(pieces: Iterator[bytes | memoryview], *, level: int = zlib.Z_DEFAULT_COMPRESSION
              ) -> tuple[io.BufferedRandom, int]:
    """``pieces`` (an Explicit VR Little Endian data set) compressed with raw
    deflate into a temporary file, padded to an even length (PS3.5 A.5): (the
    file, at its start; its length)."""
    out = _temporary()
    try:
        deflater = zlib.compressobj(level, wbits=-zlib.MAX_WBITS)
        for piece in pieces:
            out.write(deflater.compress(piece))
        out.write(deflater.flush())
        if out.tell() % 2:
            out.write(b"\x00")
        out.flush()
        size = out.tell()
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out, size


def _pieces(fp: BinaryIO, offset: int, length: int, name: str) -> Iterator[bytes]:
    """``length`` bytes of ``fp`` from ``offset``, a piece at a time. Raises
    :class:`StorageError` when the file ends before them."""
    fp.seek(offset)
    remaining = length
    while remaining > 0:
        piece = fp.read(min(_PIECE, remaining))
        if not piece:
            raise StorageError(f"{name} is shorter than when it was read")
        remaining -= len(piece)
        yield piece


def _unknown(tag: int, value: bytes) -> DataElement:
    """A UN element holding ``value`` as it is: pydicom makes one of a tag it
    knows an element of that tag's VR, its value still these bytes."""
    element = DataElement(tag, "UN", value)
    element.VR = "UN"
    return element


def _pieces_joined(fp: BinaryIO, offset: int, length: int, name: str) -> bytes:
    return b"".join(_pieces(fp, offset, length, name))


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
    written the value's length by then, so a short value must not pass.
    ``swap`` (2, 4 or 8; ``length`` a multiple of it) reverses the bytes of
    each word of that size as they are read: the value in the other byte order.
    ``pad`` adds a zero byte after the ``length`` bytes: a value of odd length
    made even, as every value is (PS3.5 7.1.1) and as pydicom pads one held in
    memory."""

    def __init__(self, fd: int, start: int, length: int, name: str, *, swap: int = 0,
                 pad: bool = False) -> None:
        super().__init__()
        self._fd, self._start, self._name = fd, start, name
        self._stored = length
        self._length = length + pad
        self._position = 0
        self._swap = swap

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
        if self._swap:
            return self._read_swapped(wanted)
        stored = max(0, min(wanted, self._stored - self._position))
        data = os.pread(self._fd, stored, self._start + self._position) if stored else b""
        if len(data) < stored:
            raise StorageError(f"{self._name} is shorter than when it was read")
        self._position += wanted
        return data + bytes(wanted - stored)

    def _read_swapped(self, wanted: int) -> bytes:
        """``wanted`` bytes from the position, of the whole words around them read
        and swapped (a read need not start or end on a word)."""
        width = self._swap
        first = self._position - self._position % width
        end = self._position + wanted
        end += -end % width
        data = os.pread(self._fd, end - first, self._start + first)
        if len(data) < end - first:
            raise StorageError(f"{self._name} is shorter than when it was read")
        words = array.array(array_code(width))
        words.frombytes(data)
        words.byteswap()
        skip = self._position - first
        self._position += wanted
        return words.tobytes()[skip:skip + wanted]

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)
