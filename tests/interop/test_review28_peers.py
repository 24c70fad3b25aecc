"""Review 28: three more independent implementations judge dicomnet by use.

- dcmjs-dimse 0.3.3 (npm, pure JavaScript DIMSE over Node's TLS), driven by
  dcmjs_peer.js: its SCU sends C-ECHO and C-STOREs to ``dicomnet serve``, and
  ``dicomnet store`` sends into its SCP, over TLS 1.2 and 1.3 with mutual
  authentication and over plain TCP. What arrives is compared element by
  element and Pixel Data byte for byte (in its SCP: the data set bytes as they
  came off the wire).
- GDCM's gdcmscu (Debian libgdcm-tools 3.0.21; no TLS, and GDCM has no Storage
  SCP program): C-ECHO and C-STORE into ``dicomnet serve``.
- dicom3tools (Debian, David Clunie's): dciodvfy must say of each Part 10 file
  ``dicomnet serve`` wrote exactly what it says of the file that was sent (our
  synthetic images lack modules: those errors are the input's), and dcdump
  shows the File Meta Information we mean (PS3.10 7.1).

Their quirks, not ours (each seen on this machine, and told apart with DCMTK):

- dcmjs-dimse proposes Implicit VR LE first and takes whichever accepted
  context has the SOP class, transcoding to it; without its codecs initialized
  it drops such a request, unanswered and unreported (dcmjs_peer.js
  initializes them).
- dcmjs-dimse sends a Deflated Explicit VR LE file's data set inflated on the
  deflated context: dicomnet refuses it, 0xC000, naming the corrupt stream.
- gdcmscu aborts on exit ("ProtocolStream as nullptr is invalid", status 134)
  after a released association, with DCMTK's storescp too; and it sends 8 bytes
  after a deflated data set's stream, which dicomnet drops with a warning.
- dicom3tools cannot read a deflated data set (it reads the stream as tags).

Under CI=true a missing peer fails (scripts/test installs them all).
"""

from __future__ import annotations

import contextlib
import json
import re
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from tests.aio.helpers import Pki, PkiFactory
from tests.interop.conftest import DcmjsDimse, Dicom3tools, dicomnet_serve_plain
from tests.storage.dicomfiles import (
    CT_IMAGE_STORAGE,
    assert_same_dataset,
    make_image,
    write_part10,
)

pytestmark = pytest.mark.interop
PEER_TIMEOUT = 60


def _inputs(folder: Path) -> dict[str, Path]:
    """Small images in three uncompressed syntaxes, an RLE one (CT) and a 2 MB one."""
    return {
        "explicit": write_part10(folder / "ex.dcm", make_image(1), ExplicitVRLittleEndian),
        "implicit": write_part10(folder / "im.dcm", make_image(2), ImplicitVRLittleEndian),
        # A SOP class of its own: dcmjs-dimse sends an object on any context of its
        # class, transcoding it (an uncompressed image went RLE-compressed).
        "rle": write_part10(folder / "rle.dcm",
                            make_image(3, rows=64, columns=64, sop_class_uid=CT_IMAGE_STORAGE),
                            RLELossless),
        "big": write_part10(folder / "big.dcm",
                            make_image(4, rows=1024, columns=1024, frames=2),
                            ExplicitVRLittleEndian),
        "big-endian": write_part10(folder / "be.dcm", make_image(6), ExplicitVRBigEndian),
    }


def _stored(store: Path) -> dict[str, Path]:
    """SOP Instance UID -> file, of what ``dicomnet serve`` wrote under ``store``."""
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
            for p in store.rglob("*.dcm")}


def _dataset_bytes(path: Path) -> bytes:
    return path.read_bytes()[read_part10(path).dataset_offset:]


def _tls(pki: Pki, *, server: bool, version: str | None) -> dict[str, str]:
    side = "server" if server else "client"
    tls = {"cert": str(getattr(pki, f"{side}_cert")), "key": str(getattr(pki, f"{side}_key")),
           "ca": str(pki.ca_file)}
    if version:
        tls["minVersion"] = tls["maxVersion"] = version
    return tls


def _serve_tls_options(pki: Pki) -> tuple[str, ...]:
    return ("--tls", "--cert", str(pki.server_cert), "--key", str(pki.server_key),
            "--ca", str(pki.ca_file))


def run_dcmjs_scu(dcmjs: DcmjsDimse, tmp: Path, **config: Any) -> list[dict[str, Any]]:
    """dcmjs-dimse's SCU with ``config`` (see dcmjs_peer.js): its JSON lines."""
    config_file = tmp / "dcmjs-scu.json"
    config_file.write_text(json.dumps({"host": "127.0.0.1", "calling": "DCMJS",
                                       "called": "DICOMNET", **config}))
    done = subprocess.run([dcmjs.node, dcmjs.script, "scu", config_file], env=dcmjs.env(),
                          capture_output=True, text=True, timeout=PEER_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines and lines[-1] == {"done": True}, (done.stdout, done.stderr)
    return lines[:-1]


@contextlib.contextmanager
def dcmjs_scp(dcmjs: DcmjsDimse, out: Path, tls: dict[str, str] | None
              ) -> Iterator[tuple[int, list[str]]]:
    """dcmjs-dimse's SCP on 127.0.0.1 writing what it receives into ``out``:
    yields (port, its stderr, filled in once it has stopped)."""
    out.mkdir(parents=True, exist_ok=True)
    config_file = out.parent / "dcmjs-scp.json"
    config_file.write_text(json.dumps({"out": str(out), "tls": tls}))
    proc = subprocess.Popen([dcmjs.node, dcmjs.script, "scp", config_file], env=dcmjs.env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
            assert sel.select(30), "dcmjs-dimse's SCP printed no port"
        yield int(json.loads(proc.stdout.readline())["port"]), stderr  # type: ignore[union-attr]
    finally:
        _, err = proc.communicate(timeout=20)  # closes its stdin: it stops
        stderr.append(err)


def dicomnet_store(port: int, paths: list[Path], *options: str) -> dict[str, Any]:
    """``dicomnet store --json`` as users run it: its JSON document."""
    done = subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "store", "127.0.0.1", str(port),
         *map(str, paths), "--json", "--timeout", "20", *options],
        capture_output=True, text=True, timeout=PEER_TIMEOUT, check=False)
    return dict(json.loads(done.stdout))


# -- dcmjs-dimse's SCU into dicomnet serve ---------------------------------------------------

# Plain TCP from dcmjs-dimse: test_dcmjs_deflated_sent_inflated_is_refused.
@pytest.mark.parametrize("transport", ["TLSv1.2", "TLSv1.3"])
def test_dcmjs_scu_echo_and_store_into_dicomnet_serve(
        dcmjs_dimse: DcmjsDimse, pkis: PkiFactory, tmp_path: Path, transport: str) -> None:
    pki = pkis("ecdsa")
    inputs = _inputs(tmp_path / "in")
    files = [inputs[name] for name in ("explicit", "implicit", "rle", "big")]
    tls = transport != "plain"
    options = _serve_tls_options(pki) if tls else ()
    with dicomnet_serve_plain(tmp_path / "store", *options) as (port, events, _):
        answers = run_dcmjs_scu(dcmjs_dimse, tmp_path, port=port, echo=True,
                                files=[str(p) for p in files],
                                tls=_tls(pki, server=False, version=transport) if tls else None)
    assert answers[0] == {"op": "echo", "status": 0}
    assert [(a["file"], a["status"]) for a in answers[1:]] == [(str(p), 0) for p in files]
    accepted = [e for e in events if e["event"] == "association_accepted"]
    assert len(accepted) == 1 and accepted[0]["calling_aet"] == "DCMJS"
    if tls:
        assert accepted[0]["tls"] == transport
        assert accepted[0]["client_cert"] == "O=dicomnet,CN=dicomnet test client"
    else:
        assert accepted[0]["tls"] is None
    ended = [e for e in events if e["event"] == "association_ended"]
    assert [e["how"] for e in ended] == ["released"]
    stored = _stored(tmp_path / "store")
    assert len(stored) == len(files)
    for path in files:
        sent = pydicom.dcmread(path)
        received = stored[str(sent.SOPInstanceUID)]
        assert_same_dataset(sent, received)  # whatever syntax dcmjs transcoded it to
        meta = pydicom.dcmread(received).file_meta
        assert meta.SourceApplicationEntityTitle == "DCMJS"  # the sender's, as storescp
        assert meta.MediaStorageSOPInstanceUID == sent.SOPInstanceUID
    rle = pydicom.dcmread(stored[str(pydicom.dcmread(inputs["rle"]).SOPInstanceUID)])
    assert rle.file_meta.TransferSyntaxUID == RLELossless  # stored compressed, as sent


def test_dcmjs_deflated_sent_inflated_is_refused(dcmjs_dimse: DcmjsDimse,
                                                 tmp_path: Path) -> None:
    """dcmjs-dimse's quirk: a deflated file's data set goes inflated on the
    Deflated Explicit VR LE context (PS3.5 A.5 wants it deflated); dicomnet
    refuses that object alone (0xC000, its reason says why) and stores the next."""
    deflated = write_part10(tmp_path / "in" / "defl.dcm", make_image(7),
                            DeflatedExplicitVRLittleEndian)
    implicit = write_part10(tmp_path / "in" / "im.dcm", make_image(8), ImplicitVRLittleEndian)
    with dicomnet_serve_plain(tmp_path / "store") as (port, events, _):
        answers = run_dcmjs_scu(dcmjs_dimse, tmp_path, port=port,
                                files=[str(deflated), str(implicit)])
    assert [a["status"] for a in answers] == [0xC000, 0]
    assert "deflated stream" in answers[0]["comment"]
    refused = [e for e in events if e["event"] == "refused"]
    assert len(refused) == 1 and "deflated stream is corrupt" in str(refused[0]["reason"])
    assert list(_stored(tmp_path / "store")) == [make_image(8).SOPInstanceUID]


# -- dicomnet store into dcmjs-dimse's SCP ---------------------------------------------------

@pytest.mark.parametrize("transport", ["TLSv1.2", "TLSv1.3", "plain"])
def test_dicomnet_store_into_dcmjs_scp(dcmjs_dimse: DcmjsDimse, pkis: PkiFactory,
                                       tmp_path: Path, transport: str) -> None:
    pki = pkis("ecdsa")
    inputs = _inputs(tmp_path / "in")
    deflated = write_part10(tmp_path / "in" / "defl.dcm", make_image(7),
                            DeflatedExplicitVRLittleEndian)
    files = [*inputs.values(), deflated]
    tls = transport != "plain"
    out = tmp_path / "received"
    options = ("--tls", "--cert", str(pki.client_cert), "--key", str(pki.client_key),
               "--ca", str(pki.ca_file)) if tls else ()
    with dcmjs_scp(dcmjs_dimse, out,
                   _tls(pki, server=True, version=transport) if tls else None) as (port, _):
        report = dicomnet_store(port, files, "--aet", "DICOMNET-SCU", *options)
    assert (report["exit_code"], report["stored"], report["failed"]) == (0, len(files), 0)
    if tls:
        assert report["tls"]["protocol"] == transport
    else:
        assert report["tls"] is None
    received = sorted(out.glob("*.json"))
    assert len(received) == len(files)
    by_uid = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
              for p in files}
    seen = set()
    for info_file in received:
        info = json.loads(info_file.read_text())
        raw = info_file.with_suffix(".bin").read_bytes()
        assert info["calling"] == "DICOMNET-SCU"
        uid = next(u for u in by_uid if u.encode() in _inflated(raw, info["transferSyntax"]))
        sent = by_uid[uid]
        # Sent as it is on disk: the context's syntax is the file's, the bytes its data set's.
        assert info["transferSyntax"] == pydicom.dcmread(sent).file_meta.TransferSyntaxUID
        assert raw == _dataset_bytes(sent), sent.name
        seen.add(uid)
    assert seen == set(by_uid)


def _inflated(raw: bytes, syntax: str) -> bytes:
    import zlib

    return zlib.decompress(raw, -15) if syntax == DeflatedExplicitVRLittleEndian else raw


# -- dicom3tools judges the files dicomnet serve writes --------------------------------------

def _dciodvfy(tool: Path, path: Path) -> list[str]:
    done = subprocess.run([tool, path], capture_output=True, text=True, timeout=PEER_TIMEOUT,
                          check=False)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def _dcdump_meta(tool: Path, path: Path) -> dict[str, str]:
    """Group 0002 as dcdump reads it: "(0x0002,0x0010)" -> value."""
    done = subprocess.run([tool, path], capture_output=True, text=True, timeout=PEER_TIMEOUT,
                          check=False)
    meta = {}
    for line in (done.stdout + done.stderr).splitlines():
        found = re.match(r"(\(0x0002,0x[0-9a-f]{4}\)).*VL=<(0x[0-9a-f]+)>\s+(.*?)\s*$", line)
        if found:
            meta[found[1]] = found[3]
    return meta


def test_dicom3tools_validates_what_dicomnet_serve_wrote(dicom3tools: Dicom3tools,
                                                         tmp_path: Path) -> None:
    inputs = _inputs(tmp_path / "in")
    files = [inputs[name] for name in ("explicit", "implicit", "rle", "big-endian")]
    with dicomnet_serve_plain(tmp_path / "store") as (port, _, _):
        report = dicomnet_store(port, files, "--aet", "SENDER")
    assert report["stored"] == len(files)
    stored = _stored(tmp_path / "store")
    for path in files:
        uid = str(pydicom.dcmread(path).SOPInstanceUID)
        ours = stored[uid]
        said = _dciodvfy(dicom3tools.dciodvfy, ours)
        # The same verdict as on the file sent: the IOD's gaps are the input's, and
        # nothing is said of our File Meta Information.
        assert said == _dciodvfy(dicom3tools.dciodvfy, path), path.name
        assert not [line for line in said if "0x0002" in line or "Meta" in line], said
        meta = _dcdump_meta(dicom3tools.dcdump, ours)
        assert meta["(0x0002,0x0001)"] == "[0x00,0x01]"
        assert meta["(0x0002,0x0002)"] == f"<{pydicom.dcmread(path).SOPClassUID}>"
        assert meta["(0x0002,0x0003)"] == f"<{uid}>"
        assert meta["(0x0002,0x0010)"] == f"<{pydicom.dcmread(path).file_meta.TransferSyntaxUID}>"
        assert meta["(0x0002,0x0012)"] == f"<{IMPLEMENTATION_CLASS_UID}>"
        assert meta["(0x0002,0x0013)"].strip("<> ") == IMPLEMENTATION_VERSION_NAME
        assert meta["(0x0002,0x0016)"].strip("<> ") == "SENDER"
    # The judge can fail: a Media Storage SOP Instance UID that is not the data set's.
    ours = stored[str(pydicom.dcmread(inputs["explicit"]).SOPInstanceUID)]
    uid = pydicom.dcmread(ours).SOPInstanceUID.encode()
    wrong = tmp_path / "wrong.dcm"
    data = ours.read_bytes()
    wrong.write_bytes(data.replace(uid, uid[:-1] + b"9", 1))
    assert any("MediaStorageSOPInstanceUID different from SOPInstanceUID" in line
               for line in _dciodvfy(dicom3tools.dciodvfy, wrong))


# -- GDCM's gdcmscu into dicomnet serve ------------------------------------------------------

def _gdcmscu(tool: Path, *args: str) -> None:
    done = subprocess.run([tool, *args], capture_output=True, text=True,
                          timeout=PEER_TIMEOUT, check=False)
    # GDCM 3.0.21's quirk: it aborts on exit after the association is released,
    # with DCMTK's storescp too; the server's events say what happened.
    assert done.returncode == 0 or "ProtocolStream as nullptr" in done.stderr, done.stderr


def test_gdcmscu_echo_and_store_into_dicomnet_serve(gdcmscu: Path, tmp_path: Path) -> None:
    inputs = _inputs(tmp_path / "in")
    deflated = write_part10(tmp_path / "in" / "defl.dcm", make_image(7),
                            DeflatedExplicitVRLittleEndian)
    files = [inputs["explicit"], inputs["rle"], inputs["big-endian"], deflated]
    with dicomnet_serve_plain(tmp_path / "store") as (port, events, _):
        _gdcmscu(gdcmscu, "--echo", "--aetitle", "GDCMSCU", "--call", "DICOMNET",
                 "127.0.0.1", str(port))
        for path in files:
            _gdcmscu(gdcmscu, "--store", "--aetitle", "GDCMSCU", "--call", "DICOMNET",
                     "-i", str(path), "127.0.0.1", str(port))
    ended = [e for e in events if e["event"] == "association_ended"]
    assert [(e["calling_aet"], e["how"], e["objects"]) for e in ended] == [
        ("GDCMSCU", "released", 0), *[("GDCMSCU", "released", 1)] * len(files)]
    stored = _stored(tmp_path / "store")
    for path in files:
        received = stored[str(pydicom.dcmread(path).SOPInstanceUID)]
        assert_same_dataset(path, received)
        # Passed through in its own syntax, the deflated one still deflated, as sent.
        assert _dataset_bytes(received) == _dataset_bytes(path), path.name
