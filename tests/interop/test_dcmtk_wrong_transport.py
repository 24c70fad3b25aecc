"""`dicomnet store`, as users run it, without --tls into DCMTK's storescp on TLS:
the run says what went wrong in the CLI's words (its flags, not TLSConfig's
fields) in every place it says it: the error line, the line announcing a retry,
the JSON document's "error" and each object's "error" in it. The retry line and
the objects' errors had kept the library's words ("use TLS, port 2762") while the
error line said "try --tls / port 2762".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from tests.aio.helpers import LOOPBACK, PkiFactory, background_process, free_port
from tests.interop.conftest import Dcmtk
from tests.interop.test_dcmtk_storage import dcmtk_tls
from tests.storage.dicomfiles import make_image, write_part10

pytestmark = pytest.mark.interop

CLI_HINT = "(try --tls / port 2762)"
LIBRARY_HINT = "(use TLS, port 2762)"


def test_store_without_tls_into_storescp_on_tls_says_so_in_cli_words(
        dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path) -> None:
    pki = pkis("rsa")
    for n in (1, 2):
        write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n, rows=16, columns=16),
                     ExplicitVRLittleEndian)
    out = tmp_path / "dcmtk-out"
    out.mkdir()
    port = free_port()
    with background_process(dcmtk.storescp, *dcmtk_tls(pki, server=True), "-od", out,
                            str(port), log_path=tmp_path / "storescp.log", port=port):
        done = subprocess.run(
            [sys.executable, "-m", "dicomnet.cli.main", "store", LOOPBACK, str(port),
             str(tmp_path / "in"), "--json", "--retries", "1", "--retry-delay", "0"],
            capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3, done.stdout + done.stderr  # nothing stored
    assert LIBRARY_HINT not in done.stdout + done.stderr
    error = ("association aborted - the peer reset the connection before answering the "
             f"A-ASSOCIATE-RQ: the peer may expect TLS {CLI_HINT}")
    assert done.stderr.strip().splitlines() == [
        "dicomnet store: retrying 2 object(s) in 0 s (attempt 2 of 2): not sent: " + error,
        f"error: {error}",
    ]
    doc = json.loads(done.stdout)
    assert (doc["error"], doc["stored"], doc["failed"]) == (error, 0, 2)
    assert [(Path(r["path"]).name, r["status_text"], r["error"], r["attempts"])
            for r in doc["results"]] == [
        ("1.dcm", "not sent", f"not sent: {error}", 2),
        ("2.dcm", "not sent", f"not sent: {error}", 2),
    ]
    assert not list(out.iterdir())
