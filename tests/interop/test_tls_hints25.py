"""`dicomnet echo` against real TLS servers whose configuration is the problem, as a
review of the TLS side met them with DCMTK 3.6.7's storescp and openssl s_server:

- a server sending its certificate without the intermediate CA that issued it, to a
  client trusting the root (X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, 20): it
  said only "signed by an unknown CA (its issuer is not in --ca)".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dicomnet.security.certificates import CertificateAuthority
from tests.aio.helpers import LOOPBACK, background_process, free_port
from tests.interop.conftest import Dcmtk

pytestmark = pytest.mark.interop

PREFIX = "error: TLS handshake with 127.0.0.1:{port} failed: "


def echo(port: int, *options: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "echo", LOOPBACK, str(port), "--tls",
         *map(str, options)], capture_output=True, text=True, timeout=60, check=False)


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_storescp_sending_its_leaf_alone(dcmtk: Dcmtk, tmp_path: Path) -> None:
    root = CertificateAuthority.create("site root", key_type="ecdsa")
    issuing = root.intermediate("site issuing CA", key_type="ecdsa")
    both, key = issuing.issue("pacs", sans=(LOOPBACK,), key_type="ecdsa",
                              client=False).write(tmp_path, "pacs")
    pem = both.read_text()
    end = "-----END CERTIFICATE-----"
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(pem[:pem.index(end) + len(end)] + "\n")
    root_file = root.write_cert(tmp_path / "root.pem")
    port = free_port()
    (tmp_path / "out").mkdir()
    with background_process(dcmtk.storescp, "+tls", key, leaf, "-pw", "-ic", "-od",
                            tmp_path / "out", str(port), log_path=tmp_path / "storescp.log",
                            port=port):
        done = echo(port, "--ca", root_file)
    assert done.returncode == 3, done.stderr
    assert error_line(done) == PREFIX.format(port=port) + (
        "the certificate of the server is signed by an unknown CA (its issuer is not in --ca); "
        "the server sent this certificate alone, with no CA certificate after it: if its "
        "issuer (O=dicomnet,CN=site issuing CA) is an intermediate CA, the server is not "
        "sending it (configure its certificate chain file: its certificate followed by the "
        "intermediates), or add that intermediate to --ca beside the root")
