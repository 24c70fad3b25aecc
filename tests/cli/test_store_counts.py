"""dicomnet store's counts: objects stored with a Warning status (PS3.7 C.4,
PS3.4 B.2.3: Bxxx, 0107H, 0116H) and files skipped as not DICOM are counted
apart, in the text summary and in --json's totals; "stored" and "failed" keep
their meaning (warnings are stored, skipped files failed)."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import pytest
from click.testing import Result
from pydicom.uid import generate_uid

from dicomnet.cli.demo import write_synthetic_ct
from tests.aio.helpers import run
from tests.aio.rawscp import EXPLICIT_LE, IMPLICIT_LE, RawPeer, Request, raw_scp, store_response

from .helpers import error_line, json_out, run_cli

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
#: The peer's answer to each C-STORE, in order.
ANSWERS = [0x0000, 0xB000, 0x0107]


def _store(folder: Path, *args: str) -> Result:
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(store_response(request, ANSWERS[len(peer.requests) - 1]))

    async def main() -> Result:
        async with raw_scp(answer, contexts={CT_IMAGE_STORAGE: [EXPLICIT_LE, IMPLICIT_LE]}
                           ) as (port, _):
            return await asyncio.to_thread(run_cli, "store", "127.0.0.1", port, folder,
                                           "--called-aet", "RAW", *args)

    return run(main(), timeout=60)


def _images(folder: Path, *, junk: bool) -> None:
    study, series = generate_uid(), generate_uid()
    for n in range(1, 4):
        write_synthetic_ct(folder / f"img{n}.dcm", number=n, study_uid=study,
                           series_uid=series, size=16)
    if junk:
        (folder / "notes.txt").write_text("not DICOM")


@pytest.mark.parametrize("junk", [False, True], ids=["dicom", "and-a-text-file"])
def test_json_counts_warnings_and_skipped_files(tmp_path: Path, junk: bool) -> None:
    _images(tmp_path, junk=junk)
    result = _store(tmp_path, "--json")
    # A warning is stored (exit 0); a file not DICOM is not (exit 1).
    assert result.exit_code == (1 if junk else 0), result.output
    doc = json_out(result)
    assert (doc["total"], doc["stored"], doc["failed"]) == (3 + junk, 3, int(junk))
    assert (doc["stored_with_warnings"], doc["skipped"]) == (2, int(junk))
    assert [r["not_dicom"] for r in doc["results"]] == [False] * 3 + [True] * junk


def test_the_text_summary_counts_warnings_and_skipped_files(tmp_path: Path) -> None:
    _images(tmp_path, junk=True)
    result = _store(tmp_path)
    assert result.exit_code == 1, result.output
    summary = result.stdout.splitlines()[-1]
    assert re.fullmatch(r"Stored 3 of 4 objects \([\d.]+ kB\) to RAW@127\.0\.0\.1:\d+ in "
                        r"[\d.]+ s \([\d.]+ [kM]?B/s\), not encrypted; 2 stored with "
                        r"warnings; 1 skipped \(not DICOM\)", summary), summary


def test_exit_3_names_the_files_that_failed_alone(tmp_path: Path) -> None:
    """The association failed before any object was stored (exit 3): the text
    output was the error line alone, and the files that are not DICOM, which
    no retry or other peer will send, were named only by --json. The first
    ten are named, with why; the others counted."""
    _images(tmp_path, junk=False)
    junk = [tmp_path / f"notes{n:02d}.txt" for n in range(12)]
    for path in junk:
        path.write_text("not DICOM")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli("store", "127.0.0.1", port, tmp_path, "--timeout", "5")
    assert result.exit_code == 3, result.output
    assert error_line(result).startswith("error: cannot connect to 127.0.0.1:")
    lines = result.stdout.splitlines()
    assert lines[0] == "12 file(s) not sent for a reason of their own:"
    assert [line.split(": ", 1)[0] for line in lines[1:11]] == [f"  {p}" for p in junk[:10]]
    assert all(": not a DICOM Part 10 file: " in line for line in lines[1:11])
    assert lines[11:] == ["  and 2 more (--json lists them all)"]


def test_exit_3_names_the_files_sent_and_never_answered(tmp_path: Path) -> None:
    """The peer aborts once the first C-STORE came whole (PS3.8 7.3.1), before
    answering it: exit 3, nothing stored, and the text output was the error
    line alone; that img1.dcm went out, and may be held by the peer, was said
    only by --json ("sent": true). Now named, apart from those never sent."""
    _images(tmp_path, junk=False)

    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(bytes.fromhex("07 00 00000004 00 00 02 00"))  # A-ABORT, provider

    async def main() -> Result:
        async with raw_scp(answer, contexts={CT_IMAGE_STORAGE: [EXPLICIT_LE, IMPLICIT_LE]}
                           ) as (port, _):
            return await asyncio.to_thread(run_cli, "store", "127.0.0.1", port, tmp_path,
                                           "--called-aet", "RAW")

    result = run(main(), timeout=60)
    assert result.exit_code == 3, result.output
    assert error_line(result).startswith("error: association aborted by ")
    assert result.stdout.splitlines() == [
        "1 file(s) sent and not answered (the peer may hold them):",
        f"  {tmp_path / 'img1.dcm'}",
    ]
