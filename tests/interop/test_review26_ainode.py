"""examples/ai_node.py run as a user runs it (a subprocess), between real peers
on loopback: two DCMTK storescu +tls senders at once (mutual TLS, the node's
CA), the node, and a DCMTK storescp +tls PACS with a CA of its own."""

from __future__ import annotations

import selectors
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicomnet import make_dev_pki
from dicomnet.security.certificates import CertificateAuthority
from tests.aio.helpers import LOOPBACK, background_process, free_port, peer_env
from tests.cli.helpers import reaped, terminated
from tests.interop.conftest import Dcmtk, dcmtk_tool

pytestmark = pytest.mark.interop

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _ct_files(folder: Path, count: int) -> list[str]:
    folder.mkdir()
    uids = []
    for n in range(count):
        ds = Dataset()
        ds.SOPClassUID = CT_IMAGE
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = ds.SeriesInstanceUID = generate_uid()
        ds.PatientName = "AI^NODE"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"{n}.dcm", enforce_file_format=True)
        uids.append(str(ds.SOPInstanceUID))
    return uids


def _storescu(pki_dir: Path, port: int, *files: Path | str, title: str = "CT01",
              debug: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [dcmtk_tool("storescu"), *(["-d"] if debug else []), "-aet", title, "-aec",
         "AI-NODE", "+tls",
         str(pki_dir / "client.key"), str(pki_dir / "client.pem"), "+cf",
         str(pki_dir / "ca.pem"), "localhost", str(port), *map(str, files)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=peer_env())


def _sent(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_ai_node_sends_results_on_one_kept_association_and_reopens_it(
        dcmtk: Dcmtk, tmp_path: Path) -> None:
    """6 objects from two senders at once: 6 results at the PACS (new SOP
    Instance UIDs, "AI RESULT") over one association; the PACS down: the sender
    is answered 0110H with why; the PACS back: a new association; SIGTERM ends
    it, exit 0, with its summary line."""
    senders = make_dev_pki(tmp_path / "senders")  # the node's CA and the modalities'
    CertificateAuthority.load(senders.ca_cert, senders.ca_key).issue(
        "ai-node", sans=("localhost",)).write(tmp_path / "senders", "node")  # both roles
    pacs = make_dev_pki(tmp_path / "pacs")  # the PACS's own CA
    sent = _ct_files(tmp_path / "a", 3) + _ct_files(tmp_path / "b", 3)
    pacs_port, received = free_port(), tmp_path / "received"
    received.mkdir()
    storescp: list[str | Path] = [
        dcmtk.storescp, "-aet", "PACS", "+tls", pacs.server_key, pacs.server_cert,
        "+cf", senders.ca_cert, "-od", received, str(pacs_port)]
    node = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "ai_node.py"), "--port", "0",
         "--store", str(tmp_path / "spool"), "--cert", str(tmp_path / "senders" / "node.pem"),
         "--key", str(tmp_path / "senders" / "node.key"), "--ca", str(senders.ca_cert),
         "--pacs-ca", str(pacs.ca_cert), "localhost", str(pacs_port), "PACS"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(node):
        with selectors.DefaultSelector() as sel:
            sel.register(node.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
            assert sel.select(30), "the example printed no start line"
        line = node.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith(f"listening on {LOOPBACK}:")
        port = int(line.split(":")[1].split()[0])
        with background_process(*storescp, log_path=tmp_path / "pacs1.log", port=pacs_port):
            first = _storescu(tmp_path / "senders", port, *sorted((tmp_path / "a").iterdir()))
            second = _storescu(tmp_path / "senders", port, *sorted((tmp_path / "b").iterdir()),
                               title="CT02")
            assert _sent(first)[0] == 0 and _sent(second)[0] == 0
        results = [pydicom.dcmread(p) for p in received.iterdir()]
        assert len(results) == 6
        assert {r.SeriesDescription for r in results} == {"AI RESULT"}
        assert not {r.SOPInstanceUID for r in results} & set(sent)
        _, err = _sent(_storescu(tmp_path / "senders", port, tmp_path / "a" / "0.dcm",
                                 debug=True))
        assert "DIMSE Status                  : 0x0110: Failure" in err  # the PACS down
        assert f"[result not sent: cannot connect to localhost:{pacs_port}" in err  # why
        with background_process(*storescp, log_path=tmp_path / "pacs2.log", port=pacs_port):
            assert _sent(_storescu(tmp_path / "senders", port, tmp_path / "b" / "0.dcm"))[0] == 0
        assert len(list(received.iterdir())) == 7
        out, log = terminated(node, 30)
    assert node.returncode == 0, log
    assert out == ("stopped: 7 result(s) sent on 2 PACS association(s), "
                   "0 association(s) drained, 0 aborted\n")
    # Who sent each object: the certificate's subject, in the log.
    assert log.count("from CT01 (O=dicomnet,CN=dicomnet client, TLS_") == 5
    assert log.count("from CT02 (O=dicomnet,CN=dicomnet client, TLS_") == 3
