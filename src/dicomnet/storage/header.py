"""The attributes a C-STORE SCP needs from a received data set, read raw.

Placing a received object (study and series folders) and indexing it (patient,
study, series and instance keys, PS3.4 C.6.1.1) needs a score of text
attributes, all before group 0028. They are read as raw elements, without
converting values: in memory in (Explicit or Implicit VR) Little Endian by
:func:`~dicomnet.storage.scan.scan_elements`, a tight loop that gives up on
anything unusual; otherwise, and where it gives up, by
:func:`~dicomnet.storage.toplevel.top_level_elements`, which reads what DCMTK
and pydicom read (an unlisted VR, Implicit VR elements and items in Explicit
VR, undefined lengths...), from a file by windows and seeks, and a deflated
data set by inflating as far as needed. pydicom reads the data set only where
that walk loses its place. :class:`HeaderAttributes` then decodes the text
straight from the bytes when the character set is a plain one (PS3.5
6.1.2.5.3); anything else goes through pydicom's ``Dataset``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import struct
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.storage.part10 import DEFLATED_DATA_SETS
from dicomnet.storage.scan import RawElements, scan_elements
from dicomnet.storage.toplevel import (
    BufferSource,
    FileSource,
    InflatingSource,
    Source,
    top_level_elements,
)

# Plain int keys and tuples (RawElements): a dict lookup by int against BaseTag
# keys goes through BaseTag.__eq__, in Python, and a RawDataElement per element
# cost as much as the rest of the scan.
_Elements = RawElements

__all__ = ["HEADER_PREFIX", "HeaderAttributes", "read_header"]

logger = logging.getLogger("dicomnet.storage")

#: Attributes the index and the file's placement need all sit before group 0028.
_HEADER_END = 0x00280000
#: Bytes of compressed data read at a time for a deflated data set in a file.
HEADER_PREFIX = 64 << 10
_IMPLICIT_LE = str(ImplicitVRLittleEndian)
_BIG_ENDIAN = str(ExplicitVRBigEndian)
#: Syntaxes whose in-memory data sets are scanned (storage.scan) first.
_SCANNED = frozenset({_IMPLICIT_LE, str(ExplicitVRLittleEndian)})
_REQUIRED = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
# Character sets whose bytes decode without pydicom's machinery (PS3.5 6.1.2.5.3).
# The default repertoire is ASCII; bytes beyond it are decoded as Latin-1, as
# pydicom does, rather than replaced.
PLAIN_CHARSETS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1",
                  "ISO_IR 192": "utf-8"}
_CHARSET_TAG = 0x00080005
#: Value representations held as character strings (PS3.5 6.2).
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                       "TM", "UC", "UI", "UR", "UT"})
_TAGS: dict[str, tuple[int, bool]] = {}


def _lookup(keyword: str) -> tuple[int, bool]:
    """The tag of ``keyword`` and whether its dictionary VR is a text one."""
    known = _TAGS.get(keyword)
    if known is None:
        found = tag_for_keyword(keyword)
        if found is None:
            raise KeyError(f"unknown DICOM keyword {keyword!r}")
        known = _TAGS[keyword] = (int(found), dictionary_VR(found) in _TEXT_VRS)
    return known


def _tag(keyword: str) -> int:
    return _lookup(keyword)[0]


class HeaderAttributes:
    """Text attributes of a data set: from raw elements, or from a ``Dataset``."""

    __slots__ = ("_dataset", "_encoding", "_implicit", "_little", "_raw")

    def __init__(self, raw: _Elements | None = None, *, implicit: bool = False,
                 little: bool = True, dataset: Dataset | None = None) -> None:
        self._raw = raw
        self._implicit = implicit
        self._little = little
        self._dataset = dataset
        self._encoding: str | None = None
        if raw is not None:
            charset = raw.get(_CHARSET_TAG)
            name = charset[1].decode("ascii", "replace") if charset is not None else ""
            self._encoding = PLAIN_CHARSETS.get(name.strip(" \0"))

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> HeaderAttributes:
        """Wrap a data set pydicom has read (the slow path, and reindexing)."""
        return cls(dataset=dataset)

    @property
    def dataset(self) -> Dataset:
        """The same attributes as a pydicom ``Dataset`` (made on first use)."""
        if self._dataset is None:
            implicit, little = self._implicit, self._little
            ds = Dataset({
                BaseTag(tag): RawDataElement(BaseTag(tag), vr, len(value), value, 0, implicit,
                                             little)
                for tag, (vr, value) in (self._raw or {}).items()
            })
            ds.set_original_encoding(self._implicit, self._little)
            self._dataset = ds
        return self._dataset

    def text(self, keyword: str) -> str | None:
        """The attribute as text (several values joined by ``\\``), or None when
        absent or empty. Raises ``KeyError`` for a keyword the DICOM dictionary
        does not know, whichever way the data set is read."""
        raw = self._raw
        tag, is_text = _lookup(keyword)
        if raw is not None and self._encoding is not None:
            element = raw.get(tag)
            if element is not None:
                vr, value = element
                # Implicit VR: the dictionary says whether the bytes are text.
                if vr in _TEXT_VRS or (vr is None and is_text):
                    return value.decode(self._encoding, "replace").strip(" \0") or None
            elif self._dataset is None:
                # Read raw: absent (or of an undefined length, or over 1 MiB: not kept).
                return None
        value = self.dataset.get(keyword)
        if value is None:
            return None
        if isinstance(value, MultiValue | list | tuple):
            return "\\".join(str(v) for v in value) or None
        return str(value) or None

    def texts(self, keywords: Sequence[str]) -> list[str | None]:
        """:meth:`text` of each keyword, in order: one call for the eighteen of an
        index row, which otherwise cost the index thread a call each."""
        raw, encoding = self._raw, self._encoding
        if raw is None or encoding is None or self._dataset is not None:
            return [self.text(keyword) for keyword in keywords]
        out: list[str | None] = []
        for keyword in keywords:
            tag, is_text = _TAGS.get(keyword) or _lookup(keyword)
            element = raw.get(tag)
            if element is None:
                out.append(None)  # scanned: every element before group 0028 is in raw
                continue
            vr, value = element
            if vr in _TEXT_VRS or (vr is None and is_text):
                out.append(value.decode(encoding, "replace").strip(" \0") or None)
            else:
                out.append(self.text(keyword))
        return out

    def __contains__(self, keyword: str) -> bool:
        if self._raw is not None:
            return _tag(keyword) in self._raw
        return keyword in self.dataset


def read_header(buffer: bytes | bytearray | memoryview | None, path: str | None,
                transfer_syntax: str) -> HeaderAttributes:
    """The attributes before group 0028 of a received object: our own Part 10
    header (:func:`~dicomnet.storage.part10.part10_header`) followed by the data
    set, held in ``buffer`` or in the file at ``path``.

    Raises ``InvalidDicomError`` without that header, and what pydicom raises
    for a data set no walk reads.
    """
    implicit = transfer_syntax == _IMPLICIT_LE
    if buffer is not None and transfer_syntax in _SCANNED:
        with memoryview(buffer) as view:
            start = _data_set_offset(bytes(view[:144]))
            scanned = scan_elements(view, start, implicit=implicit, end_tag=_HEADER_END)
            if scanned is not None and all(_tag(k) in scanned[0] for k in _REQUIRED):
                return HeaderAttributes(scanned[0], implicit=implicit, little=True)
    with _source(buffer, path, transfer_syntax) as source:
        walked = _walked(source, transfer_syntax)
    if walked is not None:
        return walked
    return _read_by_pydicom(path if path is not None else io.BytesIO(buffer or b""))


def _walked(source: Source, transfer_syntax: str) -> HeaderAttributes | None:
    implicit, big_endian = transfer_syntax == _IMPLICIT_LE, transfer_syntax == _BIG_ENDIAN
    raw = top_level_elements(source, implicit=implicit, big_endian=big_endian,
                             end_tag=_HEADER_END)
    return None if raw is None else HeaderAttributes(raw, implicit=implicit,
                                                      little=not big_endian)


def _read_by_pydicom(source: str | io.BytesIO) -> HeaderAttributes:
    """pydicom's reader, where the walk lost its place."""
    logger.debug("data set not walked to group 0028: read by pydicom")
    return HeaderAttributes.from_dataset(pydicom.dcmread(source, stop_before_pixels=True))


def _data_set_offset(head: bytes) -> int:
    """Where the data set starts after our Part 10 header: preamble, DICM, then
    (0002,0000) UL, the length of the rest of the group (PS3.10 7.1)."""
    if len(head) < 144 or head[128:136] != b"DICM\x02\x00\x00\x00" or head[136:138] != b"UL":
        raise InvalidDicomError("not a received object: no Part 10 header of ours")
    offset: int = 144 + struct.unpack_from("<L", head, 140)[0]
    return offset


@contextlib.contextmanager
def _source(buffer: bytes | bytearray | memoryview | None, path: str | None,
            transfer_syntax: str) -> Iterator[Source]:
    deflated = transfer_syntax in DEFLATED_DATA_SETS
    if path is None:
        with memoryview(buffer or b"") as view:
            start = _data_set_offset(bytes(view[:144]))
            yield (InflatingSource(iter((view[start:],))) if deflated
                   else BufferSource(view[start:]))
        return
    with open(path, "rb") as fp:
        start = _data_set_offset(fp.read(144))
        if deflated:
            fp.seek(start)
            yield InflatingSource(_pieces(fp))
        else:
            yield FileSource(fp, start)


def _pieces(fp: BinaryIO) -> Iterator[bytes | memoryview]:
    while piece := fp.read(HEADER_PREFIX):
        yield piece
