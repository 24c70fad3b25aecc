"""The contexts the Storage SCU proposes for conversion (store_batch.contexts_for)
and what a peer taking one syntax alone gets (review 26): Explicit VR Big Endian
and Deflated Explicit VR Little Endian, proposed in a context of their own per
SOP class, only where there is room below 128 contexts, and used only when the
peer took neither Little Endian syntax; the words for a file never converted
(compressed, or in a syntax dicomnet does not know) the same alone or in a
batch; and `dicomnet store`'s table naming the syntax a file was converted to."""

from __future__ import annotations

import array
import logging
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from dicomnet.services.storage import StorageSCP, StoreResult, store_paths
from dicomnet.services.store_batch import Plan, batches, contexts_for, main_contexts
from dicomnet.services.store_contexts import storage_sop_classes
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server
from tests.cli.helpers import ServerThread, run_cli

from .dicomfiles import SECONDARY_CAPTURE, assert_same_dataset, make_image, uid, write_part10

ILE, ELE = str(ImplicitVRLittleEndian), str(ExplicitVRLittleEndian)
EBE, DEFLATED = str(ExplicitVRBigEndian), str(DeflatedExplicitVRLittleEndian)
RLE, JPEG = str(RLELossless), str(JPEGBaseline8Bit)
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
#: A private transfer syntax (a vendor's), which dicomnet does not know.
PRIVATE_SYNTAX = "1.2.826.0.1.3680.77"


# -- the contexts proposed -----------------------------------------------------------------


def test_big_endian_and_deflated_are_offered_in_a_context_of_their_own_after_the_others(
        ) -> None:
    """Each file's syntax as is, Little Endian per class of an uncompressed file,
    then (Deflated, Big Endian) per such class, less the syntaxes its own files
    are proposed in already; a class of compressed files alone gets neither."""
    assert contexts_for([(SECONDARY_CAPTURE, ILE), (SECONDARY_CAPTURE, RLE), (CT, EBE),
                         (MR, JPEG)]) == [
        ContextRequest(SECONDARY_CAPTURE, (ILE,)),
        ContextRequest(SECONDARY_CAPTURE, (RLE,)),
        ContextRequest(CT, (EBE,)),
        ContextRequest(MR, (JPEG,)),
        ContextRequest(SECONDARY_CAPTURE, (ELE, ILE)),
        ContextRequest(CT, (ELE, ILE)),
        ContextRequest(SECONDARY_CAPTURE, (DEFLATED, EBE)),
        ContextRequest(CT, (DEFLATED,)),  # its own Big Endian context is there already
    ]
    assert contexts_for([(CT, EBE), (CT, DEFLATED)])[-1] == ContextRequest(CT, (ELE, ILE))
    assert contexts_for([(MR, RLE)]) == [ContextRequest(MR, (RLE,))]


def _plans(classes: list[str], syntaxes: list[str], count: int) -> list[Plan]:
    """``count`` files, as many of each class, one class after the other (as a
    folder per series lists them), each class's in the syntaxes in turn."""
    return [Plan(StoreResult(path=Path(f"/nowhere/{n}.dcm")),
                 classes[n * len(classes) // count], syntaxes[n % len(syntaxes)])
            for n in range(count)]


def test_a_1000_file_study_of_5_classes_still_takes_one_association() -> None:
    """1,000 files of 5 SOP classes, in Explicit VR Little Endian and JPEG: 15
    contexts before (each class's two as is, one Little Endian), 20 now (one
    last resort per class): one association either way."""
    classes = storage_sop_classes()[:5]
    plans = _plans(classes, [ELE, ELE, ELE, ELE, ELE, JPEG], 1000)
    [batch] = batches(plans)
    assert len(batch.plans) == 1000
    assert (len(main_contexts(batch.keys)), len(contexts_for(batch.keys))) == (15, 20)


def _last_resort_classes(keys: dict[tuple[str, str], None]) -> set[str]:
    return {c.abstract_syntax for c in contexts_for(keys)
            if not set(c.transfer_syntaxes).isdisjoint((DEFLATED, EBE))
            and (c.abstract_syntax, c.transfer_syntaxes[0]) not in keys}


def test_every_class_of_a_batch_gets_its_last_resort_context() -> None:
    """70 classes in Explicit VR Little Endian: 3 contexts each with the last
    resort one, so 42 classes (126 contexts), then 28 (84): each batch offers
    every one of its classes Big Endian and Deflated. Before, 64 classes went
    in 128 main contexts, none with a last resort context: a peer taking Big
    Endian alone took the files of those classes nowhere."""
    classes = storage_sop_classes()[:70]
    first, second = batches(_plans(classes, [ELE], 700))
    assert (len(first.plans), len(second.plans)) == (420, 280)
    assert (len(contexts_for(first.keys)), len(contexts_for(second.keys))) == (126, 84)
    for batch in (first, second):
        assert _last_resort_classes(batch.keys) == {c for c, _ in batch.keys}
    two = list(batches(_plans(classes, [ELE, ILE], 1400)))
    assert [len(contexts_for(b.keys)) for b in two] == [128, 128, 24]
    # 128 contexts at most, however the room is shared, each uncompressed class
    # with its last resort context but where its own files are in both syntaxes.
    for syntaxes in ([ELE, JPEG], [ELE, ILE, EBE], [JPEG], [ELE, EBE, DEFLATED], [RLE, ILE]):
        for batch in batches(_plans(classes, syntaxes, 2000)):
            assert len(contexts_for(batch.keys)) <= 128
            uncompressed = {c for c, s in batch.keys if s in (ELE, ILE, EBE, DEFLATED)}
            whole = {c for c in uncompressed
                     if {(c, EBE), (c, DEFLATED)} <= batch.keys.keys()}
            assert _last_resort_classes(batch.keys) == uncompressed - whole, syntaxes


# -- a peer taking one syntax alone (a dicomnet server) -----------------------------------


def _send(tmp_path: Path, paths: list[Path], accepted: list[str] | None
          ) -> list[StoreResult]:
    """store_paths(paths) into a dicomnet server taking ``accepted`` syntaxes
    (None: its default, every uncompressed one)."""
    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(tmp_path / "root", transfer_syntaxes=accepted)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return list(await store_paths("127.0.0.1", server.port, paths))
        finally:
            scp.close()

    return run(scenario(), timeout=60)


def _image(number: int) -> Dataset:
    """An image of 16-bit pixels (OW): words whose bytes the byte order swaps."""
    ds = make_image(number, rows=16, columns=8)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelData = bytes(range(256))
    ds["PixelData"].VR = "OW"
    return ds


def _received(tmp_path: Path, number: int) -> Path:
    return tmp_path / "root" / uid(1, number) / uid(2, number) / f"{uid(9, number)}.dcm"


def _assert_stored_equal(source: Path, received: Path, syntax: str) -> None:
    """``received`` holds ``source``'s elements, in ``syntax``: the 16-bit Pixel
    Data words in its byte order (PS3.5 7.3), compared as numbers."""
    sent, got = dcmread(source), dcmread(received)
    assert got.file_meta.TransferSyntaxUID == syntax
    words = array.array("H", sent.PixelData)
    if syntax == EBE:
        words.byteswap()
    assert (got["PixelData"].VR, got.PixelData) == ("OW", words.tobytes())
    del sent.PixelData, got.PixelData
    assert_same_dataset(sent, got)


@pytest.mark.parametrize("target", [EBE, DEFLATED], ids=["big-endian", "deflated"])
@pytest.mark.parametrize("source", [ILE, ELE], ids=["implicit", "explicit"])
def test_a_file_alone_is_converted_to_the_one_syntax_the_peer_takes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, source: str, target: str) -> None:
    """It was skipped, "in none of the transfer syntaxes proposed": only Little
    Endian was proposed for conversion. It is converted, stored element-equal,
    and the log says once why (Big Endian: retired)."""
    path = write_part10(tmp_path / "in.dcm", _image(260), source)
    with caplog.at_level(logging.INFO, "dicomnet.services"):
        [result] = _send(tmp_path, [path], [target])
    assert (result.ok, result.status, result.converted_to, result.error) == (
        True, 0, target, None), result
    _assert_stored_equal(path, _received(tmp_path, 260), target)
    said = [r.getMessage() for r in caplog.records if "Little Endian syntax" in r.getMessage()]
    name = {EBE: "Explicit VR Big Endian, a retired syntax (PS3.5 A.3) the peer still accepts",
            DEFLATED: "Deflated Explicit VR Little Endian"}[target]
    assert said == ["the peer takes Secondary Capture Image Storage "
                    f"({SECONDARY_CAPTURE}) in neither Little Endian syntax: "
                    f"its files are converted to {name}"]


@pytest.mark.parametrize(("accepted", "converted"), [
    (None, None),  # everything: as it is
    ([DEFLATED, EBE, ELE], ELE),  # Little Endian before the last resort
    ([EBE, DEFLATED], DEFLATED),  # Deflated before the retired Big Endian
], ids=["everything", "little-endian-too", "both-last-resorts"])
def test_the_last_resort_goes_only_where_nothing_better_was_taken(
        tmp_path: Path, accepted: list[str] | None, converted: str | None) -> None:
    path = write_part10(tmp_path / "in.dcm", _image(261), ILE)
    [result] = _send(tmp_path, [path], accepted)
    assert (result.ok, result.converted_to) == (True, converted), result
    _assert_stored_equal(path, _received(tmp_path, 261), converted or ILE)


# -- the words for a file never converted --------------------------------------------------


def _never_converted(syntax: str, why: str) -> str:
    return (f"the peer accepted no context for Secondary Capture Image Storage "
            f"({SECONDARY_CAPTURE}) in {_NAMED.get(syntax, syntax)} ({why})")


COMPRESSED = "compressed; not converted"
#: RLE Lossless as messages name it; a private syntax stays bare.
_NAMED = {RLE: f"RLE Lossless ({RLE})"}
UNKNOWN = ("a transfer syntax dicomnet does not know, so not converted: sent only to a peer "
           "that accepts it as is")


#: No UID at all (a letter: PS3.5 9.1), as a damaged or hand-made file may name.
JUNK_SYNTAX = "1.2.840.10008.1.2.X"


def _private_syntax_file(path: Path, number: int, syntax: str = PRIVATE_SYNTAX) -> Path:
    """An Explicit VR Little Endian file whose meta names ``syntax``."""
    write_part10(path, make_image(number), ELE)
    data = path.read_bytes()
    # Same length as ELE's "1.2.840.10008.1.2.1" (19 bytes, padded to 20).
    assert len(syntax) == 19 and data.count(ELE.encode() + b"\x00") == 1
    path.write_bytes(data.replace(ELE.encode() + b"\x00", syntax.encode() + b"\x00"))
    return path


@pytest.mark.parametrize(("name", "syntax", "why"), [
    ("rle", RLE, COMPRESSED), ("private", PRIVATE_SYNTAX, UNKNOWN),
    # pydicom's UID() warned of it, an error where warnings are (store_paths raised).
    ("junk", JUNK_SYNTAX, UNKNOWN)])
def test_a_file_never_converted_is_told_so_alone_and_in_company(
        tmp_path: Path, name: str, syntax: str, why: str) -> None:
    """Alone, its one context refused: it read "it takes that SOP Class in none of
    the transfer syntaxes proposed" (no word of compression); beside an
    uncompressed file of its class, "(compressed; not converted)", a private
    syntax included. Both now say its syntax was not taken and why it is not
    converted."""
    path = (write_part10(tmp_path / "in" / f"{name}.dcm", make_image(262), RLE)
            if syntax == RLE
            else _private_syntax_file(tmp_path / "in" / f"{name}.dcm", 262, syntax))
    plain = write_part10(tmp_path / "in" / "plain.dcm", make_image(263), ELE)
    [alone] = _send(tmp_path / "alone", [path], [ILE])
    together = _send(tmp_path / "together", [path, plain], [ILE])
    assert (alone.ok, alone.error) == (False, _never_converted(syntax, why))
    assert [(r.ok, r.error) for r in together] == [
        (False, _never_converted(syntax, why)), (True, None)]
    assert together[1].converted_to == ILE


# -- dicomnet store's table ----------------------------------------------------------------


def test_the_table_says_what_a_file_was_converted_to(tmp_path: Path) -> None:
    """It said "0x0000 Success" alone; only --json had converted_to."""
    converted = write_part10(tmp_path / "in" / "a.dcm", make_image(264), ELE)
    as_is = write_part10(tmp_path / "in" / "b.dcm", make_image(265), ILE)
    scp = StorageSCP(tmp_path / "root", transfer_syntaxes=[ILE])
    server = ServerThread({"providers": [VerificationSCP(), scp]}).start()
    try:
        result = run_cli("store", "127.0.0.1", server.port, converted, as_is,
                         env={"TTY_COMPATIBLE": "1", "NO_COLOR": "1", "COLUMNS": "1000"})
    finally:
        server.stop()
        scp.close()
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in result.stdout.splitlines() if line.count("│") == 4}
    assert rows == {str(converted): "0x0000 Success (converted to Implicit "
                    "VR Little Endian)", str(as_is): "0x0000 Success"}
