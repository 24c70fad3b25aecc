"""storage.toplevel: every odd data set of tests/storage/oddities.py walked to
its end from memory, from a file and inflated, with windows small enough that
each element header, value and delimiter search crosses their edges; and the
places where the walk must give up."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomnet.storage import toplevel
from dicomnet.storage.completeness import MAX_DEPTH
from dicomnet.storage.scan import RawElements
from dicomnet.storage.toplevel import (
    BufferSource,
    FileSource,
    InflatingSource,
    top_level_elements,
)

from .oddities import AFTER, ODDITIES, Oddity, explicit

PIXELS = 0x7FE00010


def _walk(data: bytes, how: str, tmp_path: Path, *, end_tag: int = 0xFFFFFFFF,
          keep_most: int = 1 << 20) -> RawElements | None:
    if how == "memory":
        return top_level_elements(BufferSource(data), implicit=False, end_tag=end_tag,
                                  keep_most=keep_most)
    if how == "file":
        path = tmp_path / "data"
        path.write_bytes(b"HEAD" + data)
        with open(path, "rb") as fp:
            return top_level_elements(FileSource(fp, 4), implicit=False, end_tag=end_tag,
                                      keep_most=keep_most)
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = deflater.compress(data) + deflater.flush()
    pieces: Iterator[bytes | memoryview] = (deflated[i:i + 7]
                                            for i in range(0, len(deflated), 7))
    return top_level_elements(InflatingSource(pieces), implicit=False, end_tag=end_tag,
                              keep_most=keep_most)


@pytest.fixture(params=[64 << 10, 16], ids=["window-64k", "window-16"])
def window(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(toplevel, "_WINDOW", request.param)
    return int(request.param)


@pytest.mark.parametrize("how", ["memory", "file", "inflated"])
@pytest.mark.parametrize("oddity", ODDITIES, ids=[o.name for o in ODDITIES])
def test_each_oddity_is_walked_to_its_end(tmp_path: Path, oddity: Oddity, how: str,
                                          window: int) -> None:
    """The private element after the odd one and the last ones are where they
    are: the walk did not lose its place in the odd element."""
    raw = _walk(oddity.data, how, tmp_path)
    assert raw is not None
    assert raw[0x000910F0] == ("LO", AFTER)
    assert raw[0x00100020] == ("LO", f"ODD{oddity.number:03d}".encode())
    assert raw[PIXELS] == ("OB", bytes(range(1, 9)))
    # Up to group 0028 only, as the SCP asks.
    head = _walk(oddity.data, how, tmp_path, end_tag=0x00280000)
    assert head is not None and max(head) < 0x00280000
    assert head == {tag: value for tag, value in raw.items() if tag < 0x00280000}


def test_an_unlisted_vr_takes_the_reading_the_next_tag_follows() -> None:
    """(0009,1015) "XX" with two zero bytes: pydicom's 2-byte length (0) would
    put the next element at its 4-byte length, (0004,0000), below it; DCMTK's
    4-byte one puts (0009,10F0) there. With a 2-byte length of 4, only
    pydicom's reading exists (the 4-byte form has zero reserved bytes)."""
    for name, expected in (("unlisted-vr-with-a-4-byte-length", b"ABCD"),
                           ("unlisted-vr-with-a-2-byte-length", b"ABCD")):
        oddity = next(o for o in ODDITIES if o.name == name)
        raw = top_level_elements(BufferSource(oddity.data), implicit=False)
        assert raw is not None and raw[0x00091015] == ("XX", expected), name


def test_values_over_the_limit_are_passed_over_not_kept(tmp_path: Path) -> None:
    data = (explicit(0x00090010, b"LO", b"BIG ")
            + explicit(0x00091001, b"OB", bytes(300_000))
            + explicit(0x00100020, b"LO", b"PID1"))
    for how in ("memory", "file", "inflated"):
        raw = _walk(data, how, tmp_path, keep_most=1000)
        assert raw is not None and sorted(raw) == [0x00090010, 0x00100020], how
        assert raw[0x00100020] == ("LO", b"PID1")


@pytest.mark.parametrize("how", ["memory", "file", "inflated"])
def test_where_the_walk_gives_up(tmp_path: Path, how: str) -> None:
    """None, for the caller to read otherwise: a tag not above the one before
    (the walk lost its place), a value longer than the data, a header cut, a
    sequence never delimited, nesting deeper than MAX_DEPTH."""
    first = explicit(0x00100020, b"LO", b"PID1")
    out_of_order = first + explicit(0x00100010, b"PN", b"NAME")
    too_long = first + struct.pack("<HH2sH", 0x0010, 0x0030, b"DA", 8) + b"2024"
    cut_header = first + b"\x10\x00\x30"
    never_delimited = (first + struct.pack("<HH2sHL", 0x0010, 0x1002, b"SQ", 0, 0xFFFFFFFF)
                       + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF))
    item = struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
    sequence = struct.pack("<HH2sHL", 0x0010, 0x1002, b"SQ", 0, 0xFFFFFFFF)
    deep = first + (sequence + item) * (MAX_DEPTH + 1)
    for name, data in (("out-of-order", out_of_order), ("too-long", too_long),
                       ("cut-header", cut_header), ("never-delimited", never_delimited),
                       ("deep", deep)):
        assert _walk(data, how, tmp_path) is None, name
    # Zero bytes after the last element are padding, not a cut header.
    assert _walk(first + bytes(3), how, tmp_path) == {0x00100020: ("LO", b"PID1")}
