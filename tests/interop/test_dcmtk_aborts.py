"""`dicomnet store`, as users run it, against DCMTK's storescp over TLS told to
abort the association (``--abort-after``: once a C-STORE-RQ is received whole,
before its response): the objects that were on the wire are reported as sent
without an answer (the peer may hold them), the others as not sent, all
retryable, and a retry meets the same abort."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from tests.aio.helpers import LOOPBACK, PkiFactory, background_process, free_port, wait_output
from tests.interop.conftest import Dcmtk
from tests.interop.test_dcmtk_storage import dcmtk_tls
from tests.storage.dicomfiles import make_image, write_part10

pytestmark = pytest.mark.interop


def test_an_abort_after_a_whole_request_leaves_that_object_unanswered(
        dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path) -> None:
    pki = pkis("rsa")
    files = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n, rows=300, columns=200),
                          ExplicitVRLittleEndian) for n in (90, 91, 92)]
    out = tmp_path / "dcmtk-out"
    out.mkdir()
    port = free_port()
    with background_process(dcmtk.storescp, *dcmtk_tls(pki, server=True), "--abort-after",
                            "-v", "-od", out, str(port), log_path=tmp_path / "storescp.log",
                            port=port) as peer:
        done = subprocess.run(
            [sys.executable, "-m", "dicomnet.cli.main", "store", LOOPBACK, str(port),
             *map(str, files), "--tls", "--ca", str(pki.ca_file), "--cert",
             str(pki.client_cert), "--key", str(pki.client_key), "--json", "--retries", "1",
             "--retry-delay", "0"], capture_output=True, text=True, timeout=90, check=False)
        wait_output(peer, "Received Store Request")
    assert done.returncode == 3, done.stdout + done.stderr  # none stored
    doc = json.loads(done.stdout)
    assert (doc["stored"], doc["failed"], doc["retried"]) == (0, 3, 3)
    aborted = "association aborted by the peer (its A-ABORT: service-user)"
    assert doc["error"] == aborted
    got = sorted((r["path"], r["sent"], r["status"], r["status_text"], r["error"],
                  r["retryable"]) for r in doc["results"])
    # The retry sent the unanswered one last (it may be what made the peer abort):
    # 91 went out first and got no answer, the other two were not sent; 90, which
    # the first attempt sent whole, unanswered, says so (the peer may hold it).
    assert got == [
        (str(files[0]), True, None, "no answer",
         f"not sent again: {aborted}; an earlier attempt sent it, unanswered", True),
        (str(files[1]), True, None, "no answer", aborted, True),
        (str(files[2]), False, None, "not sent", f"not sent: {aborted}", True),
    ]
    assert not list(out.iterdir())  # storescp stored nothing
