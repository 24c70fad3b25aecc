"""storage.completeness: a data set cut anywhere but between two top-level elements
is found incomplete, in every transfer syntax, however its bytes are split."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from dicomnet.storage.completeness import (
    DatasetWalker,
    dataset_problem,
    file_dataset_problem,
    walker_for,
)
from dicomnet.storage.part10 import read_part10

from .dicomfiles import ALL_SYNTAXES, SYNTAX_NAMES, make_image, write_part10
from .helpers import data_set_bytes

EXPLICIT_LE = SYNTAX_NAMES["explicit-le"]
IMPLICIT_LE = SYNTAX_NAMES["implicit-le"]


def _file(tmp_path: Path, syntax: str, *, rows: int = 32,
          columns: int = 24) -> tuple[Path, int, bytes]:
    path = write_part10(tmp_path / "x.dcm", make_image(3, rows=rows, columns=columns), syntax)
    info = read_part10(path)
    data = path.read_bytes()[info.dataset_offset:]
    return path, info.dataset_offset, data


def _fed_in_pieces(data: bytes, syntax: str, rng: random.Random) -> str | None:
    walker = walker_for(syntax)
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 40)
        walker.feed(memoryview(data)[pos:pos + step])
        pos += step
    return walker.problem()


def _top_level_ends(syntax: str) -> set[int]:
    """Where each top-level element ends, from pydicom's own encoding of the
    data set's first elements (not from the walker under test)."""
    full = make_image(3)
    ends = {0}
    partial = Dataset()
    for element in full:
        partial.add(element)
        ends.add(len(data_set_bytes(partial, syntax)))
    return ends


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=list(SYNTAX_NAMES))
def test_a_whole_data_set_has_no_problem_however_it_is_split(tmp_path: Path,
                                                             syntax: str) -> None:
    path, offset, data = _file(tmp_path, syntax)
    assert dataset_problem(data, syntax) is None
    rng = random.Random(7)
    for _ in range(20):
        assert _fed_in_pieces(data, syntax, rng) is None
    assert file_dataset_problem(str(path), offset, syntax) is None


@pytest.mark.parametrize("syntax", [s for s in ALL_SYNTAXES
                                    if s != DeflatedExplicitVRLittleEndian],
                         ids=[n for n, s in SYNTAX_NAMES.items()
                              if s != DeflatedExplicitVRLittleEndian])
def test_every_cut_but_between_top_level_elements_is_found(syntax: str) -> None:
    data = data_set_bytes(make_image(3), syntax) if syntax != SYNTAX_NAMES["rle"] else None
    if data is None:  # RLE: pixel data encapsulated; use the file's own bytes
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            _, _, data = _file(Path(folder), syntax)
        boundaries = None
    else:
        boundaries = _top_level_ends(syntax)
    rng = random.Random(11)
    missed = []
    for cut in range(len(data)):
        problem = dataset_problem(data[:cut], syntax)
        split = _fed_in_pieces(data[:cut], syntax, rng)
        assert (problem is None) == (split is None), cut
        if boundaries is not None:
            if (problem is None) != (cut in boundaries):
                missed.append(cut)
        elif problem is None:
            missed.append(cut)
    if boundaries is None:
        # Encapsulated: the boundaries are before the Pixel Data element only.
        assert missed and max(missed) < len(data) - 200
    assert boundaries is None or not missed, missed


def test_a_cut_deflated_stream_is_found(tmp_path: Path) -> None:
    _, _, data = _file(tmp_path, DeflatedExplicitVRLittleEndian)
    for cut in range(0, len(data) - 1, 7):
        problem = dataset_problem(data[:cut], DeflatedExplicitVRLittleEndian)
        assert problem is not None, cut
    corrupt = b"\xff" + data[1:]  # block type 3: reserved (RFC 1951 3.2.3)
    problem = dataset_problem(corrupt, DeflatedExplicitVRLittleEndian)
    assert problem is not None
    assert problem.startswith("malformed data set: its deflated stream is corrupt")


def test_a_deflated_stream_is_inflated_to_its_end() -> None:
    """Inflating at most 64 KiB a call, the last input can leave output inside the
    inflater once consumed: here the last 12 bytes of a 4 MiB value, where 4 MiB
    ends a whole number of calls. They were not asked for, and a whole data set,
    fed in one piece (a C-STORE's last PDV, a file's last read), was 'the data set
    ends inside element (0009,1001): 12 byte(s) of its value missing'."""
    value = bytes(4 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = deflate.compress(struct.pack("<HH2sHL", 0x0009, 0x1001, b"OB", 0, len(value))
                            + value) + deflate.flush()
    assert dataset_problem(data, DeflatedExplicitVRLittleEndian) is None
    assert dataset_problem(data[:-1], DeflatedExplicitVRLittleEndian) is not None


def test_the_message_names_the_element_and_what_is_missing(tmp_path: Path) -> None:
    path, offset, data = _file(tmp_path, EXPLICIT_LE, rows=512, columns=512)
    cut = len(data) - 1000
    assert dataset_problem(data[:cut], EXPLICIT_LE) == (
        "the data set ends inside element (7FE0,0010): 1000 byte(s) of its value missing")
    # The file walk passes over the 256 KB value by seeking, and still finds it short.
    with open(path, "r+b") as fp:
        fp.truncate(offset + cut)
    assert file_dataset_problem(str(path), offset, EXPLICIT_LE) == (
        "the data set ends inside element (7FE0,0010): 1000 byte(s) of its value missing")


def _implicit(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def _delimiter(element: int, length: int = 0) -> bytes:
    return struct.pack("<HHL", 0xFFFE, element, length)


def _implicit_undefined(tag: int) -> bytes:
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, 0xFFFFFFFF)


def test_un_of_undefined_length_is_walked_as_implicit_little_endian() -> None:
    # PS3.5 6.2.2: a sequence whose VR is unknown keeps an undefined length and
    # its items are in Implicit VR Little Endian, whatever the syntax around it.
    un = (struct.pack("<HH2sHL", 0x0009, 0x1010, b"UN", 0, 0xFFFFFFFF)
          + _delimiter(0xE000, 0xFFFFFFFF) + _implicit(0x00100010, b"ABCD")
          + _delimiter(0xE00D) + _delimiter(0xE0DD))
    after = struct.pack("<HH2sH", 0x0010, 0x0020, b"LO", 2) + b"ID"
    assert dataset_problem(un + after, EXPLICIT_LE) is None
    assert dataset_problem(un[:-8], EXPLICIT_LE) == (
        "the data set ends inside (0009,1010), whose undefined length was never delimited")


def test_malformed_undefined_lengths_are_named() -> None:
    us = struct.pack("<HH2sH", 0x0028, 0x0010, b"US", 0xFFFF) + b"\xff\xff"
    # A 2-byte length cannot be undefined: FFFF is a length, running past the end.
    assert dataset_problem(us, EXPLICIT_LE) is not None
    pixel = (struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF)
             + _delimiter(0xE000, 0) + _delimiter(0xE000, 0xFFFFFFFF))
    assert dataset_problem(pixel, EXPLICIT_LE) == (
        "malformed data set: a fragment of undefined length in (7FE0,0010)")
    ut = struct.pack("<HH2sHL", 0x0008, 0x0119, b"UC", 0, 0xFFFFFFFF)
    assert dataset_problem(ut, EXPLICIT_LE) == (
        "malformed data set: (0008,0119) UC has an undefined length")
    stray = _delimiter(0xE000, 0xFFFFFFFF)
    assert dataset_problem(stray, IMPLICIT_LE) == (
        "malformed data set: (FFFE,E000) of undefined length outside a sequence")


def test_zero_padding_after_the_last_element_only_in_little_endian() -> None:
    """A few zero bytes after the last element are padding some writers leave
    (pydicom reads past them): tolerated in Little Endian, where a header cut
    there would start with a group whose low byte is 0. Not in Big Endian, where
    (0008,xxxx) starts with a zero byte; and other stray bytes never."""
    data = data_set_bytes(make_image(3), EXPLICIT_LE)
    for tail in (b"\x00", b"\x00\x00\x00\x00\x00\x00\x00"):
        assert dataset_problem(data + tail, EXPLICIT_LE) is None
    assert dataset_problem(data + b"\x08\x00\x16", EXPLICIT_LE) == (
        "the data set ends inside an element header")
    big = data_set_bytes(make_image(3), SYNTAX_NAMES["explicit-be"])
    assert dataset_problem(big + b"\x00", SYNTAX_NAMES["explicit-be"]) == (
        "the data set ends inside an element header")


def test_a_hostile_stream_meets_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server walks what a peer sends on its event loop: nesting, element
    count and inflated size are bounded (a frame per level, ~100 bytes of memory
    per 16 bytes received, without the first)."""
    from dicomnet.storage import completeness

    level = _implicit_undefined(0x00091001) + _delimiter(0xE000, 0xFFFFFFFF)
    deep = level * (completeness.MAX_DEPTH + 1)
    assert dataset_problem(deep, IMPLICIT_LE) == (
        f"malformed data set: sequences and items nested deeper than {completeness.MAX_DEPTH}")
    monkeypatch.setattr(completeness, "MAX_INFLATED", 1 << 20)
    bomb = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    value = bytes(4 << 20)
    inflating = bomb.compress(struct.pack("<HH2sHL", 0x0009, 0x1001, b"OB", 0, len(value))
                              + value) + bomb.flush()
    assert len(inflating) < 10_000
    assert dataset_problem(inflating, SYNTAX_NAMES["deflated"]) == (
        "its deflated data set would inflate past 1 MiB, the most dicomnet inflates to check "
        f"a deflated data set: its element (0009,1001) ends {12 + len(value)} bytes in")
    # Not malformed: unbounded (the SCU's walk of its own files), it is whole.
    assert dataset_problem(inflating, SYNTAX_NAMES["deflated"], limited=False) is None
    monkeypatch.setattr(completeness, "MAX_ELEMENTS", 1000)
    many = _implicit(0x00100010, b"") * 2000
    assert dataset_problem(many, IMPLICIT_LE) == "malformed data set: more than 1000 elements"
    # A long value counts as one element, whatever its size.
    assert dataset_problem(_implicit(0x7FE00010, bytes(1 << 20)), IMPLICIT_LE) is None


def test_skipping_values_unread_is_the_same_as_reading_them() -> None:
    data = data_set_bytes(make_image(3, rows=300, columns=300), EXPLICIT_LE)
    walker = DatasetWalker(implicit=False)
    pos = 0
    while pos < len(data):
        if walker.skippable:
            step = walker.skippable
            walker.skip(step)
        else:
            step = 5
            walker.feed(data[pos:pos + step])
        pos += step
    assert walker.problem() is None


_DECOMPRESSOBJ = zlib.decompressobj


class _CountingInflate:
    """zlib's raw inflater, counting the bytes it gives out."""

    given = 0

    def __init__(self, wbits: int) -> None:
        self._inflate = _DECOMPRESSOBJ(wbits)

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out = self._inflate.decompress(data, max_length)
        _CountingInflate.given += len(out)
        return out

    @property
    def eof(self) -> bool:
        return self._inflate.eof

    @property
    def unconsumed_tail(self) -> bytes:
        return self._inflate.unconsumed_tail


@pytest.mark.parametrize("how", ["bytes", "file", "sink"])
def test_a_failed_walk_inflates_no_further(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           how: str) -> None:
    """A deflate bomb behind a malformed start (an Item Delimitation Item where a
    sequence's first item should be): the walk's answer is known after its first
    bytes, and the rest (64 MiB inflated here, a thousandfold the file) is not
    inflated. Before, it was, to its end (the SCU walks its own files unbounded),
    or to MAX_INFLATED (1 GiB) on the server's event loop."""
    from dicomnet.services.store_sink import StoreSink

    monkeypatch.setattr(zlib, "decompressobj", _CountingInflate)
    monkeypatch.setattr(_CountingInflate, "given", 0)
    start = (struct.pack("<HH2sH", 0x0008, 0x0016, b"UI", 4) + b"1.2\0"
             + struct.pack("<HH2sHL", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF)
             + _delimiter(0xE00D, 0))
    bomb = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = bomb.compress(start) + bomb.compress(bytes(64 << 20)) + bomb.flush()
    assert len(data) < 100_000
    syntax = SYNTAX_NAMES["deflated"]
    if how == "bytes":
        problem = dataset_problem(data, syntax, limited=False)
    elif how == "file":
        path = tmp_path / "bomb"
        path.write_bytes(bytes(10) + data)
        problem = file_dataset_problem(str(path), 10, syntax, limited=False)
    else:  # the SCP's sink, fed PDV by PDV
        sink = StoreSink(transfer_syntax=syntax)
        for pos in range(0, len(data), 16_000):
            sink.write(data[pos:pos + 16_000])
        assert not sink.check_complete("1.2.3")
        problem = sink.error
    assert problem is not None
    assert "(FFFE,E00D) inside the sequence (0008,1115)" in problem
    # One call's output (64 KiB) at most, and the sink's look at the first header.
    assert _CountingInflate.given < 128 << 10
