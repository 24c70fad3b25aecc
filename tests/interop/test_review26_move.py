"""Review of ``dicomnet serve`` by use (session 26): the destination of a real
C-MOVE, the mover being Orthanc (over DICOM TLS both ways) or DCMTK's dcmqrscp
(plain DICOM: neither dcmqrscp nor movescu of DCMTK 3.6.7 has a TLS option).

Each C-STORE sub-operation names the C-MOVE it serves (Move Originator AE Title
and Message ID, PS3.7 9.3.1.1); ``serve --json`` says so in each "stored" line.
What arrives is compared with the mover's copy by a digest of its data set
bytes (the File Meta Information aside), and a second move of the same study
meets the duplicates policy (keep: Success, the first copy stays).
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from tests.aio.helpers import LOOPBACK, Pki, PkiFactory, background_process, free_port
from tests.interop.conftest import dcmtk_tool, dicomnet_serve_plain
from tests.interop.test_orthanc_storage import ORTHANC_AE, start_orthanc
from tests.storage.dicomfiles import make_image, uid, write_part10

pytestmark = pytest.mark.interop

DESTINATION = "DNSERVE"
#: Bound on a move's sub-operation association, asked of Orthanc (seconds).
MOVE_TIMEOUT = 15


@pytest.fixture(scope="module")
def pki(pkis: PkiFactory) -> Pki:
    return pkis("rsa")


def dataset_digest(part10: bytes) -> str:
    """SHA-256 of a Part 10 file's data set: the bytes after its File Meta
    Information, whose length (0002,0000) gives (PS3.10 7.1)."""
    assert part10[128:132] == b"DICM"
    tag, vr, length = struct.unpack_from("<4s2sH", part10, 132)
    assert (tag, vr, length) == (b"\x02\x00\x00\x00", b"UL", 4)
    (group_length,) = struct.unpack_from("<I", part10, 140)
    return hashlib.sha256(part10[144 + group_length:]).hexdigest()


def study(folder: Path, first: int, syntaxes: list[str]) -> dict[str, Path]:
    """One study (one patient, one series) of images numbered from ``first``, one
    per transfer syntax: their SOP Instance UIDs and files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for n, syntax in enumerate(syntaxes):
        ds = make_image(first + n, rows=128, columns=160, study=uid(1, first),
                        series=uid(2, first))
        ds.PatientID, ds.PatientName = f"PID{first}", "Test^Move"
        files[str(ds.SOPInstanceUID)] = write_part10(folder / f"{n}.dcm", ds, syntax)
    return files


def stored_lines(events: list[dict[str, object]]) -> list[dict[str, object]]:
    return [event for event in events if event["event"] == "stored"]


def test_orthanc_moves_a_study_over_tls_into_dicomnet_serve(
        orthanc_binary: Path, pki: Pki, tmp_path: Path) -> None:
    """Orthanc asked (REST ``/modalities/self/move``) to C-MOVE a study from itself
    to DNSERVE: its C-MOVE SCU reaches its own SCP over TLS (its DICOM port takes
    nothing else), which sends each instance to ``dicomnet serve --tls`` with
    Move Originator ORTHANC / 1, as Orthanc 1.10.1 does (seen with storescp -d)."""
    sent = study(tmp_path / "sent", 960, [ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                          ExplicitVRLittleEndian])
    cert, key = pki.issue("orthanc mover", server=True, client=True)
    store = tmp_path / "store"
    move = {"Level": "Study", "Resources": [{"StudyInstanceUID": uid(1, 960)}],
            "TargetAet": DESTINATION, "Timeout": MOVE_TIMEOUT}
    with start_orthanc(orthanc_binary, tmp_path / "orthanc", pki, cert, key) as orthanc:
        ids = {sop: orthanc.upload(path) for sop, path in sent.items()}
        orthanc.call("PUT", "/modalities/self", {
            "AET": ORTHANC_AE, "Host": LOOPBACK, "Port": orthanc.dicom_port,
            "UseDicomTls": True})
        with dicomnet_serve_plain(store, "--aet", DESTINATION, "--tls",
                                  "--cert", str(pki.server_cert), "--key", str(pki.server_key),
                                  "--ca", str(pki.ca_file)) as (port, events, stderr):
            orthanc.call("PUT", "/modalities/dnserve", {
                "AET": DESTINATION, "Host": LOOPBACK, "Port": port, "UseDicomTls": True})
            assert orthanc.call("POST", "/modalities/self/move", move) == {}
            assert orthanc.call("POST", "/modalities/self/move", move) == {}  # again
        theirs = {sop: dataset_digest(orthanc.file(orthanc_id))
                  for sop, orthanc_id in ids.items()}
    log = "".join(stderr)
    first, second = stored_lines(events)[:3], stored_lines(events)[3:]
    assert sorted(str(line["sop_instance_uid"]) for line in first) == sorted(sent)
    assert sorted(str(line["sop_instance_uid"]) for line in second) == sorted(sent)
    for line in first + second:
        assert line["move_originator"] == {"aet": ORTHANC_AE, "message_id": 1}, line
        assert (line["calling_aet"], line["called_aet"], line["tls"]) == \
            (ORTHANC_AE, DESTINATION, "TLSv1.3")
    assert [line["duplicate"] for line in first + second] == [False] * 3 + [True] * 3
    for sop, digest in theirs.items():
        stored = store / uid(1, 960) / uid(2, 960) / f"{sop}.dcm"
        assert dataset_digest(stored.read_bytes()) == digest, sop
        assert dataset_digest(sent[sop].read_bytes()) == digest, sop  # Orthanc's = ours
    ended = [event for event in events if event["event"] == "association_ended"]
    assert [(e["how"], e["objects"], e["answers"]) for e in ended] == \
        [("released", 3, {"0x0000": 3})] * 2
    associations = [line for line in log.splitlines() if " association ORTHANC@" in line]
    assert len(associations) == 2, log
    for text in associations:
        assert f"-> {DESTINATION}: released, 3 message(s) (3 success)" in text, text
        assert ", TLSv1.3 " in text and "client certificate orthanc mover (SHA-256 " in text
    assert log.count("kept (duplicates policy keep)") == 3, log


def test_dcmqrscp_moves_to_dicomnet_serve_for_movescu(tmp_path: Path) -> None:
    """movescu asks DCMTK's dcmqrscp twice in one association (Message IDs 1 and
    2) to move a study to DNSERVE: each sub-operation names its own C-MOVE, and
    the second one's copies are duplicates kept."""
    movescu, dcmqrscp, dcmqridx = (dcmtk_tool(name)
                                   for name in ("movescu", "dcmqrscp", "dcmqridx"))
    sent = study(tmp_path / "sent", 970, [ExplicitVRLittleEndian] * 3)
    archive, store = tmp_path / "archive", tmp_path / "store"
    archive.mkdir()
    subprocess.run([dcmqridx, archive, *sent.values()], check=True, timeout=20)
    qr_port = free_port()
    with dicomnet_serve_plain(store, "--aet", DESTINATION) as (port, events, stderr):
        config = tmp_path / "dcmqrscp.cfg"
        config.write_text(
            f"NetworkTCPPort = {qr_port}\nMaxPDUSize = 16384\nMaxAssociations = 4\n"
            f"HostTable BEGIN\ndnserve = ({DESTINATION}, {LOOPBACK}, {port})\n"
            "HostTable END\nVendorTable BEGIN\nVendorTable END\n"
            f"AETable BEGIN\nDCMQR {archive} RW (10, 100mb) ANY\nAETable END\n")
        with background_process(dcmqrscp, "-c", config, log_path=tmp_path / "dcmqrscp.log",
                                port=qr_port):
            done = subprocess.run(
                [movescu, "--repeat", "2", "-aet", "MOVESCU", "-aec", "DCMQR",
                 "-aem", DESTINATION, "-S", "-k", "QueryRetrieveLevel=STUDY",
                 "-k", f"StudyInstanceUID={uid(1, 970)}", LOOPBACK, str(qr_port)],
                capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = stored_lines(events)
    assert [(line["move_originator"], line["duplicate"]) for line in lines] == \
        [({"aet": "MOVESCU", "message_id": 1}, False)] * 3 + \
        [({"aet": "MOVESCU", "message_id": 2}, True)] * 3
    assert sorted(str(line["sop_instance_uid"]) for line in lines[:3]) == sorted(sent)
    for sop, source in sent.items():
        stored = store / uid(1, 970) / uid(2, 970) / f"{sop}.dcm"
        assert dataset_digest(stored.read_bytes()) == dataset_digest(source.read_bytes())
    log = "".join(stderr)
    assert log.count(f"-> {DESTINATION}: released, 3 message(s) (3 success)") == 2, log
    assert log.count("association DCMQR@127.0.0.1:") == 2, log
