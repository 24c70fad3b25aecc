"""Review of ``dicomnet serve`` by use (session 28): a busy archive, scaled down.

Four senders nobody here wrote and ours send the same SOP Instances to one
``dicomnet serve --tls --duplicates reject`` at the same moment: two DCMTK
``storescu`` (one with 4 KB PDUs), pynetdicom, and ``dicomnet store --json``.
PS3.4 B.2.2 leaves duplicates to the SCP; under ``reject`` the store must
keep each instance once, tell Success to exactly one sender of it and 0111H
(PS3.7 C.4.4, Duplicate SOP Instance; docs/storage.md) to every other, and
say the same in its ``stored``/``refused`` events; the disk and the index
must then hold one file and one row per instance, nothing else. The full
scenario (hundreds of files of 2 KB to 8 MB, the three policies, a ``kill -9``
mid-load) was run by hand in session 28: its figures are in that report.
"""

from __future__ import annotations

import collections
import json
import os
import re
import selectors
import sqlite3
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from tests.aio.helpers import LOOPBACK, Pki, PkiFactory, peer_env
from tests.cli.helpers import reaped
from tests.interop.conftest import dcmtk_tool
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, pixel_bytes, write_part10

pytestmark = pytest.mark.interop

COUNT = 16
SUCCESS, DUPLICATE = "0x0000", "0x0111"


@pytest.fixture(scope="module")
def pki(pkis: PkiFactory) -> Pki:
    return pkis("ecdsa")


def _serve(pki: Pki, store: Path, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
         "--output", str(store), "--tls", "--cert", str(pki.server_cert),
         "--key", str(pki.server_key), "--ca", str(pki.ca_file), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _port(server: subprocess.Popen[str]) -> int:
    with selectors.DefaultSelector() as sel:
        sel.register(server.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        assert sel.select(30), "dicomnet serve printed no start line"
    return int(json.loads(server.stdout.readline())["port"])  # type: ignore[union-attr]


def _storescu(pki: Pki, port: int, aet: str, files: list[Path], *flags: str
              ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [dcmtk_tool("storescu"), "-v", "-nh", "-aet", aet, *flags, "+tls", str(pki.client_key),
         str(pki.client_cert), "+cf", str(pki.ca_file), LOOPBACK, str(port), *map(str, files)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=peer_env())


def _dcmtk_answers(output: str, uid_of: dict[str, str]) -> list[tuple[str, str]]:
    """(SOP Instance UID, status) per answer storescu -v printed; DCMTK 3.6.7 names
    0111H "Unknown Status: 0x111"."""
    answers, current = [], ""
    for line in output.splitlines():
        if sent := re.search(r"Sending file: (\S+)", line):
            current = uid_of[sent.group(1)]
        elif answer := re.search(r"Received Store Response \((.*)\)", line):
            word = answer.group(1)
            code = re.fullmatch(r"Unknown Status: 0x([0-9a-fA-F]+)", word)
            answers.append((current, SUCCESS if word == "Success" else
                            f"0x{int(code.group(1), 16):04X}" if code else word))
    return answers


def _pynetdicom_send(pynetdicom: ModuleType, pki: Pki, port: int, files: list[Path],
                     out: list[tuple[str, str]]) -> None:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_file))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    ae = pynetdicom.AE(ae_title="PYN")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 15
    ae.add_requested_context(SECONDARY_CAPTURE, ExplicitVRLittleEndian)
    assoc = ae.associate(LOOPBACK, port, ae_title="DICOMNET", tls_args=(context, LOOPBACK))
    assert assoc.is_established
    try:
        for path in files:
            ds = dcmread(path)
            status = assoc.send_c_store(ds).get("Status")
            out.append((str(ds.SOPInstanceUID),
                        "no answer" if status is None else f"0x{int(status):04X}"))
    finally:
        assoc.release()


@pytest.fixture
def objects(tmp_path: Path) -> dict[str, Path]:
    """SOP Instance UID -> its file: small, and a few over the 1 MiB that spills."""
    out = {}
    for n in range(COUNT):
        big = n % 8 == 3  # 1.1 MB: past what is held in memory, spilled to a temporary file
        ds = make_image(2800 + n, rows=1024 if big else 64, columns=1100 if big else 64)
        out[str(ds.SOPInstanceUID)] = write_part10(tmp_path / "in" / f"{n:02d}.dcm", ds,
                                                   ExplicitVRLittleEndian)
    return out


@pytest.fixture
def server(pki: Pki, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    store = tmp_path / "store"
    proc = _serve(pki, store, "--duplicates", "reject")
    with reaped(proc):
        yield proc, _port(proc), store


def test_one_instance_sent_by_four_peers_at_once_is_stored_once_and_told_so_once(
        pki: Pki, pynetdicom: ModuleType, objects: dict[str, Path],
        server: tuple[subprocess.Popen[str], int, Path]) -> None:
    proc, port, store = server
    files = list(objects.values())
    uid_of = {str(path): uid for uid, path in objects.items()}
    heard: dict[str, list[tuple[str, str]]] = {}
    dcm1 = _storescu(pki, port, "DCM1", files)
    dcm2 = _storescu(pki, port, "DCM2", files, "--max-pdu", "4096", "--max-send-pdu", "4096")
    ours = subprocess.Popen(
        [sys.executable, "-m", "dicomnet.cli.main", "store", LOOPBACK, str(port), *map(str, files),
         "--tls", "--cert", str(pki.client_cert), "--key", str(pki.client_key),
         "--ca", str(pki.ca_file), "--aet", "OURS", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    pyn: list[tuple[str, str]] = []
    thread = threading.Thread(target=_pynetdicom_send, args=(pynetdicom, pki, port, files, pyn))
    thread.start()
    for name, peer in (("DCM1", dcm1), ("DCM2", dcm2)):
        out, _ = peer.communicate(timeout=60)
        assert peer.returncode == 0, out
        heard[name] = _dcmtk_answers(out, uid_of)
    out, err = ours.communicate(timeout=60)
    document = json.loads(out)
    heard["OURS"] = [(r["sop_instance_uid"], f"0x{r['status']:04X}") for r in document["results"]]
    thread.join(60)
    heard["PYN"] = pyn
    proc.terminate()
    events_out, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    events = [json.loads(line) for line in events_out.splitlines() if line.strip()]

    # Every sender heard an answer for each of its objects: Success or 0111H.
    for name, answers in heard.items():
        assert sorted(uid for uid, _ in answers) == sorted(objects), (name, answers)
        assert {status for _, status in answers} <= {SUCCESS, DUPLICATE}, (name, answers)
    # Each instance told Success to exactly one sender, 0111H to the three others.
    told = collections.Counter(uid for answers in heard.values()
                               for uid, status in answers if status == SUCCESS)
    assert told == collections.Counter(list(objects)), told
    # The server's events say what each sender heard.
    said = collections.defaultdict(list)
    for event in events:
        if event["event"] in ("stored", "refused"):
            said[event["calling_aet"]].append(
                (event["sop_instance_uid"], event.get("status", SUCCESS)))
    by_aet = {name: sorted(said[name]) for name in ("DCM1", "DCM2", "OURS", "PYN")}
    assert by_aet == {name: sorted(answers) for name, answers in heard.items()}
    # Disk and index: one file and one row per instance, the data as sent, nothing else.
    on_disk = sorted(p for p in store.rglob("*") if p.is_file())
    dcm = [p for p in on_disk if p.suffix == ".dcm"]
    others = {p.name for p in on_disk} - {p.name for p in dcm}
    assert others <= {"index.sqlite", "index.sqlite-wal", "index.sqlite-shm"}, others
    assert sorted(p.stem for p in dcm) == sorted(objects)
    for path in dcm:
        assert pixel_bytes(dcmread(path)) == pixel_bytes(dcmread(objects[path.stem]))
    with sqlite3.connect(f"file:{store / 'index.sqlite'}?mode=ro", uri=True) as db:
        rows = dict(db.execute("SELECT relative_path, size FROM instance").fetchall())
    assert rows == {p.relative_to(store).as_posix(): p.stat().st_size for p in dcm}
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
    assert "Traceback" not in err, err
