"""storage.completeness never refuses a data set that pydicom or DCMTK reads whole
for breaking PS3.5's encoding rules the way real writers do (tests/storage/
oddities.py: a UN sequence in Explicit VR, mislabelled and unlisted VRs, Implicit
VR elements and items in Explicit VR, padding, stray delimiters, group lengths,
odd lengths), however its bytes are split, and still finds every cut of one.
tests/interop/test_dcmtk_oddities.py sends them through DCMTK and dicomnet."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from pydicom import dcmread

from dicomnet.services.storage import INDEX_NAME, StorageSCP
from dicomnet.storage import completeness
from dicomnet.storage.completeness import (
    DatasetWalker,
    dataset_problem,
    file_dataset_problem,
    walker_for,
)
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.part10 import BIG_ENDIAN, read_part10
from tests.aio.helpers import run

from .dicomfiles import uid
from .helpers import store_data_sets
from .oddities import (
    AFTER,
    EXPLICIT_LE,
    ODDITIES,
    Oddity,
    explicit,
    implicit,
    write_oddity,
)

IDS = [o.name for o in ODDITIES]


def _walked(pieces: list[bytes] | list[memoryview]) -> str | None:
    walker = walker_for(EXPLICIT_LE)
    for piece in pieces:
        walker.feed(piece)
    return walker.problem()


def _in_pieces(data: bytes, rng: random.Random) -> list[memoryview]:
    pieces, pos = [], 0
    while pos < len(data):
        step = rng.randint(1, 40)
        pieces.append(memoryview(data)[pos:pos + step])
        pos += step
    return pieces


@pytest.mark.parametrize("oddity", [o for o in ODDITIES if o.pydicom],
                         ids=[o.name for o in ODDITIES if o.pydicom])
def test_pydicom_reads_every_value_in_place(tmp_path: Path, oddity: Oddity) -> None:
    """The oddities are real: pydicom finds the elements after the odd one where
    they are (the private element right after it, the last ones)."""
    ds = dcmread(write_oddity(tmp_path / "odd.dcm", oddity))
    assert ds[0x000910F0].value == AFTER.decode().rstrip()
    assert ds.PatientID == f"ODD{oddity.number:03d}"
    assert ds.PixelData == bytes(range(1, 9))


@pytest.mark.parametrize("oddity", ODDITIES, ids=IDS)
def test_a_whole_oddity_has_no_problem_however_it_is_split(tmp_path: Path,
                                                           oddity: Oddity) -> None:
    data = oddity.data
    assert dataset_problem(data, EXPLICIT_LE) is None
    assert _walked([data[i:i + 1] for i in range(len(data))]) is None
    for split in range(1, len(data)):
        assert _walked([data[:split], data[split:]]) is None, split
    rng = random.Random(5)
    for _ in range(10):
        assert _walked(_in_pieces(data, rng)) is None
    path = write_oddity(tmp_path / "odd.dcm", oddity)
    assert file_dataset_problem(str(path), read_part10(path).dataset_offset, EXPLICIT_LE) is None


def _other_reading_ends(oddity: Oddity) -> set[int]:
    """Where an element of a VR PS3.5 does not list ends in pydicom's reading (a
    2-byte length) when DCMTK's (a 4-byte one) is the writer's: both are followed."""
    start = oddity.data.find(struct.pack("<HH2sH", 0x0009, 0x1015, b"XX", 0))
    return set() if start < 0 else {start + 8}


@pytest.mark.parametrize("oddity", ODDITIES, ids=IDS)
def test_every_cut_but_between_top_level_elements_is_found(oddity: Oddity) -> None:
    data = oddity.data
    ends = oddity.boundaries | _other_reading_ends(oddity)
    rng = random.Random(13)
    wrong = []
    for cut in range(len(data)):
        problem = dataset_problem(data[:cut], EXPLICIT_LE)
        assert (_walked(_in_pieces(data[:cut], rng)) is None) == (problem is None), cut
        if (problem is None) != (cut in ends):
            wrong.append(cut)
    assert not wrong


def test_the_reading_nearest_to_an_end_names_the_problem() -> None:
    """Where both readings of an unlisted VR fail, the message is the one of
    the reading with the fewest bytes missing (DCMTK's here)."""
    oddity = next(o for o in ODDITIES if o.name == "unlisted-vr-with-a-4-byte-length")
    assert dataset_problem(oddity.data[:-3], EXPLICIT_LE) == (
        "the data set ends inside element (7FE0,0010): 3 byte(s) of its value missing")


def test_a_value_passed_over_in_a_file_counts_in_every_reading(tmp_path: Path) -> None:
    """The file walk seeks over values only as far as every reading is inside
    one: an unlisted VR before a long Pixel Data, cut or not."""
    oddity = next(o for o in ODDITIES if o.name == "unlisted-vr-with-a-4-byte-length")
    pixels = explicit(0x7FE00010, b"OB", bytes(300_000))
    data = b"".join(oddity.elements[:-1]) + pixels
    path = tmp_path / "big.dcm"
    path.write_bytes(data)
    assert file_dataset_problem(str(path), 0, EXPLICIT_LE) is None
    with open(path, "r+b") as fp:
        fp.truncate(len(data) - 100)
    assert file_dataset_problem(str(path), 0, EXPLICIT_LE) == (
        "the data set ends inside element (7FE0,0010): 100 byte(s) of its value missing")


def test_an_item_in_explicit_vr_decides_by_its_first_element() -> None:
    """PS3.5 6.2.2: a UN of undefined length is a sequence in Implicit VR Little
    Endian; walked so when its items are, whatever the syntax around it."""
    un = (struct.pack("<HH2sHL", 0x0009, 0x1010, b"UN", 0, 0xFFFFFFFF)
          + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) + implicit(0x00100010, b"ABCD")
          + struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0))
    assert dataset_problem(un, EXPLICIT_LE) is None
    for cut in range(1, len(un)):
        assert dataset_problem(un[:cut], EXPLICIT_LE) is not None, cut


def test_a_value_of_undefined_length_that_is_no_sequence_ends_at_the_delimiter() -> None:
    text = struct.pack("<HH2sHL", 0x0009, 0x101A, b"UT", 0, 0xFFFFFFFF) + b"SOME TEXT "
    end = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    assert dataset_problem(text + end, EXPLICIT_LE) is None
    for cut in range(len(text), len(text) + len(end)):
        assert dataset_problem((text + end)[:cut], EXPLICIT_LE) == (
            "malformed data set: (0009,101A) UT has an undefined length"), cut
    # Big Endian: the delimiter's bytes in its order.
    big = (struct.pack(">HH2sHL", 0x0009, 0x101A, b"UT", 0, 0xFFFFFFFF) + b"SOME TEXT "
           + struct.pack(">HHL", 0xFFFE, 0xE0DD, 0))
    assert dataset_problem(big, "1.2.840.10008.1.2.2") is None
    assert dataset_problem(big[:-1], "1.2.840.10008.1.2.2") is not None


def _unlisted(count: int) -> bytes:
    # (0009,10xx) "XX", 2-byte length 0: each has a 4-byte reading too.
    return b"".join(struct.pack("<HH2sH", 0x0009, 0x1100 + n, b"XX", 0) for n in range(count))


def test_readings_are_bounded_and_past_the_bound_an_end_is_accepted() -> None:
    """Each unlisted VR may double the readings: at most MAX_READINGS are walked.
    Past them the walk cannot tell, and takes any end outside an element header
    (see the module's docstring)."""
    data = _unlisted(12) + explicit(0x00100020, b"LO", b"PID1")
    walker = DatasetWalker(implicit=False)
    walker.feed(data)
    assert walker.problem() is None
    readings = list(walker._readings())  # the bound under test
    assert len(readings) == completeness.MAX_READINGS
    # Cut inside the last value: no reading ends the data set, yet it is accepted.
    assert dataset_problem(data[:-1], EXPLICIT_LE) is None
    # Fewer unlisted VRs: every reading is followed, and the cut is found.
    few = _unlisted(2) + explicit(0x00100020, b"LO", b"PID1")
    assert dataset_problem(few[:-1], EXPLICIT_LE) == (
        "the data set ends inside element (0010,0020): 1 byte(s) of its value missing")


def _readings_past_the_bound() -> bytes:
    """Big Endian: unlisted VRs "UU" of 2-byte length 0, whose 4-byte readings
    read undefined lengths, nesting: more than MAX_READINGS readings in all,
    some of them short-lived (found by the fuzzer, tests/fuzz_harness)."""
    return bytes.fromhex(
        "0801020055550000ffffffff41410000000000000001020055550000ffffffff"
        "4141000000000000001e2088435310005c493b5331303101080102ffffffffff"
        "ffff000055550000ffffffff306e")


def _fed(data: bytes, cuts: list[int]) -> str | None:
    walker = DatasetWalker(implicit=False, big_endian=True)
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        walker.feed(data[start:end])
    return walker.problem()


def test_past_the_bound_the_verdict_does_not_depend_on_the_cuts() -> None:
    """The bound counts readings made, not those alive: which readings were
    still alive when another forked depended on where the bytes were cut, and
    this data set was refused whole yet taken as whole fed a byte at a time."""
    data = _readings_past_the_bound()
    verdict = dataset_problem(data, BIG_ENDIAN)
    assert verdict is None  # more readings than followed: cannot tell, accepted
    assert _fed(data, list(range(1, len(data)))) == verdict
    for cut in range(1, len(data)):
        assert _fed(data, [cut]) == verdict, cut


def test_past_the_bound_a_failure_from_the_caller_still_refuses() -> None:
    """Accepted past the bound, but not when what feeds the walk fails it (a
    corrupt deflate stream): ``failed`` and ``problem`` agree either way, since a
    caller that stops feeding once ``failed`` takes ``problem`` as the verdict."""
    walker = DatasetWalker(implicit=False, big_endian=True)
    walker.feed(_readings_past_the_bound())
    assert (walker.problem(), walker.failed) == (None, False)
    walker.fail("its deflated stream is corrupt")
    assert walker.failed
    # Refused; the reason is the nearest reading's (one had met its own error).
    problem = walker.problem()
    assert problem is not None and problem.startswith("malformed data set: ")


def _read_both_ways(count: int) -> bytes:
    """``count`` unlisted VRs after which both readings walk on in step: pydicom's
    (a 2-byte length 0, then (0010,0000) UL and (0010,0001) LO) and DCMTK's (a
    4-byte length of 16, over the same bytes)."""
    block = (struct.pack("<HH", 0x0010, 0x0000)  # DCMTK's length: 16
             + b"UL" + struct.pack("<H", 4) + bytes(4)
             + struct.pack("<HH2sH", 0x0010, 0x0001, b"LO", 0))
    return b"".join(struct.pack("<HH2sH", 0x0009, 0x1100 + n, b"XX", 0) + block
                    for n in range(count))


def test_readings_share_the_element_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three unlisted VRs read both ways: 8 readings walk the 400 elements after
    them, and all count towards MAX_ELEMENTS (one reading alone stays below)."""
    names = explicit(0x00100010, b"PN", b"") * 400
    assert dataset_problem(_read_both_ways(3) + names, EXPLICIT_LE) is None
    monkeypatch.setattr(completeness, "MAX_ELEMENTS", 1000)
    assert dataset_problem(names, EXPLICIT_LE) is None
    assert dataset_problem(_read_both_ways(3) + names, EXPLICIT_LE) == (
        "malformed data set: more than 1000 elements")


@pytest.mark.parametrize("size", ["in-memory", "spilled"])
def test_the_scp_stores_each_oddity_as_it_came(tmp_path: Path, size: str) -> None:
    """Sent as they are in one association, each answered 0000, stored byte for
    byte and indexed by the attributes the SCP reads raw (storage.toplevel walks
    them as DCMTK and pydicom do), those only DCMTK reads too: an unlisted VR
    with a 4-byte length, an item ended by a Sequence Delimitation Item. Those
    two were refused (C000, 'cannot place the object': the walk gave up and
    pydicom lost its place). ``spilled``: a Pixel Data of 2 MiB makes each
    spill to a temporary file, whose header is read from the file."""
    oddities = {o.sop_instance_uid: _spilled(o) if size == "spilled" else o.data
                for o in ODDITIES}
    root = tmp_path / "root"

    answers = run(store_data_sets(StorageSCP(root), EXPLICIT_LE, oddities.items()),
                  timeout=60)
    assert [(a.status, a.error_comment) for a in answers] == [(0, None)] * len(ODDITIES)
    with StorageIndex(root / INDEX_NAME) as index:
        for oddity in ODDITIES:
            (stored,) = root.rglob(f"{oddity.sop_instance_uid}.dcm")
            assert stored.read_bytes()[read_part10(stored).dataset_offset:] == (
                oddities[oddity.sop_instance_uid]), oddity.name
            # Placed by its study and series, and indexed with its patient.
            assert stored.relative_to(root).parts[:2] == (uid(1, oddity.number),
                                                          uid(2, oddity.number)), oddity.name
            row = index.get_instance(oddity.sop_instance_uid)
            assert row is not None, oddity.name
            assert (row.patient_id, row.instance_number) == (
                f"ODD{oddity.number:03d}", str(oddity.number)), oddity.name


def _spilled(oddity: Oddity) -> bytes:
    """The oddity with 2 MiB of Pixel Data (its last element) instead of 8 bytes."""
    *before, pixels = oddity.elements
    if pixels.startswith(struct.pack("<HH", 0x7FE0, 0x0010)):
        return b"".join(before) + explicit(0x7FE00010, b"OB", bytes(2 << 20))
    # An element after the Pixel Data (padding, a stray delimiter): keep it last.
    *before, pixels = before
    return b"".join(before) + explicit(0x7FE00010, b"OB", bytes(2 << 20)) + oddity.elements[-1]


#: (0008,0016) with an unlisted VR "UH" and a 2-byte length of 0 (read both ways),
#: then zero bytes: (0000,0000) without a VR, where each reading gives up.
_UNLISTED_THEN_ZEROS = struct.pack("<HH2sH", 0x0008, 0x0016, b"UH", 0) + bytes(90)


def test_a_verdict_does_not_depend_on_where_the_pieces_were_cut() -> None:
    """Found by atheris (tests/fuzz_harness, target dataset, in a deflated data set).
    Whole, both readings meet VR-less group 0000 bytes while two are followed, and
    give up: malformed. Cut after the ambiguous header (as PDVs cut it), the fork
    met them first and was dropped, then the reading left alone took the zeros for
    empty elements to the end: the malformed data set was taken as whole."""
    whole = dataset_problem(_UNLISTED_THEN_ZEROS, EXPLICIT_LE)
    assert whole == "malformed data set: (0000,0000) without a VR"
    for cut in range(1, len(_UNLISTED_THEN_ZEROS)):
        walker = walker_for(EXPLICIT_LE)
        walker.feed(_UNLISTED_THEN_ZEROS[:cut])
        walker.feed(_UNLISTED_THEN_ZEROS[cut:])
        assert walker.problem() == whole, cut
