"""DCMTK's other storage pair, dcmsend and dcmrecv, against dicomnet's commands.

dcmsend proposes one context per SOP Class and syntax it needs, decompressing
or converting itself where the server takes only what it must; it has no TLS
in DCMTK 3.6.7, so it sends plain DICOM into `dicomnet serve`. dcmrecv takes
TLS, and its configuration file decides which syntaxes it accepts: `dicomnet
store` sends into it over TLS with mutual authentication.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from tests.aio.helpers import LOOPBACK, PkiFactory, background_process, free_port, peer_env
from tests.interop.conftest import Dcmtk, _missing, dcmtk_tool
from tests.interop.test_dcmtk_storage import dcmtk_tls
from tests.storage.dicomfiles import (
    SYNTAX_NAMES,
    assert_same_dataset,
    make_image,
    uid,
    write_part10,
)

pytestmark = pytest.mark.interop

#: DCMTK's own storescp.cfg, whose profiles dcmrecv's -xf reads.
DCMTK_CONFIG = Path("/etc/dcmtk/storescp.cfg")


def _sources(folder: Path, first: int) -> dict[str, Path]:
    return {name: write_part10(folder / f"{name}.dcm",
                               make_image(first + i, rows=320, columns=250), ts)
            for i, (name, ts) in enumerate(SYNTAX_NAMES.items())}


def test_dcmsend_into_dicomnet_serve(dcmtk: Dcmtk, tmp_path: Path) -> None:
    """dcmsend proposes one context for every uncompressed file, Explicit VR Little
    Endian first, which dicomnet serve takes (the requestor's first choice): the
    Implicit VR and Big Endian files arrive converted by dcmsend, the deflated
    and RLE ones as they are. dcmsend's report file says Success for each."""
    dcmsend = dcmtk_tool("dcmsend")
    sources = _sources(tmp_path / "in", 120)
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
         "--output", str(store), "--aet", "DICOMNET-SCP"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = json.loads(proc.stdout.readline())["port"]
        report = tmp_path / "report.txt"
        done = subprocess.run(
            [dcmsend, "-aec", "DICOMNET-SCP", "--max-pdu", "4096", "+crf", str(report),
             LOOPBACK, str(port), *map(str, sources.values())],
            capture_output=True, text=True, timeout=60, env=peer_env(), check=False)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert done.returncode == 0, done.stdout + done.stderr + err
    text = report.read_text()
    assert text.count("DIMSE Status  : 0x0000 (Success)") == len(sources), text
    assert "with status SUCCESS  : 5" in text, text
    for i, (name, source) in enumerate(sources.items()):
        [stored] = store.rglob(f"{uid(9, 120 + i)}.dcm")
        expected = SYNTAX_NAMES[name] if name in ("deflated", "rle") else ExplicitVRLittleEndian
        assert dcmread(stored).file_meta.TransferSyntaxUID == expected, name
        assert_same_dataset(source, stored)
    assert "association DCMSEND@127.0.0.1" in err


def test_dicomnet_store_into_dcmrecv_over_tls(dcmtk: Dcmtk, pkis: PkiFactory,
                                              tmp_path: Path) -> None:
    """dcmrecv with DCMTK's AllDICOM profile (every syntax), bit-preserving, with a
    file name extension: each file as it was sent, nothing converted."""
    dcmrecv = dcmtk_tool("dcmrecv")
    if not DCMTK_CONFIG.exists():
        _missing(f"DCMTK's {DCMTK_CONFIG}")
    pki = pkis("rsa")
    sources = _sources(tmp_path / "in", 130)
    out = tmp_path / "dcmrecv-out"
    out.mkdir()
    port = free_port()
    with background_process(dcmrecv, *dcmtk_tls(pki, server=True), "-xf", DCMTK_CONFIG,
                            "AllDICOM", "+B", "-fe", ".dcm", "-od", out, str(port),
                            log_path=tmp_path / "dcmrecv.log", port=port):
        done = subprocess.run(
            [sys.executable, "-m", "dicomnet.cli.main", "store", LOOPBACK, str(port),
             str(tmp_path / "in"), "--tls", "--ca", str(pki.ca_file), "--cert",
             str(pki.client_cert), "--key", str(pki.client_key), "--json"],
            capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert (doc["stored"], doc["failed"]) == (5, 0)
    assert {(r["status"], r["converted_to"]) for r in doc["results"]} == {(0, None)}
    for i, (name, source) in enumerate(sources.items()):
        received = out / f"SC.{uid(9, 130 + i)}.dcm"
        assert dcmread(received).file_meta.TransferSyntaxUID == SYNTAX_NAMES[name]
        assert_same_dataset(source, received)
