"""dicomnet store names each file not stored and why, compressed files the peer
refused included, when the association then fails: at exit 3 the text output
named only the files not DICOM or unreadable, and an RLE Lossless file refused
for its transfer syntax was left out (as if the abort were its reason)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path

from click.testing import Result
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from dicomnet.services.storage import StorageSCP
from dicomnet.ul.pdu import AAbort
from tests.aio.helpers import run
from tests.aio.rawscp import EXPLICIT_LE, IMPLICIT_LE, RawPeer, Request, raw_scp, store_response
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

from .helpers import ServerThread, assert_ended, error_line, interrupted_at, json_out, run_cli

REFUSED = (f"the peer accepted no context for Secondary Capture Image Storage "
           f"({SECONDARY_CAPTURE}) in RLE Lossless ({RLELossless}) "
           "(compressed; not converted)")
ABORTED = "association aborted by the peer (its A-ABORT: service-user)"


def _store(folder: Path, *, stored: int, json: bool) -> Result:
    """``dicomnet store folder`` to a peer that takes uncompressed syntaxes only,
    answers ``stored`` C-STOREs Success, then aborts on the next one."""
    async def answer(peer: RawPeer, request: Request) -> None:
        if len(peer.requests) > stored:
            await peer.send(AAbort(source=0, reason=0).encode())
            peer.writer.close()
            return
        await peer.send(store_response(request, 0))

    async def main() -> Result:
        contexts = {SECONDARY_CAPTURE: [EXPLICIT_LE, IMPLICIT_LE]}
        async with raw_scp(answer, contexts=contexts) as (port, _):
            return await asyncio.to_thread(run_cli, "store", "127.0.0.1", port, folder,
                                           *(["--json"] if json else []))

    return run(main(), timeout=60)


def _mixed(folder: Path, count: int) -> list[Path]:
    """RLE Lossless, uncompressed, RLE, uncompressed...: sent in this order."""
    folder.mkdir()
    return [write_part10(folder / f"{n}.dcm", make_image(n, rows=8, columns=8),
                         RLELossless if n % 2 == 0 else ExplicitVRLittleEndian)
            for n in range(count)]


def test_exit_3_names_the_compressed_files_the_peer_refused(tmp_path: Path) -> None:
    """The peer aborts on the first C-STORE (1.dcm): nothing stored, exit 3.
    0.dcm was refused in its turn, 2.dcm at negotiation, before the abort."""
    files = _mixed(tmp_path / "in", 4)
    text = _store(tmp_path / "in", stored=0, json=False)
    assert text.exit_code == 3, text.output
    assert error_line(text) == f"error: {ABORTED}"
    assert text.stdout.splitlines() == [
        "2 file(s) not sent for a reason of their own:",
        f"  {files[0]}: {REFUSED}",
        f"  {files[2]}: {REFUSED}",
        "1 file(s) sent and not answered (the peer may hold them):",
        f"  {files[1]}"]
    doc = json_out(_store(tmp_path / "in", stored=0, json=True))
    assert (doc["exit_code"], doc["error"], doc["total"], doc["stored"], doc["failed"]) == (
        3, ABORTED, 4, 0, 4)
    assert [(r["path"], r["error"], r["status_text"], r["association_failed"])
            for r in doc["results"]] == [
        (str(files[0]), REFUSED, "not sent", False),
        (str(files[1]), ABORTED, "no answer", True),
        (str(files[2]), REFUSED, "not sent", False),
        (str(files[3]), f"not sent: {ABORTED}", "not sent", True)]


def test_exit_1_table_gives_each_file_its_own_reason(tmp_path: Path) -> None:
    """1.dcm stored, then the abort on 3.dcm: exit 1, and the table tells each
    file's fate, 4.dcm's refusal included: never reached, it was "not sent:
    association aborted", as if the peer could have taken it."""
    files = _mixed(tmp_path / "in", 5)
    text = _store(tmp_path / "in", stored=1, json=False)
    assert text.exit_code == 1, text.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in text.stdout.splitlines() if line.count("│") == 4}
    assert rows == {str(files[0]): REFUSED, str(files[1]): "0x0000 Success",
                    str(files[2]): REFUSED, str(files[3]): ABORTED, str(files[4]): REFUSED}
    assert "Stored 1 of 5 objects" in text.stdout
    doc = json_out(_store(tmp_path / "in", stored=1, json=True))
    assert [(r["error"], r["ok"], r["association_failed"]) for r in doc["results"]] == [
        (REFUSED, False, False), (None, True, False), (REFUSED, False, False),
        (ABORTED, False, True), (REFUSED, False, False)]
    assert (doc["stored"], doc["failed"], doc["total"]) == (1, 4, 5)


def test_ctrl_c_leaves_each_refused_file_its_own_reason(
        start_server: Callable[..., ServerThread], tmp_path: Path) -> None:
    """A Ctrl-C as the first answer comes: the RLE files the SCU had not reached
    read "interrupted before it was sent" (53 of 60 in one run), as if the
    peer could have taken them; they keep their refusal, in --json and in the
    table, and are not counted among the objects not sent for the interrupt.
    32 uncompressed files first: sent under a window of 32 (as both ends
    propose), or one at a time, none after them goes before an answer."""
    syntaxes = [ExplicitVRLittleEndian] * 32 + [RLELossless, ExplicitVRLittleEndian,
                                                 RLELossless]
    (tmp_path / "in").mkdir()
    files = [write_part10(tmp_path / "in" / f"{n:02d}.dcm", make_image(n, rows=8, columns=8),
                          syntax) for n, syntax in enumerate(syntaxes)]
    scp = StorageSCP(tmp_path / "store", transfer_syntaxes=[EXPLICIT_LE, IMPLICIT_LE])
    server = start_server(providers=[scp])
    where = "dicomnet.services.store_result:record"
    done = interrupted_at(signal.SIGINT, where, "store", "127.0.0.1", server.port,
                          tmp_path / "in", "--json")
    assert_ended(done, signal.SIGINT)
    doc = json.loads(done.stdout)
    assert (doc["interrupted"], doc["exit_code"], doc["total"]) == (True, 130, 35)
    assert doc["stored"] >= 1
    got = {r["path"]: (r["error"], r["status_text"], r["sent"]) for r in doc["results"]}
    assert got[str(files[32])] == got[str(files[34])] == (REFUSED, "not sent", False)
    assert got[str(files[33])] == ("interrupted before it was sent", "not sent", False)
    text = interrupted_at(signal.SIGINT, where, "store", "127.0.0.1", server.port,
                          tmp_path / "in")
    assert_ended(text, signal.SIGINT)
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in text.stdout.splitlines() if line.count("│") == 4}
    assert rows[str(files[32])] == rows[str(files[34])] == REFUSED
    assert "\n1 object(s) not sent: interrupted before their turn" in text.stdout
