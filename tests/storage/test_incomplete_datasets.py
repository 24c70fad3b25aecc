"""A data set cut short is never stored as if whole, nor sent as if whole.

The SCP follows each incoming data set's elements (storage.completeness) and
answers C000 (Cannot Understand, PS3.4 B.2.3) to one that ends inside a value,
an element header or an undefined-length sequence, in memory or spilled to a
temporary file; nothing is left on disk or in the index. The SCU checks each
file before sending it: a truncated file fails alone, unsent, and the
association goes on with the others.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME, StorageSCP, StoreResult, store_paths
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import ReleaseRP, ReleaseRQ, encode_pdata
from tests.aio.helpers import read_until_eof, run, running_server, wait_until

from .dicomfiles import ALL_SYNTAXES, SECONDARY_CAPTURE, SYNTAX_NAMES, make_image, write_part10
from .helpers import store_data_sets
from .rawscu import RawAssociation, store_command

INDEX_FILES = {INDEX_NAME, INDEX_NAME + "-wal", INDEX_NAME + "-shm"}


def _leftovers(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")} - INDEX_FILES


def _indexed(root: Path) -> int:
    with StorageIndex(root / INDEX_NAME) as index:
        return index.count()["instances"]


def _data_set(folder: Path, number: int, syntax: str, rows: int) -> tuple[str, bytes]:
    ds = make_image(number, rows=rows, columns=rows)
    path = write_part10(folder / f"{number}.dcm", ds, syntax)
    return str(ds.SOPInstanceUID), path.read_bytes()[read_part10(path).dataset_offset:]


@pytest.mark.parametrize("syntax", ALL_SYNTAXES, ids=list(SYNTAX_NAMES))
@pytest.mark.parametrize("rows", [40, 1100], ids=["in-memory", "spilled"])
def test_a_cut_data_set_is_refused_and_leaves_nothing(
    tmp_path: Path, root: Path, syntax: str, rows: int, caplog: pytest.LogCaptureFixture
) -> None:
    whole_uid, whole = _data_set(tmp_path, 1, syntax, rows)
    cut_uid, cut = _data_set(tmp_path, 2, syntax, rows)
    cut = cut[:len(cut) - 301]  # inside Pixel Data (or the deflated stream)

    with caplog.at_level(logging.WARNING, logger="dicomnet"):
        refused, stored = run(store_data_sets(
            StorageSCP(root), syntax, ((cut_uid, cut), (whole_uid, whole))), timeout=60)
    assert refused.status == 0xC000
    assert refused.error_comment is not None
    assert refused.error_comment.startswith("incomplete data set: the data set ends inside")
    assert stored.status == 0x0000
    # Only the whole object is on disk and in the index; no temporary file remains.
    assert {Path(p).name for p in _leftovers(root) if p.endswith(".dcm")} == {f"{whole_uid}.dcm"}
    assert not any(p.endswith(".dicomnet-part") for p in _leftovers(root))
    assert _indexed(root) == 1
    assert any(cut_uid in r.getMessage() and "ends inside" in r.getMessage()
               for r in caplog.records)


def test_the_scu_does_not_send_a_truncated_file(tmp_path: Path, root: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    good = write_part10(files / "good.dcm", make_image(1, rows=64, columns=64),
                        ExplicitVRLittleEndian)
    bad = write_part10(files / "bad.dcm", make_image(2, rows=64, columns=64),
                       ExplicitVRLittleEndian)
    # One longer than a PDU: walked in the file rather than in its first PDU.
    big = write_part10(files / "big.dcm", make_image(4, rows=1200, columns=1200),
                       ExplicitVRLittleEndian)
    for cut in (bad, big):
        with open(cut, "r+b") as fp:
            fp.truncate(cut.stat().st_size - 100)

    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return list(await store_paths("127.0.0.1", server.port, [good, bad, big]))
        finally:
            scp.close()

    results = {r.path.name: r for r in run(scenario(), timeout=60)}
    assert results["good.dcm"].ok and results["good.dcm"].status == 0
    assert not results["bad.dcm"].ok
    assert results["bad.dcm"].status is None  # never sent
    for name in ("bad.dcm", "big.dcm"):
        assert (results[name].ok, results[name].status) == (False, None)
        assert results[name].error == (
            "not sent: the data set ends inside element (7FE0,0010): 100 byte(s) of its "
            "value missing")
    assert _indexed(root) == 1


def test_the_scu_does_not_send_a_data_set_of_odd_length(tmp_path: Path, root: Path) -> None:
    """pydicom writes a 5-byte UN value as it is: DCMTK's storescp and Orthanc abort
    the association on the odd last fragment, and the files after it were lost
    with it (found by an interop review). It fails alone, unsent."""
    from pydicom.dataelem import DataElement

    ds = make_image(2, rows=16, columns=16)
    ds.add(DataElement(0x00090010, "LO", "DICOMNET TEST"))
    ds.add(DataElement(0x00091001, "UN", b"12345"))
    odd = write_part10(tmp_path / "odd.dcm", ds, ExplicitVRLittleEndian)
    good = write_part10(tmp_path / "good.dcm", make_image(3, rows=16, columns=16),
                        ExplicitVRLittleEndian)
    length = read_part10(odd).dataset_length
    assert length % 2 == 1

    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return list(await store_paths("127.0.0.1", server.port, [odd, good]))
        finally:
            scp.close()

    bad, fine = run(scenario(), timeout=60)
    assert (bad.ok, bad.status) == (False, None)
    assert bad.error == (f"not sent: the data set has an odd length ({length} bytes), which "
                         "no DICOM encoding gives (PS3.5 7.1.1)")
    assert (fine.ok, fine.status) == (True, 0)


@pytest.mark.parametrize("rows", [40, 1100], ids=["in-memory", "spilled"])
@pytest.mark.parametrize("half_close", [False, True], ids=["then-close", "fin-first"])
def test_a_release_before_the_last_fragment_is_answered_and_stores_nothing(
    tmp_path: Path, root: Path, rows: int, half_close: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """An A-RELEASE-RQ while a C-STORE's data set is half received (data PDVs, none
    marked last): PS3.8 7.2.2 has the acceptor always accept a release, so it is
    answered (A-RELEASE-RP), as DCMTK's storescp answers it (tests/interop/
    test_dcmtk_release.py); the request can neither be completed nor answered
    after it, so nothing of it is stored: no file, no temporary file, no index
    row. The log says so, in a warning and in the association's line (it said
    'released' only). ``fin-first``: the peer also shut its side at once."""
    uid, data = _data_set(tmp_path, 3, ExplicitVRLittleEndian, rows)
    command = store_command(SECONDARY_CAPTURE.encode(), uid.encode())

    async def scenario() -> bytes:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                raw = await RawAssociation.open(
                    server.port, [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))])
                ctx = raw.context_id(SECONDARY_CAPTURE)
                size = raw.fragment_size
                half = data[:len(data) // 2 & ~1]
                await raw.send(encode_pdata(ctx, True, True, command), *(
                    encode_pdata(ctx, False, False, half[start:start + size])
                    for start in range(0, len(half), size)))
                raw.writer.write(ReleaseRQ().encode())
                if half_close:
                    raw.writer.write_eof()
                    answer = await read_until_eof(raw.reader, 20)  # then the server closes
                else:  # the server awaits our close (Sta13), as PS3.8 9.1.4 has it
                    answer = await asyncio.wait_for(raw.reader.readexactly(10), 20)
                await raw.close()
                await wait_until(lambda: not server._tasks, "the association's end")
                return answer
        finally:
            scp.close()

    with caplog.at_level(logging.INFO, logger="dicomnet"):
        answer = run(scenario(), timeout=60)
    assert answer == ReleaseRP().encode()
    assert _leftovers(root) == set()
    assert _indexed(root) == 0
    messages = [r.getMessage() for r in caplog.records]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("RAWSCU@127.0.0.1:") and m.endswith(
        f"asked to release before the data set of a C-STORE-RQ for {uid} had arrived whole: "
        "not performed, nothing stored") for m in warnings), messages
    assert any(m.startswith("association RAWSCU@") and re.search(
        rf": released \(the data set of a C-STORE-RQ for {re.escape(uid)} left unfinished\), "
        r"0 message\(s\), \d+\.\d\d s$", m) for m in messages), messages
