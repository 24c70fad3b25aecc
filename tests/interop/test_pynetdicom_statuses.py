"""`dicomnet store`, as users run it, against a pynetdicom storage SCP over TLS that
answers each object with a status of its own (PS3.4 B.2.3, PS3.7 Annex C): what
the table and ``--json`` say per object, and the exit code.

pynetdicom, DCMTK (dimse.h's DICOM_WARNING_STATUS) and dicomnet's own ``Status``
take 0107H and 0116H as Warnings, and PS3.7 C.4 0001H too: an object so answered
was stored; `dicomnet store` had counted it failed, with exit code 1.
"""

from __future__ import annotations

import io
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from tests.aio.helpers import LOOPBACK, Pki, PkiFactory
from tests.storage.dicomfiles import (
    SECONDARY_CAPTURE,
    assert_same_dataset,
    make_image,
    uid,
    write_part10,
)

pytestmark = pytest.mark.interop

#: The status pynetdicom answers for image number n, with an Error Comment
#: (0000,0902) for some: (status, comment).
ANSWERS: dict[int, tuple[int, str | None]] = {
    700: (0x0000, None),
    701: (0xB000, "PatientName coerced"),
    702: (0xB007, None),
    703: (0x0107, None),
    704: (0x0116, "Rows out of range"),
    705: (0x0001, None),
    706: (0xA700, "disk full"),
    707: (0xC000, None),
}
#: Answers no C-STORE may give: Pending (FF00H), which only C-FIND, C-GET and
#: C-MOVE have (PS3.4 B.2.3, PS3.7 9.1.2.1.6).
INVALID_ANSWERS: dict[int, tuple[int, str | None]] = {
    708: (0xFF00, None),
}


@dataclass
class StatusSCP:
    port: int = 0
    received: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def status_scp(pynetdicom: ModuleType, pkis: PkiFactory) -> Iterator[tuple[StatusSCP, Pki]]:
    """A pynetdicom storage SCP on TLS (client certificate required) answering
    image n with ANSWERS[n], keeping each data set as it came."""
    pki = pkis("rsa")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_file))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    ae = pynetdicom.AE(ae_title="PYNETDICOM-SCP")
    ae.add_supported_context(SECONDARY_CAPTURE, [ExplicitVRLittleEndian])
    scp = StatusSCP()

    def on_store(event: Any) -> Dataset:
        encoded = bytes(event.encoded_dataset())
        number = int(dcmread(io.BytesIO(encoded)).InstanceNumber)
        with scp.lock:
            scp.received[event.request.AffectedSOPInstanceUID] = encoded
        status, comment = {**ANSWERS, **INVALID_ANSWERS}[number]
        rsp = Dataset()
        rsp.Status = status
        if comment is not None:
            rsp.ErrorComment = comment
        return rsp

    server = ae.start_server((LOOPBACK, 0), block=False, ssl_context=context,
                             evt_handlers=[(pynetdicom.evt.EVT_C_STORE, on_store)])
    scp.port = server.server_address[1]
    try:
        yield scp, pki
    finally:
        server.shutdown()
        ae.shutdown()


def _store(scp: StatusSCP, pki: Pki, folder: Path, *options: str
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "store", LOOPBACK, str(scp.port),
         str(folder), "--called-aet", "PYNETDICOM-SCP", "--tls", "--ca", str(pki.ca_file),
         "--cert", str(pki.client_cert), "--key", str(pki.client_key), *options],
        capture_output=True, text=True, timeout=90, check=False,
        env={**os.environ, "COLUMNS": "200"})


def test_each_status_is_reported_per_object(tmp_path: Path,
                                            status_scp: tuple[StatusSCP, Pki]) -> None:
    scp, pki = status_scp
    sources = {n: write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n, rows=200,
                                                                        columns=300),
                               ExplicitVRLittleEndian) for n in ANSWERS}
    done = _store(scp, pki, tmp_path / "in", "--json")
    assert done.returncode == 1, done.stdout + done.stderr  # two failures
    doc = json.loads(done.stdout)
    assert (doc["total"], doc["stored"], doc["failed"], doc["exit_code"]) == (8, 6, 2, 1)
    results = {int(Path(r["path"]).stem): r for r in doc["results"]}
    got = {n: (r["status"], r["ok"]) for n, r in results.items()}
    assert got == {700: (0, True), 701: (0xB000, True), 702: (0xB007, True),
                   703: (0x0107, True), 704: (0x0116, True), 705: (0x0001, True),
                   706: (0xA700, False), 707: (0xC000, False)}
    assert (results[706]["error"], results[706]["retryable"]) == ("disk full", True)
    assert results[707]["error"] == "0xC000 (failure: Error: cannot understand)"
    # Every object reached the SCP whole, whatever it answered.
    assert sorted(scp.received) == sorted(uid(9, n) for n in ANSWERS)
    for n, source in sources.items():
        assert_same_dataset(source, dcmread(io.BytesIO(scp.received[uid(9, n)])))


def test_the_table_shows_each_status_code_with_the_peers_comment(
        tmp_path: Path, status_scp: tuple[StatusSCP, Pki]) -> None:
    """A failure's row showed only the peer's Error Comment ("disk full"), not which
    status it came with; a warning's comment was not shown at all."""
    scp, pki = status_scp
    for n in (701, 704, 706, 707):
        write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
    done = _store(scp, pki, tmp_path / "in")
    assert done.returncode == 1, done.stdout + done.stderr
    cells = [[cell.strip() for cell in line.split("\N{BOX DRAWINGS LIGHT VERTICAL}")[1:-1]]
             for line in done.stdout.splitlines() if ".dcm" in line]
    rows = {file: status for file, status, _ in cells}
    assert rows == {
        f"{tmp_path}/in/701.dcm": "0xB000 Warning: coercion of data elements "
                                  "(PatientName coerced)",
        f"{tmp_path}/in/704.dcm": "0x0116 Attribute value out of range (Rows out of range)",
        f"{tmp_path}/in/706.dcm": "0xA700 Refused: out of resources (disk full)",
        f"{tmp_path}/in/707.dcm": "0xC000 Error: cannot understand",
    }
    done = _store(scp, pki, tmp_path / "in", "--json")
    comments = {int(Path(r["path"]).stem): (r["error_comment"], r["status_text"])
                for r in json.loads(done.stdout)["results"]}
    assert comments == {
        701: ("PatientName coerced",
              "0xB000 Warning: coercion of data elements (PatientName coerced)"),
        704: ("Rows out of range", "0x0116 Attribute value out of range (Rows out of range)"),
        706: ("disk full", "0xA700 Refused: out of resources (disk full)"),
        707: (None, "0xC000 Error: cannot understand"),
    }


def test_a_pending_answer_to_a_c_store_is_its_final_answer(
        tmp_path: Path, status_scp: tuple[StatusSCP, Pki]) -> None:
    """A C-STORE has one response (PS3.7 9.1.1): one with a Pending status is that
    response all the same, a failure, and the next object goes on the same
    association. It had been taken for a first answer with more to come: the
    object waited for the DIMSE timeout, reported as "no response", and the
    association was aborted, the objects after it not sent."""
    scp, pki = status_scp
    for n in (708, 709):  # 709 answered as 700 is
        write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
    INVALID_ANSWERS[709] = ANSWERS[700]
    try:
        done = _store(scp, pki, tmp_path / "in", "--json", "--timeout", "10")
    finally:
        del INVALID_ANSWERS[709]
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert (doc["stored"], doc["failed"], doc["error"]) == (1, 1, None)
    assert [(Path(r["path"]).stem, r["status"], r["ok"], r["sent"], r["retryable"],
             r["status_text"]) for r in doc["results"]] == [
        ("708", 0xFF00, False, True, False, "0xFF00 Pending: a code C-STORE does not define"),
        ("709", 0x0000, True, True, False, "0x0000 Success"),
    ]
    assert sorted(scp.received) == [uid(9, 708), uid(9, 709)]
