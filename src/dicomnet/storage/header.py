"""The attributes a C-STORE SCP needs from a received data set, read raw.

Placing a received object (study and series folders) and indexing it (patient,
study, series and instance keys, PS3.4 C.6.1.1) needs a score of text
attributes, all before group 0028. pydicom's element generator reads them as
raw elements from the data set's first kilobytes, without converting values;
:class:`HeaderAttributes` then decodes the text straight from their bytes when
the character set is a plain one (PS3.5 6.1.2.5.3). Going through a
``Dataset`` and its keyword lookups cost several times as much per object,
which showed in the small-object rate. Anything unusual (a deflated data set,
another character set, a prefix that ends mid-element) falls back to pydicom.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import data_element_generator
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomnet.storage.scan import RawElements, scan_elements

# Plain int keys and tuples (RawElements): a dict lookup by int against BaseTag
# keys goes through BaseTag.__eq__, in Python, and a RawDataElement per element
# cost as much as the rest of the scan.
_Elements = RawElements

__all__ = ["HEADER_PREFIX", "HeaderAttributes", "read_header"]

#: Attributes the index and the file's placement need all sit before group 0028.
_HEADER_END = 0x00280000
#: Bytes of an in-memory data set parsed first; the whole one only if needed.
HEADER_PREFIX = 64 << 10
_RAW_SYNTAXES = {str(ImplicitVRLittleEndian): (True, True),
                 str(ExplicitVRBigEndian): (False, False)}
_IMPLICIT_LE = str(ImplicitVRLittleEndian)
#: Syntaxes whose in-memory data sets are scanned (storage.scan) rather than read by pydicom.
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
                return None  # scanned: every element before group 0028 is in raw
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

    Raises what pydicom raises for a data set it cannot read.
    """
    if buffer is not None and transfer_syntax in _SCANNED:
        # Preamble, DICM, then (0002,0000) UL: the length of the rest of the group.
        with memoryview(buffer) as view:
            if len(view) >= 144 and bytes(view[128:138]) == b"DICM\x02\x00\x00\x00UL":
                start = 144 + struct.unpack_from("<L", view, 140)[0]
                implicit = transfer_syntax == _IMPLICIT_LE
                scanned = scan_elements(view, start, implicit=implicit, end_tag=_HEADER_END)
                if scanned is not None and all(_tag(k) in scanned[0] for k in _REQUIRED):
                    return HeaderAttributes(scanned[0], implicit=implicit, little=True)
    if transfer_syntax != str(DeflatedExplicitVRLittleEndian):
        implicit, little = _RAW_SYNTAXES.get(transfer_syntax, (False, True))
        try:
            # The attributes sit in the first kilobytes: parse a prefix rather than
            # copying a whole in-memory data set (BytesIO copies what it is given).
            whole = buffer if buffer is not None else b""
            prefix = memoryview(whole)[:HEADER_PREFIX]
            with (open(path, "rb") if path is not None else io.BytesIO(prefix)) as fp:
                # Preamble, DICM, then (0002,0000) UL: the length of the rest of the group.
                head = fp.read(144)
                if head[128:136] != b"DICM\x02\x00\x00\x00" or head[136:138] != b"UL":
                    raise ValueError("not our Part 10 header")
                fp.seek(144 + struct.unpack_from("<I", head, 140)[0])
                reached_end = False

                def stop(tag: int, vr: str | None, length: int) -> bool:
                    nonlocal reached_end
                    reached_end = tag >= _HEADER_END
                    return reached_end

                elements = {element.tag: element for element in
                            data_element_generator(fp, implicit, little, stop_when=stop)}
            complete = path is not None or len(prefix) == len(whole)
            # A prefix that ended before group 0028 may have cut an element short:
            # only a parse that reached group 0028 (or the data set's end) is trusted.
            raw: _Elements = {int(tag): (element.VR, element.value)
                              for tag, element in elements.items()
                              if isinstance(element.value, bytes)}
            if (reached_end or complete) and all(_tag(k) in elements for k in _REQUIRED):
                # The Dataset keeps what the tuples cannot: a sequence's items.
                dataset = Dataset(elements)
                dataset.set_original_encoding(implicit, little)
                return HeaderAttributes(raw, implicit=implicit, little=little, dataset=dataset)
        except Exception:
            pass  # fall through to the full reader, which explains what is wrong
    source = path if path is not None else io.BytesIO(buffer or b"")
    return HeaderAttributes.from_dataset(pydicom.dcmread(source, stop_before_pixels=True))
