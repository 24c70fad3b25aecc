"""`dicomnet store` against real peers that refuse some of what it sends or
stop it half-way (review by use, second pass).

- Orthanc 1.10.1 (plain DICOM) taking two transfer syntaxes only
  (``AcceptedTransferSyntaxes``), no unknown SOP Class
  (``UnknownSopClassAccepted: false``) and a Lua ``ReceivedInstanceFilter``
  discarding one patient's objects: what each file is reported, and through
  Orthanc's REST API (loopback) that every object it holds has the sent data
  set, pixels included. Orthanc answers an object its Lua filter discards
  with Success (0000H): a fact of that peer, kept here so that a change of it
  shows (the client can only say what the peer answered).
- DCMTK storescp over TLS, ``+B`` (written as received), stopped from our side
  by SIGTERM while a 100 MB object is half sent: exit 143, one JSON document
  saying the first stored, the one in flight unconfirmed, the last not sent;
  the sources untouched, and storescp keeping no part of the interrupted one.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from tests.aio.helpers import LOOPBACK, Pki, PkiFactory, background_process, free_port, wait_port
from tests.cli.helpers import reaped, terminated
from tests.interop.conftest import Dcmtk
from tests.interop.test_orthanc_storage import Orthanc
from tests.storage.dicomfiles import SYNTAX_NAMES, assert_same_dataset, make_image, write_part10

pytestmark = pytest.mark.interop

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
UNKNOWN_SOP_CLASS = "1.2.826.0.1.3680043.8.498.77.1"

FILTER = """
function ReceivedInstanceFilter(dicom, origin, info)
  if dicom.PatientName ~= nil and string.find(dicom.PatientName, "DISCARD") then
    return false
  end
  return true
end
"""


def dicomnet(*args: str | Path | int, timeout: float = 120
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dicomnet.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_orthanc_refusing_syntaxes_classes_and_instances(orthanc_binary: Path,
                                                         tmp_path: Path) -> None:
    folder = tmp_path / "orthanc"
    folder.mkdir()
    (folder / "filter.lua").write_text(FILTER)
    dicom_port, http_port = free_port(), free_port()
    (folder / "orthanc.json").write_text(json.dumps({
        "Name": "dicomnet review", "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"), "StorageCompression": False,
        "Plugins": [], "HttpServerEnabled": True, "HttpPort": http_port,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "SaveJobs": False,
        "DicomServerEnabled": True, "DicomAet": "ORTHANC", "DicomPort": dicom_port,
        "DicomCheckCalledAet": True, "UnknownSopClassAccepted": False,
        "AcceptedTransferSyntaxes": [IMPLICIT_LE, EXPLICIT_LE],
        "LuaScripts": [str(folder / "filter.lua")], "DicomModalities": {},
    }))
    sent = tmp_path / "sent"
    sources = {name: write_part10(sent / f"{n}-{name}.dcm",
                                  make_image(4200 + n, rows=200, columns=300), syntax)
               for n, (name, syntax) in enumerate(SYNTAX_NAMES.items())}
    discarded = make_image(4210, rows=16, columns=16)
    discarded.PatientName = "DISCARD^Me"
    sources["discarded"] = write_part10(sent / "7-discarded.dcm", discarded,
                                        ExplicitVRLittleEndian)
    sources["unknown"] = write_part10(
        sent / "8-unknown.dcm",
        make_image(4211, rows=16, columns=16, sop_class_uid=UNKNOWN_SOP_CLASS),
        ExplicitVRLittleEndian)
    with background_process(orthanc_binary, folder / "orthanc.json",
                            log_path=folder / "orthanc.log", port=http_port,
                            timeout=30) as process:
        wait_port(dicom_port, process.proc, timeout=30)
        done = dicomnet("store", LOOPBACK, dicom_port, sent, "--called-aet", "ORTHANC",
                        "--json")
        assert done.returncode == 1, done.stdout + done.stderr
        report = json.loads(done.stdout)
        by_name = {Path(r["path"]).name.split("-", 1)[1]: r for r in report["results"]}
        assert {name: (r["status"], r["converted_to"]) for name, r in by_name.items()} == {
            "implicit-le.dcm": (0, None), "explicit-le.dcm": (0, None),
            "explicit-be.dcm": (0, EXPLICIT_LE), "deflated.dcm": (0, EXPLICIT_LE),
            "rle.dcm": (None, None),
            "discarded.dcm": (0, None),  # Orthanc's answer to what its filter drops
            "unknown.dcm": (None, None)}
        assert by_name["rle.dcm"]["error"] == (
            f"the peer accepted no context for Secondary Capture Image Storage "
            f"(1.2.840.10008.5.1.4.1.1.7) in RLE Lossless ({RLELossless}) "
            "(compressed; not converted)")
        assert by_name["unknown.dcm"]["error"] == (
            f"the peer accepted no context for {UNKNOWN_SOP_CLASS}: it does not take that "
            "SOP Class (abstract syntax not supported)")
        assert [r["sent"] for r in (by_name["rle.dcm"], by_name["unknown.dcm"])] == [False] * 2
        assert (report["stored"], report["failed"]) == (5, 2)

        orthanc = Orthanc(process, dicom_port, http_port, folder / "no-certificate")
        for name, source in sources.items():
            sop_uid = str(dcmread(source, stop_before_pixels=True).SOPInstanceUID)
            hits = [h for h in orthanc.call("POST", "/tools/lookup", sop_uid.encode())
                    if h["Type"] == "Instance"]
            if name in ("rle", "discarded", "unknown"):
                assert hits == [], name
                continue
            assert len(hits) == 1, name
            received = dcmread(io.BytesIO(orthanc.file(hits[0]["ID"])))
            syntax = SYNTAX_NAMES[name]
            assert received.file_meta.TransferSyntaxUID == (
                syntax if syntax in (IMPLICIT_LE, EXPLICIT_LE) else EXPLICIT_LE)
            assert_same_dataset(source, received)  # pixel bytes included


@pytest.fixture(scope="module")
def pki(pkis: PkiFactory) -> Pki:
    return pkis("rsa")


def test_sigterm_while_a_large_object_is_sent_over_tls(dcmtk: Dcmtk, pki: Pki,
                                                       tmp_path: Path) -> None:
    sent = tmp_path / "sent"
    # 100 MB each (8-bit pixels): seconds to send over TLS, so the signal lands in one.
    files = [write_part10(sent / f"{n}.dcm", make_image(4300 + n, rows=10000, columns=10000),
                          ExplicitVRLittleEndian) for n in range(3)]
    before = [hashlib.sha256(f.read_bytes()).digest() for f in files]
    store = tmp_path / "storescp"
    store.mkdir()
    port = free_port()
    with background_process(dcmtk.storescp, "-aet", "STORESCP", "+tls", pki.server_key,
                            pki.server_cert, "+cf", pki.ca_file, "+B", "-od", store,
                            str(port), log_path=tmp_path / "storescp.log", port=port):
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicomnet.cli.main", "store", LOOPBACK, str(port),
             str(sent), "--called-aet", "STORESCP", "--tls", "--cert", str(pki.client_cert),
             "--key", str(pki.client_key), "--ca", str(pki.ca_file), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with reaped(proc):
            # storescp +B writes as it receives: the second file appears, not yet whole.
            deadline = time.monotonic() + 120
            while len(list(store.iterdir())) < 2 and proc.poll() is None:
                assert time.monotonic() < deadline, "the second object never started"
                time.sleep(0.01)
            out, err = terminated(proc, 60)
        assert proc.returncode == 143, err
        assert err.splitlines()[-1] == "error: terminated (SIGTERM)"
        report = json.loads(out)
        assert (report["interrupted"], report["exit_code"], report["error"]) == (
            True, 143, "terminated (SIGTERM)")
        assert [(r["status"], r["ok"], r["sent"], r["status_text"], r["error"])
                for r in report["results"]] == [
            (0, True, True, "0x0000 Success", None),
            # Cut inside its data set: the peer cannot hold it (PS3.8 9.3.5).
            (None, False, False, "not sent",
             "not sent (interrupted part-way: the peer cannot hold a partial object)"),
            (None, False, False, "not sent", "interrupted before it was sent")]
        assert (report["stored"], report["failed"]) == (1, 2)
        # storescp drops the interrupted object's file once the association is gone.
        deadline = time.monotonic() + 30
        while len(list(store.iterdir())) > 1:
            assert time.monotonic() < deadline, sorted(p.name for p in store.iterdir())
            time.sleep(0.05)
    [kept] = store.iterdir()
    assert_same_dataset(files[0], kept)
    assert [hashlib.sha256(f.read_bytes()).digest() for f in files] == before
    assert sorted(p.name for p in sent.iterdir()) == ["0.dcm", "1.dcm", "2.dcm"]
