"""The scripts of examples/ run as users run them (a subprocess), against real peers
on loopback: DCMTK's storescp (plain and TLS, a good and an expired certificate)
and storescu, and dicomnet's own server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import selectors
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicomnet import blocking, make_dev_pki, serve
from dicomnet.security.certificates import CertificateAuthority
from tests.aio.helpers import LOOPBACK, background_process, free_port, peer_env
from tests.cli.helpers import reaped, terminated
from tests.interop.conftest import Dcmtk, dcmtk_tool

pytestmark = pytest.mark.interop

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _ct_file(path: Path) -> str:
    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "EXAMPLE^ONE"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return str(ds.SOPInstanceUID)


def test_echo_monitor_reports_each_node(dcmtk: Dcmtk, tmp_path: Path) -> None:
    """Four nodes at once: storescp over TLS (our client certificate, its key
    encrypted, the password from the environment), storescp showing an expired
    certificate, a port nobody listens on, and a plain dicomnet server."""
    pki = make_dev_pki(tmp_path / "pki", key_type="ecdsa", password="s3cret")
    ca = CertificateAuthority.load(pki.ca_cert, pki.ca_key, password="s3cret")
    now = dt.datetime.now(dt.UTC)
    ca.issue("localhost", sans=("localhost", "127.0.0.1"), key_type="ecdsa",
             not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(days=1),
             ).write(tmp_path / "pki", "expired", password="s3cret")
    good, expired, down = free_port(), free_port(), free_port()
    storescp: list[str | Path] = [dcmtk.storescp, "+pw", "s3cret", "+cf", pki.ca_cert,
                                  "-od", tmp_path]

    async def plain_server() -> tuple[int, list[dict[str, Any]], int]:
        async with await serve(port=0) as server:
            nodes = [
                {"name": "TLS", "host": "localhost", "port": good, "tls": True},
                {"name": "EXPIRED", "host": "localhost", "port": expired, "tls": True},
                {"name": "DOWN", "host": LOOPBACK, "port": down},
                {"name": "PLAIN", "host": LOOPBACK, "port": server.port},
            ]
            (tmp_path / "nodes.json").write_text(json.dumps(nodes))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, EXAMPLES / "echo_monitor.py", tmp_path / "nodes.json",
                "--cert", pki.client_cert, "--key", pki.client_key, "--ca", pki.ca_cert,
                "--key-password-env", "NODE_KEY_PASSWORD", "--timeout", "5",
                stdout=subprocess.PIPE, env={**os.environ, "NODE_KEY_PASSWORD": "s3cret"})
            out, _ = await proc.communicate()
            assert proc.returncode is not None
            return proc.returncode, json.loads(out), server.port

    with background_process(*storescp, "+tls", pki.server_key, pki.server_cert, str(good),
                            log_path=tmp_path / "good.log", port=good), \
            background_process(*storescp, "+tls", tmp_path / "pki" / "expired.key",
                               tmp_path / "pki" / "expired.pem", str(expired),
                               log_path=tmp_path / "expired.log", port=expired):
        code, reports, plain_port = asyncio.run(plain_server())

    assert code == 1
    tls, old, gone, plain = reports
    assert tls["ok"] is True and tls["status"] == "0000"
    assert tls["tls"]["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert tls["tls"]["encryption"].startswith("AES-")
    assert old == {"name": "EXPIRED", "host": "localhost", "port": expired, "ok": False,
                   "error": "tls", "reason": "the certificate of the server has expired"}
    assert gone == {"name": "DOWN", "host": LOOPBACK, "port": down, "ok": False,
                    "error": "ConnectError",
                    "reason": f"cannot connect to {LOOPBACK}:{down}: connection refused"}
    assert plain == {"name": "PLAIN", "host": LOOPBACK, "port": plain_port, "ok": True,
                     "status": "0000"}


def test_store_and_forward_forwards_admits_and_stops_on_sigterm(
        dcmtk: Dcmtk, tmp_path: Path) -> None:
    """storescu (CT01) -> the example -> storescp (DEST): the object reaches DEST;
    a sender not allowed is rejected; with DEST down the sender is answered 0110H
    with why; SIGTERM ends it, exit 0."""
    storescu = dcmtk_tool("storescu")
    dest_port = free_port()
    received = tmp_path / "dest"
    received.mkdir()
    sent = tmp_path / "ct.dcm"
    uid = _ct_file(sent)
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "store_and_forward.py"), "--port", "0",
         "--store", str(tmp_path / "spool"), "--allow", "CT01", LOOPBACK, str(dest_port),
         "DEST"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
            assert sel.select(30), "the example printed no start line"
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith(f"listening on {LOOPBACK}:")
        port = int(line.split(":")[1].split()[0])
        with background_process(dcmtk.storescp, "--aetitle", "DEST", "-od", received,
                                str(dest_port), log_path=tmp_path / "dest.log", port=dest_port):
            ok = subprocess.run([storescu, "-aet", "CT01", "-aec", "FORWARDER", LOOPBACK,
                                 str(port), str(sent)], capture_output=True, text=True,
                                timeout=60, env=peer_env(), check=False)
            assert ok.returncode == 0, ok.stderr
            assert [p.name for p in received.iterdir()] == [f"CT.{uid}"]
            stranger = subprocess.run([storescu, "-aet", "XR09", "-aec", "FORWARDER",
                                       LOOPBACK, str(port), str(sent)], capture_output=True,
                                      text=True, timeout=60, env=peer_env(), check=False)
            assert stranger.returncode != 0
            assert "Calling AE Title Not Recognized" in stranger.stderr
        _ct_file(sent)  # another object, DEST down now
        [result] = blocking.store(LOOPBACK, port, sent, calling_ae_title="CT01")
        assert result.status == 0x0110
        assert result.error_comment is not None
        assert result.error_comment.startswith(
            f"not forwarded: cannot connect to {LOOPBACK}:{dest_port}")
        out, err = terminated(proc, 30)
    assert proc.returncode == 0, err
    assert out == "stopped: 1 forwarded, 0 association(s) drained, 0 aborted\n"
    # Both kept in the node's own store, forwarded or not.
    assert len(list((tmp_path / "spool").rglob("*.dcm"))) == 2


def test_examples_type_check_as_user_code() -> None:
    """A user copies them: mypy --strict passes on them as they are."""
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--cache-dir", os.devnull, str(EXAMPLES)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout
