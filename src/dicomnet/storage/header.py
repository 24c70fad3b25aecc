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
that walk loses its place.

:class:`HeaderAttributes` then decodes each value itself: text in its
character set (PS3.5 6.1.2.5, code extensions included) and binary numbers
(PS3.5 6.2) as pydicom shows them. pydicom's value conversion is never
involved: it validates values as it converts them (an invalid date, an IS
with letters) and says so with ``warnings.warn``, which an application that
turns warnings into errors (``python -W error``, pytest's filterwarnings) made
an exception, and the object was refused (C000). That cannot be caught here
thread-safely (``warnings.catch_warnings`` swaps process-wide state, and the
store thread, the event loop and the application's own threads may all be in
pydicom at once), and pydicom's switch (``config.settings.
reading_validation_mode``) is process-wide too, and does not cover its
character set warnings: so no value is converted by pydicom at all. A value
that cannot be decoded is decoded with replacement characters, as pydicom
would after its warning.
"""

from __future__ import annotations

import contextlib
import io
import logging
import struct
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import pydicom
from pydicom.charset import CODES_TO_ENCODINGS, default_encoding, handled_encodings, python_encoding
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

__all__ = ["HEADER_PREFIX", "HeaderAttributes", "read_file_header", "read_header"]

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
# Character sets whose bytes decode without code extensions (PS3.5 6.1.2.5.3).
# The default repertoire is ASCII; bytes beyond it are decoded as Latin-1, as
# pydicom does, rather than replaced.
PLAIN_CHARSETS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1",
                  "ISO_IR 192": "utf-8"}
_CHARSET_TAG = 0x00080005
#: Value representations held as character strings (PS3.5 6.2).
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                       "TM", "UC", "UI", "UR", "UT"})
#: Every VR PS3.5 6.2 defines: an element of any other (a writer's mistake, or
#: bytes damaged on the way) is read by its dictionary VR, as one sent as UN.
_KNOWN_VRS = frozenset({
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
    "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
    "UR", "US", "UT", "UV"})
#: Those whose characters Specific Character Set (0008,0005) may extend
#: (PS3.5 6.1.2.3); the others hold the default repertoire only.
_EXTENSIBLE_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
#: Binary numbers (PS3.5 6.2), by their struct format.
_NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q",
            "UV": "Q"}
#: Where a code extension ends and value 1 of the character set is active again
#: (PS3.5 6.1.2.5.3): control characters (CR, LF, FF, TAB), the value delimiter
#: '\', and in a person name '^' and '='.
_RESETS = frozenset(b"\r\n\f\t\\")
_PN_RESETS = _RESETS | frozenset(b"^=")
_ESC = 0x1B
_TAGS: dict[str, tuple[int, str]] = {}


def _lookup(keyword: str) -> tuple[int, str]:
    """The tag of ``keyword`` and its dictionary VR."""
    known = _TAGS.get(keyword)
    if known is None:
        found = tag_for_keyword(keyword)
        if found is None:
            raise KeyError(f"unknown DICOM keyword {keyword!r}")
        known = _TAGS[keyword] = (int(found), dictionary_VR(found))
    return known


def _tag(keyword: str) -> int:
    return _lookup(keyword)[0]


#: Where each tag's text goes in the answer of ``texts`` to a tuple of keywords
#: (position, keyword, dictionary VR), by that tuple.
_Plan = dict[int, tuple[tuple[int, str, str], ...]]
_PLANS: dict[tuple[str, ...], _Plan] = {}


def _plan(keywords: tuple[str, ...]) -> _Plan:
    """The plan of ``texts`` for ``keywords``, made once (KeyError for a keyword
    the DICOM dictionary does not know)."""
    plan = _PLANS.get(keywords)
    if plan is None:
        positions: dict[int, list[tuple[int, str, str]]] = {}
        for position, keyword in enumerate(keywords):
            tag, dictionary_vr = _lookup(keyword)
            positions.setdefault(tag, []).append((position, keyword, dictionary_vr))
        plan = {tag: tuple(entries) for tag, entries in positions.items()}
        if len(_PLANS) >= 64:  # keyword lists come from code: a handful at most
            _PLANS.clear()
        _PLANS[keywords] = plan
    return plan


#: The tags of ``_REQUIRED``: compared as a set, with no call per object.
_REQUIRED_TAGS = frozenset(_tag(keyword) for keyword in _REQUIRED)


class HeaderAttributes:
    """Text attributes of a data set: from raw elements, or from a ``Dataset``."""

    __slots__ = ("_codecs", "_dataset", "_encoding", "_implicit", "_little", "_raw", "_texts")

    def __init__(self, raw: _Elements | None = None, *, implicit: bool = False,
                 little: bool = True, dataset: Dataset | None = None) -> None:
        self._raw = raw
        self._implicit = implicit
        self._little = little
        self._dataset = dataset
        self._encoding: str | None = None
        self._codecs: tuple[str, ...] = ()
        # Text values :meth:`texts` decoded, by tag: the store thread reads four
        # (placing the file), the index thread eighteen (its row) of the same
        # header, so the four are decoded once, not twice.
        self._texts: dict[int, str | None] = {}
        if raw is not None:
            charset = raw.get(_CHARSET_TAG)
            terms = (charset[1].decode("ascii", "replace") if charset is not None else "")
            name = terms.strip(" \0")
            self._encoding = PLAIN_CHARSETS.get(name)
            if self._encoding is None:
                self._codecs = _codecs(name.split("\\"))

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> HeaderAttributes:
        """Wrap a data set pydicom has read (the slow path, and reindexing): its
        values not yet converted are decoded as raw ones are."""
        raw: _Elements = {}
        little = True
        for tag in dataset.keys():  # noqa: SIM118 (iterating a Dataset converts each value)
            element = dataset.get_item(tag)
            if isinstance(element, RawDataElement) and isinstance(element.value, bytes):
                raw[int(tag)] = (element.VR, element.value)
                little = element.is_little_endian
            elif tag == _CHARSET_TAG and element is not None:  # converted already
                terms = element.value
                joined = "\\".join(terms) if isinstance(terms, MultiValue | list) else terms
                raw[_CHARSET_TAG] = ("CS", str(joined or "").encode("ascii", "replace"))
        return cls(raw, little=little, dataset=dataset)

    @property
    def dataset(self) -> Dataset:
        """The same attributes as a pydicom ``Dataset`` (made on first use; its
        values are pydicom's to convert, with pydicom's checks)."""
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
        tag, dictionary_vr = _TAGS.get(keyword) or _lookup(keyword)
        raw = self._raw
        if raw is not None:
            element = raw.get(tag)
            if element is not None:
                vr = element[0]
                if vr in _TEXT_VRS and self._encoding is not None:
                    # The usual case, as _decoded would (a few calls fewer per object).
                    return element[1].decode(self._encoding, "replace").strip(" \0") or None
                if (vr is None or (vr == "UN" and dictionary_vr in _TEXT_VRS)
                        or vr not in _KNOWN_VRS):
                    # Implicit VR, a writer that did not know it, or no VR at all
                    # (pydicom would refuse to convert such an element).
                    vr = dictionary_vr
                decoded = self._decoded(vr, element[1])
                if not isinstance(decoded, _Other):
                    return decoded
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
        index row, which otherwise cost the index thread a call each. Only the
        attributes present are looked at (every element before group 0028 is in
        a header read raw), a few calls each; a text value decoded by an
        earlier call is not decoded again."""
        raw, encoding = self._raw, self._encoding
        if raw is None or encoding is None or self._dataset is not None:
            return [self.text(keyword) for keyword in keywords]
        # A tuple's plan looked up here: _plan is a call more, per object.
        plan = (_PLANS.get(keywords) if isinstance(keywords, tuple) else None) or _plan(
            tuple(keywords))
        out: list[str | None] = [None] * len(keywords)
        known = self._texts
        for tag in raw.keys() & plan:
            if tag in known:  # (``in`` and a subscript: no call)
                for position, _keyword, _vr in plan[tag]:
                    out[position] = known[tag]
                continue
            vr, value = raw[tag]
            for position, keyword, dictionary_vr in plan[tag]:
                if vr in _TEXT_VRS or (vr is None and dictionary_vr in _TEXT_VRS):
                    text = known[tag] = value.decode(encoding, "replace").strip(" \0") or None
                    out[position] = text
                else:
                    out[position] = self.text(keyword)
        return out

    def _decoded(self, vr: str, value: bytes) -> str | None | _Other:
        """``value`` as text, or _OTHER for a VR not decoded here (a sequence, OB...)."""
        if vr in _TEXT_VRS:
            if self._encoding is not None:
                text = value.decode(self._encoding, "replace")
            elif vr in _EXTENSIBLE_VRS:
                text = _decode_extended(value, self._codecs, _PN_RESETS if vr == "PN" else _RESETS)
            else:
                text = value.decode(default_encoding, "replace")
            return text.strip(" \0") or None
        fmt = _NUMBERS.get(vr)
        if fmt is None:
            return _OTHER
        size = struct.calcsize("<" + fmt)
        count = len(value) // size  # a partial last value (an odd length) is dropped
        numbers = struct.unpack_from(("<" if self._little else ">") + fmt * count, value)
        return "\\".join(str(n) for n in numbers) or None

    def __contains__(self, keyword: str) -> bool:
        if self._raw is not None and self._dataset is None:
            return _tag(keyword) in self._raw
        return keyword in self.dataset


class _Other:
    """What :meth:`HeaderAttributes._decoded` does not decode (pydicom's Dataset does)."""


_OTHER = _Other()


def _codecs(terms: Sequence[str]) -> tuple[str, ...]:
    """The Python codecs of Specific Character Set's values (PS3.5 Table C.12-2,
    C.12-3), pydicom's table; an unknown one is the default repertoire's (logged
    at DEBUG, as pydicom warns of it)."""
    out = []
    for index, value in enumerate(terms):
        term = value.strip(" \0") or ("ISO_IR 6" if index == 0 else "")
        codec = python_encoding.get(term)
        if codec is None:
            logger.debug("unknown Specific Character Set %r: read as the default repertoire",
                         term)
            codec = default_encoding
        out.append(codec)
    return tuple(out) or (default_encoding,)


def _decode_extended(value: bytes, codecs: Sequence[str], resets: frozenset[int]) -> str:
    """Text in a character set with code extensions (PS3.5 6.1.2.5): from each
    escape sequence on, the character set it designates (one Specific Character
    Set lists), back to value 1's at the next of ``resets``. What cannot be
    decoded so (bytes the character set has no character for, an escape to one
    not listed) is read in value 1's, bytes it lacks replaced: pydicom's reading,
    after its warning."""
    first = codecs[0]
    pieces = value.split(bytes((_ESC,)))
    out = [_decoded_or_replaced(pieces[0], first)]
    for piece in pieces[1:]:
        fragment = bytes((_ESC,)) + piece
        length = 4 if fragment[1:3] in (b"$(", b"$)") else 3
        codec = CODES_TO_ENCODINGS.get(fragment[:length])
        if codec is None or (codec not in codecs and codec != default_encoding):
            logger.debug("escape sequence %r of no listed character set: read as value 1's",
                         fragment[:length])
            out.append(fragment.decode(first, "replace"))
            continue
        try:
            if codec in handled_encodings:  # a codec that reads ISO 2022 escapes itself
                out.append(fragment.decode(codec))
                continue
            body = fragment[length:]
            cut = next((i for i, byte in enumerate(body) if byte in resets), len(body))
            out.append(body[:cut].decode(codec) + body[cut:].decode(first))
        except UnicodeDecodeError:
            logger.debug("bytes %r not in %s: read as value 1's", fragment, codec)
            out.append(fragment.decode(first, "replace"))
    return "".join(out)


def _decoded_or_replaced(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        logger.debug("bytes %r not in %s: read with replacements", data, codec)
        return data.decode(codec, "replace")


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
            # _data_set_offset's reading, written out (once per object on the store
            # thread), on the view: one unpack, no copy of the first 144 bytes.
            if len(view) < 144:
                raise InvalidDicomError(_NOT_OURS)
            magic, vr, length = _META_HEAD.unpack_from(view, 128)
            if magic != b"DICM\x02\x00\x00\x00" or vr != b"UL":
                raise InvalidDicomError(_NOT_OURS)
            start = 144 + length
            scanned = scan_elements(view, start, implicit=implicit, end_tag=_HEADER_END)
            if scanned is not None and scanned[0].keys() >= _REQUIRED_TAGS:
                return HeaderAttributes(scanned[0], implicit=implicit, little=True)
    with _source(buffer, path, transfer_syntax) as source:
        walked = _walked(source, transfer_syntax)
    if walked is not None:
        return walked
    return _read_by_pydicom(path if path is not None else io.BytesIO(buffer or b""))


def read_file_header(path: str, offset: int, transfer_syntax: str) -> HeaderAttributes:
    """The attributes before group 0028 of the data set at byte ``offset`` of the
    Part 10 file at ``path`` (any writer's: ``read_part10`` says where), read as
    :func:`read_header` reads a received one."""
    with open(path, "rb") as fp:
        fp.seek(offset)
        walked = _walked(InflatingSource(_pieces(fp)) if transfer_syntax in DEFLATED_DATA_SETS
                         else FileSource(fp, offset), transfer_syntax)
    return walked if walked is not None else _read_by_pydicom(path)


def _walked(source: Source, transfer_syntax: str) -> HeaderAttributes | None:
    implicit, big_endian = transfer_syntax == _IMPLICIT_LE, transfer_syntax == _BIG_ENDIAN
    raw = top_level_elements(source, implicit=implicit, big_endian=big_endian,
                             end_tag=_HEADER_END)
    return None if raw is None else HeaderAttributes(raw, implicit=implicit,
                                                      little=not big_endian)


def _read_by_pydicom(source: str | io.BytesIO) -> HeaderAttributes:
    """pydicom's reader, where the walk lost its place (its own reading may warn;
    its values are still decoded here: ``from_dataset``)."""
    logger.debug("data set not walked to group 0028: read by pydicom")
    return HeaderAttributes.from_dataset(pydicom.dcmread(source, stop_before_pixels=True))


_NOT_OURS = "not a received object: no Part 10 header of ours"
#: From byte 128 of our Part 10 header: "DICM", (0002,0000)'s tag, VR and 2-byte
#: length, and its value: the length of the rest of group 0002 (PS3.10 7.1).
_META_HEAD = struct.Struct("<8s2s2xL")


def _data_set_offset(head: bytes) -> int:
    """Where the data set starts after our Part 10 header: preamble, DICM, then
    (0002,0000) UL, the length of the rest of the group (PS3.10 7.1)."""
    if len(head) < 144 or head[128:136] != b"DICM\x02\x00\x00\x00" or head[136:138] != b"UL":
        raise InvalidDicomError(_NOT_OURS)
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
