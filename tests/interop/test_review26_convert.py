"""Review 26, by use: the store client's transfer-syntax choices and conversions
against DCMTK's storescp told to accept one transfer syntax alone (a ``-xf``
configuration: one profile per syntax, Secondary Capture and Verification only),
bit-preserving (``+B``), so that each file it writes holds the data set as it
came (issue 4).

For each source syntax (Implicit VR, Explicit VR Little and Big Endian,
Deflated, RLE Lossless, and JPEG Baseline with hand-made fragments, which need
not decode) and each syntax the peer takes alone: the file goes as it is (its
data set bytes unchanged on the peer's disk), converted (the same elements and
values; private ones UN in Implicit VR, PS3.5 6.2.2; 16-bit words in the
peer's byte order, PS3.5 7.3), or is skipped with the reason.
"""

from __future__ import annotations

import array
import contextlib
import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from dicomnet.services import store_convert
from dicomnet.services.storage import StoreResult, store_paths
from dicomnet.storage.part10 import read_part10
from tests.aio.helpers import LOOPBACK, background_process, free_port, run, wait_until
from tests.interop.conftest import Dcmtk
from tests.storage.dicomfiles import SYNTAX_NAMES, make_image, uid, write_part10

pytestmark = pytest.mark.interop

#: Every source syntax, by short name (the storage tests' and JPEG Baseline).
SOURCES = {**SYNTAX_NAMES, "jpeg": str(JPEGBaseline8Bit)}
UNCOMPRESSED = {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian,
                DeflatedExplicitVRLittleEndian}
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_VERIFICATION = "1.2.840.10008.1.1"


#: Profiles accepting Secondary Capture in several syntaxes, in storescp's order
#: of preference: every one of SOURCES; Little Endian after the last resort ones.
SEVERAL = {"all": tuple(SOURCES.values()),
           "le-last": (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
                       ExplicitVRLittleEndian)}


def _config(path: Path) -> Path:
    """A storescp configuration with one profile per syntax of ``SOURCES``, named
    after it, accepting Secondary Capture in that syntax alone, and one per
    entry of ``SEVERAL``."""
    profiles = {name: (syntax,) for name, syntax in SOURCES.items()} | SEVERAL
    lines = ["[[TransferSyntaxes]]", "[Verification]",
             f"TransferSyntax1 = {ImplicitVRLittleEndian}"]
    lines += [line for name, syntaxes in profiles.items()
              for line in (f"[TS-{name}]", *(f"TransferSyntax{n} = {syntax}"
                                            for n, syntax in enumerate(syntaxes, 1)))]
    lines.append("[[PresentationContexts]]")
    lines += [line for name in profiles
              for line in (f"[PC-{name}]",
                           f"PresentationContext1 = {_VERIFICATION}\\Verification",
                           f"PresentationContext2 = {SECONDARY_CAPTURE}\\TS-{name}")]
    lines.append("[[Profiles]]")
    lines += [line for name in profiles
              for line in (f"[{name}]", f"PresentationContexts = PC-{name}")]
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def storescp_taking(dcmtk: Dcmtk, folder: Path, name: str) -> Iterator[tuple[int, Path]]:
    """storescp accepting Secondary Capture in ``SOURCES[name]`` alone (or
    ``SEVERAL[name]``), bit-preserving: (its port, the folder it writes to)."""
    out = folder / f"received-{name}"
    out.mkdir(parents=True)
    port = free_port()
    with background_process(dcmtk.storescp, "-xf", _config(folder / "storescp.cfg"), name, "+B",
                            "-od", out, str(port), log_path=folder / f"storescp-{name}.log",
                            port=port):
        yield port, out


def _image(number: int) -> Dataset:
    """An image whose encoding depends on the syntax: 16-bit pixels (OW), private
    elements of several VRs, a sequence of undefined length holding another."""
    ds = make_image(number, rows=64, columns=48)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelData = bytes(range(256)) * 24
    ds["PixelData"].VR = "OW"
    ds.add(DataElement(0x00090010, "LO", "DICOMNET TEST"))
    ds.add(DataElement(0x00091001, "LO", "private text"))
    ds.add(DataElement(0x00091002, "US", 0x1234))
    ds.add(DataElement(0x00091003, "OB", b"\x01\x02\x03\x04"))
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "121", "DCM", "x"
    item = Dataset()
    item.ConceptNameCodeSequence = Sequence([code])
    ds.ContentSequence = Sequence([item])
    ds["ContentSequence"].is_undefined_length = True
    return ds


def _jpeg_file(path: Path, number: int) -> Path:
    """A JPEG Baseline file whose one fragment only looks like a JPEG stream (SOI,
    bytes, EOI): nothing here decodes it; it must pass through unchanged."""
    ds = make_image(number, rows=16, columns=16)
    ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.PlanarConfiguration = (
        "YBR_FULL_422", 3, 0)
    ds.PixelData = encapsulate([b"\xff\xd8" + bytes(range(256)) * 3 + b"\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ds.SOPClassUID)
    meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _sources(folder: Path) -> dict[str, tuple[Path, int]]:
    """name -> (file, its number: instance ``uid(9, number)``)."""
    out = {}
    for i, (name, syntax) in enumerate(SOURCES.items()):
        number = 2600 + i
        path = folder / f"{name}.dcm"
        out[name] = (_jpeg_file(path, number) if name == "jpeg"
                     else write_part10(path, _image(number), syntax), number)
    return out


def _dataset_bytes(path: Path) -> bytes:
    return path.read_bytes()[read_part10(path).dataset_offset:]


def _little_endian_value(element: DataElement) -> bytes:
    """``element``'s value as Explicit VR Little Endian encodes it: what an
    Implicit VR reader, not knowing a private element's VR, holds as UN."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_data_element(buffer, element)
    header = 12 if element.VR in ("OB", "OW", "UN", "SQ", "UT") else 8
    return bytes(buffer.getvalue())[header:]


def _differences(sent: Dataset, received: Dataset, *, swapped: bool, implicit: bool,
                 where: str = "") -> list[str]:
    """How ``received`` differs from ``sent`` element by element (group 0002 left
    out): private elements may be UN in Implicit VR, holding their Little Endian
    bytes; OW words are compared as numbers when the byte order changed."""
    problems = []
    sent_tags = {int(e.tag) for e in sent if e.tag.group != 0x0002}
    got_tags = {int(e.tag) for e in received if e.tag.group != 0x0002}
    if sent_tags != got_tags:
        problems.append(f"{where}tags differ: {sorted(sent_tags ^ got_tags)}")
    for element in sent:
        if element.tag.group == 0x0002 or element.tag not in received:
            continue
        other = received[element.tag]
        if element.VR == "SQ":
            if other.VR != "SQ" or len(element.value) != len(other.value):
                problems.append(f"{where}{element.tag} sequence differs")
                continue
            for n, (a, b) in enumerate(zip(element.value, other.value, strict=True)):
                problems += _differences(a, b, swapped=swapped, implicit=implicit,
                                         where=f"{where}{element.tag}[{n}] ")
            continue
        value, got = element.value, other.value
        if implicit and element.tag.is_private and other.VR == "UN" and element.VR != "UN":
            value = _little_endian_value(element)
        elif swapped and element.VR == "OW":
            words = array.array("H", value)
            words.byteswap()
            value = words.tobytes()
        if value != got:
            problems.append(f"{where}{element.tag} {element.VR} {value!r:.60} != "
                            f"{other.VR} {got!r:.60}")
    return problems


def _received(out: Path, number: int) -> Path:
    path = out / f"SC.{uid(9, number)}"
    run(wait_until(path.exists, f"storescp to write {path.name}"))
    return path


def _send(port: int, paths: list[Path]) -> list[StoreResult]:
    return run(store_paths(LOOPBACK, port, paths, called_ae_title="STORESCP"), timeout=60)


def _assert_converted(source: Path, received: Path, target: str) -> None:
    sent, got = dcmread(source), dcmread(received)
    assert got.file_meta.TransferSyntaxUID == target
    swapped = (sent.file_meta.TransferSyntaxUID == ExplicitVRBigEndian) != (
        target == ExplicitVRBigEndian)
    problems = _differences(sent, got, swapped=swapped, implicit=target == ImplicitVRLittleEndian)
    assert not problems, "\n".join(problems)


# -- the conversions' bytes ----------------------------------------------------------------


def _odd_bulk_file(path: Path, syntax: str, number: int) -> Path:
    """A file in ``syntax`` (Explicit VR) with a private OB value of odd length
    (70001 bytes, past pydicom's deferring size) before its Pixel Data: no
    writer makes one (PS3.5 7.1.1: even lengths), some files hold one."""
    ds = make_image(number, rows=16, columns=16)
    pixels = ds.PixelData
    del ds.PixelData
    write_part10(path, ds, syntax)
    fmt = "<" if syntax != ExplicitVRBigEndian else ">"
    odd = struct.pack(fmt + "HH2sHI", 0x0009, 0x0010, b"LO", 0, 0)[:6] + struct.pack(
        fmt + "H", 14) + b"DICOMNET TEST "
    odd += struct.pack(fmt + "HH2sHI", 0x0009, 0x1001, b"OB", 0, 70001) + bytes(70000) + b"\x07"
    odd += struct.pack(fmt + "HH2sHI", 0x7FE0, 0x0010, b"OB", 0, len(pixels)) + pixels
    path.write_bytes(path.read_bytes() + odd)
    return path


@pytest.mark.parametrize("source", [ExplicitVRLittleEndian, ExplicitVRBigEndian],
                         ids=["explicit-le", "explicit-be"])
def test_an_odd_length_value_converted_through_a_file_is_padded_as_in_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dcmtk: Dcmtk, source: str) -> None:
    """A bulk value of odd length copied from the source (store_convert.FileSlice)
    was written with its odd length and a pad byte after it: every element
    after it was read one byte off. It now goes padded to an even length, as
    the conversion in memory pads it (PS3.5 7.1.1), and storescp (Implicit VR
    only) stores the private value and the Pixel Data that follows it."""
    path = _odd_bulk_file(tmp_path / "odd.dcm", source, 2650)
    info = read_part10(path)
    in_memory = store_convert.convert_in_memory(info, ImplicitVRLittleEndian)
    converted, length = store_convert.convert_to_file(info, ImplicitVRLittleEndian)
    with converted:
        assert (length, converted.read()) == (len(in_memory), in_memory)
    monkeypatch.setattr(store_convert, "IN_MEMORY_MOST", 1 << 10)
    with storescp_taking(dcmtk, tmp_path, "implicit-le") as (port, out):
        [result] = _send(port, [path])
        assert (result.ok, result.converted_to) == (True, ImplicitVRLittleEndian), result
        got = dcmread(_received(out, 2650))
    assert got[0x00091001].value == bytes(70000) + b"\x07\x00"
    assert got.PixelData == make_image(2650, rows=16, columns=16).PixelData


# -- the matrix: each source syntax to a peer taking each syntax alone --------------------


#: Why a file goes nowhere when the peer takes none of its contexts (store_prepare).
REFUSED = (f"the peer accepted no context for Secondary Capture Image Storage "
           f"({SECONDARY_CAPTURE}): it takes that SOP Class in none of the transfer "
           "syntaxes proposed")


#: The compressed syntaxes of SOURCES as messages name them.
_NAMED: dict[str, str] = {RLELossless: f"RLE Lossless ({RLELossless})",
                         JPEGBaseline8Bit: f"JPEG Baseline (Process 1) ({JPEGBaseline8Bit})"}


def _not_converted(syntax: str) -> str:
    """Why a compressed file goes nowhere, alone or not (store_prepare.no_context)."""
    return (f"the peer accepted no context for Secondary Capture Image Storage "
            f"({SECONDARY_CAPTURE}) in {_NAMED[syntax]} "
            "(compressed; not converted)")


@pytest.mark.parametrize("peer", list(SOURCES))
def test_each_source_syntax_sent_alone_to_a_peer_taking_one_syntax(
        tmp_path: Path, dcmtk: Dcmtk, peer: str) -> None:
    """One association per file (what a store of that file alone proposes): its
    own syntax goes as it is, byte for byte; an uncompressed one is converted
    to the peer's uncompressed one (Big Endian and Deflated too, proposed as a
    last resort: an Implicit VR file alone went nowhere with a Big Endian only
    peer); a compressed one is said compressed and not converted (it read "in
    none of the transfer syntaxes proposed" alone); an uncompressed one to a
    peer taking a compressed syntax alone is refused, nothing stored."""
    sources = _sources(tmp_path / "in")
    target = SOURCES[peer]
    with storescp_taking(dcmtk, tmp_path, peer) as (port, out):
        results = {name: _send(port, [path])[0] for name, (path, _) in sources.items()}
        received = {name: _received(out, number) for name, (_, number) in sources.items()
                    if results[name].ok}
    for name, (path, _) in sources.items():
        result, syntax = results[name], SOURCES[name]
        assert result.transfer_syntax_uid == syntax, name
        if name == peer:
            assert (result.ok, result.status, result.converted_to) == (True, 0, None), result
            assert _dataset_bytes(received[name]) == _dataset_bytes(path), name
        elif syntax in UNCOMPRESSED and target in UNCOMPRESSED:
            assert (result.ok, result.status, result.converted_to) == (True, 0, target), result
            _assert_converted(path, received[name], target)
        else:
            refused = REFUSED if syntax in UNCOMPRESSED else _not_converted(syntax)
            assert (result.ok, result.status, result.error) == (False, None, refused), result
            assert name not in received
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in received.values())


def test_a_peer_taking_every_syntax_gets_each_file_as_it_is(
        tmp_path: Path, dcmtk: Dcmtk) -> None:
    """The last resort contexts change nothing for a peer that takes the files'
    own syntaxes: each goes as it is, byte for byte, none converted."""
    sources = _sources(tmp_path / "in")
    with storescp_taking(dcmtk, tmp_path, "all") as (port, out):
        results = dict(zip(sources, _send(port, [p for p, _ in sources.values()]), strict=True))
        alone = {name: _send(port, [path])[0] for name, (path, _) in sources.items()
                 if name in ("implicit-le", "explicit-le")}
        for name, (path, number) in sources.items():
            assert (results[name].ok, results[name].converted_to) == (True, None), results[name]
            assert _dataset_bytes(_received(out, number)) == _dataset_bytes(path), name
    assert [(r.ok, r.converted_to) for r in alone.values()] == [(True, None)] * 2


def test_a_peer_taking_little_endian_gets_it_before_the_last_resort(
        tmp_path: Path, dcmtk: Dcmtk) -> None:
    """storescp prefers Deflated, then Big Endian, then Explicit VR Little
    Endian: it accepts the last resort context in Deflated and the Little Endian
    one in Explicit VR; an Implicit VR file goes in Explicit VR Little Endian,
    a Big Endian or Deflated file as it is."""
    sources = _sources(tmp_path / "in")
    with storescp_taking(dcmtk, tmp_path, "le-last") as (port, out):
        results = {name: _send(port, [sources[name][0]])[0]
                   for name in ("implicit-le", "explicit-be", "deflated")}
        received = {name: _received(out, sources[name][1]) for name in results}
    assert {name: (r.ok, r.converted_to) for name, r in results.items()} == {
        "implicit-le": (True, ExplicitVRLittleEndian), "explicit-be": (True, None),
        "deflated": (True, None)}
    _assert_converted(sources["implicit-le"][0], received["implicit-le"], ExplicitVRLittleEndian)
    for name in ("explicit-be", "deflated"):
        assert _dataset_bytes(received[name]) == _dataset_bytes(sources[name][0]), name


@pytest.mark.parametrize("peer", ["explicit-be", "deflated"])
def test_a_batch_is_converted_to_big_endian_or_deflated_when_the_peer_takes_that_alone(
        tmp_path: Path, dcmtk: Dcmtk, peer: str) -> None:
    """With a file in the peer's syntax in the same association, its context is
    accepted and every uncompressed file is converted to it (16-bit words in
    Big Endian); the compressed ones are skipped, said compressed and not
    converted."""
    sources = _sources(tmp_path / "in")
    target = SOURCES[peer]
    with storescp_taking(dcmtk, tmp_path, peer) as (port, out):
        results = dict(zip(sources, _send(port, [p for p, _ in sources.values()]), strict=True))
        received = {name: _received(out, number) for name, (_, number) in sources.items()
                    if results[name].ok}
    for name, (path, _) in sources.items():
        result, syntax = results[name], SOURCES[name]
        if name == peer:
            assert (result.ok, result.converted_to) == (True, None), result
            assert _dataset_bytes(received[name]) == _dataset_bytes(path)
        elif syntax in UNCOMPRESSED:
            assert (result.ok, result.status, result.converted_to) == (True, 0, target), result
            _assert_converted(path, received[name], target)
        else:
            assert (result.ok, result.error) == (False, _not_converted(syntax)), result


def _dicomnet_store(port: int, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dicomnet.cli.main", "store", LOOPBACK,
                           str(port), *map(str, args), "--called-aet", "STORESCP"],
                          capture_output=True, text=True, timeout=60, check=False)


def test_dicomnet_store_says_what_went_as_is_converted_or_skipped(
        tmp_path: Path, dcmtk: Dcmtk) -> None:
    """`dicomnet store --json` into an Implicit VR only storescp: each file's
    transfer_syntax_uid and converted_to (null: as it is), the refusal for the
    compressed ones, exit status 1; the table gives a skipped file's reason, and
    the syntax a file was converted to."""
    sources = _sources(tmp_path / "in")
    with storescp_taking(dcmtk, tmp_path, "implicit-le") as (port, _):
        done = _dicomnet_store(port, tmp_path / "in", "--json")
        table = _dicomnet_store(port, sources["rle"][0])
        big_endian = _dicomnet_store(port, sources["explicit-be"][0])
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    results = {Path(str(r["path"])).stem: r for r in document["results"]}
    assert (document["total"], document["stored"], document["failed"]) == (6, 4, 2)
    for name, syntax in SOURCES.items():
        got = results[name]
        assert got["transfer_syntax_uid"] == syntax
        if syntax in UNCOMPRESSED:
            converted = None if syntax == ImplicitVRLittleEndian else ImplicitVRLittleEndian
            assert (got["ok"], got["status"], got["converted_to"]) == (True, 0, converted)
        else:
            assert (got["ok"], got["status"], got["converted_to"], got["error"]) == (
                False, None, None, _not_converted(syntax)), got
    assert table.returncode == 1, table.stderr
    words = " ".join(table.stdout.split())
    assert "Stored 0 of 1 objects" in words
    # Alone, the RLE file's one context is refused: told as in company (it read "in
    # none of the transfer syntaxes proposed").
    assert _not_converted(SOURCES["rle"]) in " ".join(words.replace("│", " ").split()), words
    # The table names the syntax a file was converted to (only --json did).
    assert big_endian.returncode == 0, big_endian.stderr
    words = " ".join(big_endian.stdout.replace("│", " ").split())
    assert "0x0000 Success (converted to Implicit VR Little Endian)" in words, words
