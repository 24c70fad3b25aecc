"""Fuzz targets of what reads received and stored objects (``storage/``): the
data set walker that decides whether a received data set is whole
(``completeness``), the element scanners (``scan``, ``toplevel``), the header
an SCP places and indexes an object by (``header``), Part 10 files
(``part10``) and the names a path is made of (``names``).

The promises judged: the walker's verdict does not depend on how the bytes
were cut, nor on whether they were read from memory or from a file (a data set
cut short is never presented as whole); scanners return elements or None;
``read_part10`` raises ``StorageError`` (or ``OSError``) only; a label is one
safe path component; a File Meta Information group built from a peer's
values reads back to those values.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zlib
from pathlib import Path

from dicomnet.errors import DicomNetError, StorageError
from dicomnet.services.store_sink import StoreSink, contents
from dicomnet.storage.completeness import dataset_problem, file_dataset_problem, walker_for
from dicomnet.storage.header import _data_set_offset, read_header
from dicomnet.storage.names import _check_part, is_uid, safe_label, safe_uid
from dicomnet.storage.part10 import part10_header, read_part10
from dicomnet.storage.scan import scan_elements
from dicomnet.storage.toplevel import BufferSource, top_level_elements

from .reader import Reader, chunked

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
SYNTAXES = (IMPLICIT_LE, EXPLICIT_LE, DEFLATED, BIG_ENDIAN, JPEG_BASELINE)
_TMP = Path(tempfile.gettempdir())


def _file(data: bytes) -> str:
    fd, name = tempfile.mkstemp(prefix="dicomnet-fuzz-", dir=_TMP)
    with os.fdopen(fd, "wb") as fp:
        fp.write(data)
    return name


def dataset(data: bytes) -> None:
    """One data set in one transfer syntax: the walker's verdict (whole or not)
    is the same fed whole, fed cut anywhere, and read from a file; the scanners
    and the SCP's header reader return, or raise what their caller catches."""
    reader = Reader(data)
    syntax = SYNTAXES[reader.byte() % len(SYNTAXES)]
    mode = reader.byte()
    payload = reader.rest()
    whole = dataset_problem(payload, syntax)
    walker = walker_for(syntax)
    for piece in chunked(payload, mode, Reader(payload[::-1])):
        walker.feed(piece)
    cut = walker.problem()
    assert (whole is None) == (cut is None), (whole, cut)
    name = _file(b"\0" * 7 + payload)
    try:
        on_disk = file_dataset_problem(name, 7, syntax)
    finally:
        os.unlink(name)
    assert (whole is None) == (on_disk is None), (whole, on_disk)
    if syntax in (IMPLICIT_LE, EXPLICIT_LE):
        scanned = scan_elements(payload, 0, implicit=syntax == IMPLICIT_LE)
        if scanned is not None:
            _, end, stopped = scanned
            # It stops only before a tag of FFFFFFFF (end_tag): else it read to the end.
            assert end == len(payload) or (stopped and payload[end:end + 4] == b"\xff" * 4)
    top_level_elements(BufferSource(payload), implicit=syntax == IMPLICIT_LE,
                       big_endian=syntax == BIG_ENDIAN, end_tag=0x00280000)
    head = part10_header(sop_class_uid="1.2.3", sop_instance_uid="1.2.3.4",
                         transfer_syntax_uid=syntax, implementation_class_uid="1.2.3.5",
                         implementation_version_name="FUZZ", source_ae_title="FUZZ")
    try:
        header = read_header(head + payload, None, syntax)
    except Exception:  # the SCP refuses the object (C000) whatever its reader raises
        return
    for keyword in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID",
                    "PatientID", "PatientName", "StudyDate", "Modality"):
        # Refused (C000) as well, whatever it raises: store_disk._place.
        with contextlib.suppress(Exception):
            header.text(keyword)


def part10_file(data: bytes) -> None:
    """``read_part10`` of any file: a ``Part10Info``, or ``StorageError`` (the SCU
    reports the file as not DICOM and sends the others); never another exception."""
    name = _file(data)
    try:
        read_part10(Path(name))
    except (StorageError, OSError):
        pass
    finally:
        os.unlink(name)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def names(data: bytes) -> None:
    """``safe_label``: one safe path component, within its length, for any text;
    two texts that differ (beyond the spaces and NULs around them) never share one.
    ``safe_uid``: a valid UID, or ``UnsafeNameError``."""
    reader = Reader(data)
    max_length = 16 + reader.byte()
    first, _, second = reader.rest().partition(b"\xff")
    a, b = _text(first), _text(second)
    label = safe_label(a, max_length=max_length)
    _check_part(label)
    assert 0 < len(label) <= max_length and label.isascii()
    assert safe_label(a, max_length=max_length) == label
    if a.strip(" \x00") != b.strip(" \x00"):
        assert safe_label(b, max_length=max_length) != label, (a, b)
    try:
        uid = safe_uid(a)
    except DicomNetError:
        return
    assert is_uid(uid)
    _check_part(uid)


def part10_meta(data: bytes) -> None:
    """``part10_header`` from a peer's values (the C-STORE-RQ's SOP Class and
    Instance UIDs, the calling AE title), split from the input at 0xFF bytes:
    our error, or a header that ``read_part10`` reads back to the same UIDs."""
    fields = [_text(f) for f in data.split(b"\xff")] + ["1.2.3"] * 3
    try:
        head = part10_header(sop_class_uid=fields[0], sop_instance_uid=fields[1],
                             transfer_syntax_uid=EXPLICIT_LE,
                             implementation_class_uid="1.2.3.5",
                             implementation_version_name=fields[3] if len(fields) > 6 else None,
                             source_ae_title=fields[2])
    except DicomNetError:
        return
    # One element after the meta group: (0010,0020) LO "ID" (not the SOP UIDs,
    # which read_part10 takes from the data set when it has them).
    name = _file(head + b"\x10\x00\x20\x00LO\x02\x00ID")
    try:
        info = read_part10(Path(name))
    finally:
        os.unlink(name)
    assert info.sop_class_uid == safe_uid(fields[0])
    assert info.sop_instance_uid == safe_uid(fields[1])
    assert info.transfer_syntax_uid == EXPLICIT_LE


# ------------------------------------------------------------------ seeds

def _explicit(tag: int, vr: bytes, value: bytes) -> bytes:
    group, element = tag >> 16, tag & 0xFFFF
    head = group.to_bytes(2, "little") + element.to_bytes(2, "little") + vr
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return head + b"\0\0" + len(value).to_bytes(4, "little") + value
    return head + len(value).to_bytes(2, "little") + value


def _implicit(tag: int, value: bytes) -> bytes:
    return ((tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little")
            + len(value).to_bytes(4, "little") + value)


def _sample_explicit() -> bytes:
    item = bytes.fromhex("feff00e0") + b"\xff\xff\xff\xff" + _explicit(0x00080100, b"SH", b"CODE")
    item += bytes.fromhex("feff0de000000000")
    sequence = (bytes.fromhex("08001511") + b"SQ\0\0\xff\xff\xff\xff" + item
                + bytes.fromhex("feffdde000000000"))
    return (_explicit(0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.2\0")
            + _explicit(0x00080018, b"UI", b"1.2.3.4\0") + sequence
            + _explicit(0x00100010, b"PN", b"Doe^John")
            + _explicit(0x0020000D, b"UI", b"1.2.3\0") + _explicit(0x0020000E, b"UI", b"1.2.4\0")
            + bytes.fromhex("e07f1000") + b"OB\0\0\xff\xff\xff\xff"
            + bytes.fromhex("feff00e000000000") + bytes.fromhex("feff00e004000000")
            + b"\xff\xd8\xff\xd9"
            + bytes.fromhex("feffdde000000000"))


def _sample_implicit() -> bytes:
    return (_implicit(0x00080016, b"1.2.840.10008.5.1.4.1.1.2\0")
            + _implicit(0x00080018, b"1.2.3.4\0") + _implicit(0x00100010, b"Doe^John")
            + _implicit(0x0020000D, b"1.2.3\0") + _implicit(0x0020000E, b"1.2.4\0")
            + _implicit(0x7FE00010, b"\0" * 16))


def _sample_charset() -> bytes:
    """Code extensions (PS3.5 6.1.2.5): ISO 2022 escapes inside a PN."""
    name = b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"
    return (_explicit(0x00080005, b"CS", b"\\ISO 2022 IR 87 ")
            + _explicit(0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.2\0")
            + _explicit(0x00080018, b"UI", b"1.2.3.4\0")
            + _explicit(0x00100010, b"PN", name + b" " * (len(name) % 2))
            + _explicit(0x0020000D, b"UI", b"1.2.3\0") + _explicit(0x0020000E, b"UI", b"1.2.4\0"))


def seeds_dataset() -> list[bytes]:
    explicit, implicit = _sample_explicit(), _sample_implicit()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = deflate.compress(explicit) + deflate.flush()
    out: list[bytes] = []
    for mode in (0, 1, 2):
        out += [bytes([0, mode]) + implicit, bytes([1, mode]) + explicit,
                bytes([2, mode]) + deflated, bytes([4, mode]) + explicit,
                bytes([1, mode]) + explicit[:-5], bytes([1, mode]) + _sample_charset()]
    return out


def seeds_part10_file() -> list[bytes]:
    head = part10_header(sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sop_instance_uid="1.2.3.4",
                         transfer_syntax_uid=EXPLICIT_LE, implementation_class_uid="1.2.3.5",
                         implementation_version_name="FUZZ", source_ae_title="FUZZ")
    deflated_head = part10_header(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sop_instance_uid="1.2.3.4",
        transfer_syntax_uid=DEFLATED, implementation_class_uid="1.2.3.5",
        implementation_version_name=None, source_ae_title=None)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return [head + _sample_explicit(), head + _sample_implicit(), head[:200],
            deflated_head + deflate.compress(_sample_explicit()) + deflate.flush(),
            head + head[132:] + _sample_explicit()]


def seeds_names() -> list[bytes]:
    return [b"\x30STATION 1", b"\x00../etc/passwd\xffetc", b"\x10.hidden", b"\x40a" * 100,
            b"\x001.2.840.10008.5.1.4.1.1.2\x00\xff1.2.3", "\x20Gr\u00fc\u00df".encode(),
            b"\x00abc-0123456789ab\xffabc"]


def seeds_part10_meta() -> list[bytes]:
    return [b"1.2.840.10008.5.1.4.1.1.2\xff1.2.3.4\xffSTORESCU",
            b"1.2\xff1.2 \xffA B\xffV1\xff\xff\xff",
            b"1.2\x00\xff1.02\xff\xff"]


# ------------------------------------------------------------------ the C-STORE sink

def _sink(header: bytes, syntax: str, chunks: list[bytes]) -> tuple[bool, bytes, str | None]:
    sink = StoreSink(header, None, transfer_syntax=syntax, durable=False)
    for chunk in chunks:
        sink.write(chunk)
    whole = sink.check_complete("1.2.3.4")
    stored = b"" if sink.buffer is None else bytes(contents(sink.buffer))
    assert whole == (sink.error is None), (whole, sink.error)
    return whole, stored, sink.transfer_syntax


def store_sink(data: bytes) -> None:
    """``StoreSink``, what an SCP receives a C-STORE data set into, fed any bytes
    cut anywhere: the same verdict and the same stored bytes whole or cut; a data
    set it accepts is, as stored, a whole data set in the syntax its header
    names (a partial one is never presented as complete), without group 0002."""
    reader = Reader(data)
    syntax = SYNTAXES[reader.byte() % len(SYNTAXES)]
    mode = reader.byte()
    payload = reader.rest()
    header = part10_header(sop_class_uid="1.2.3", sop_instance_uid="1.2.3.4",
                           transfer_syntax_uid=syntax, implementation_class_uid="1.2.3.5",
                           implementation_version_name="FUZZ", source_ae_title="FUZZ")
    whole, stored, final = _sink(header, syntax, [payload] if payload else [])
    cut = _sink(header, syntax, chunked(payload, mode, Reader(payload[::-1])))
    assert cut == (whole, stored, final), (whole, cut[0])
    if not whole:
        return
    assert final is not None
    start = _data_set_offset(stored[:144])
    assert final.encode() in stored[:start]
    body = stored[start:]
    assert dataset_problem(body, final) is None
    if final == DEFLATED:
        inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        plain = inflate.decompress(body)
        assert inflate.eof and inflate.unused_data in (b"", b"\x00"), inflate.unused_data
        assert len(body) % 2 == 0
    else:
        plain = body
    # No File Meta Information element left at its start (group 0002 in its byte order).
    assert plain[:2] != (b"\x00\x02" if final == BIG_ENDIAN else b"\x02\x00")
