"""`dicomnet echo` against real TLS servers whose configuration is the problem, as a
review of the TLS side met them with DCMTK 3.6.7's storescp and openssl s_server:

- a server sending its certificate without the intermediate CA that issued it, to a
  client trusting the root (X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, 20): it
  said only "signed by an unknown CA (its issuer is not in --ca)";
- a legacy-only server (storescp --profile-aes; s_server -cipher AES128-SHA -tls1_2)
  to a default client: it said "peer offers no cipher suite allowed by profile
  'bcp195-rfc9325'", with nothing on what to do; and, to a client without a
  certificate, guessed "(more likely: we sent no certificate) the server requires a
  client certificate", though the server had refused our ClientHello itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dicomnet.security.certificates import CertificateAuthority
from dicomnet.security.profiles import openssl_has_3des
from tests.aio.helpers import LOOPBACK, Pki, PkiFactory, background_process, free_port
from tests.interop.conftest import Dcmtk

pytestmark = pytest.mark.interop

PREFIX = "error: TLS handshake with 127.0.0.1:{port} failed: "
#: What a client of a current profile is told to try (B.1 only where OpenSSL has 3DES).
RETIRED = (" (an older peer may speak only the suites of a retired profile: try --profile "
           "bcp195 (PS3.15 B.9: its forward-secret suites first, then "
           "TLS_RSA_WITH_AES_128_CBC_SHA, TLS 1.0 and up), else --profile aes (B.3)"
           + (" or --profile basic (B.1, 3DES)" if openssl_has_3des() else "")
           + "; weaker, they warn)")



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


@pytest.fixture
def rsa(pkis: PkiFactory) -> Pki:
    return pkis("rsa")


def test_default_client_to_storescp_of_the_aes_profile(dcmtk: Dcmtk, rsa: Pki,
                                                       tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "out").mkdir()
    client = ("--ca", rsa.ca_file, "--cert", rsa.client_cert, "--key", rsa.client_key)
    with background_process(dcmtk.storescp, "+tls", rsa.server_key, rsa.server_cert,
                            "+cf", rsa.ca_file, "-pw", "+pa", "-od", tmp_path / "out",
                            str(port), log_path=tmp_path / "storescp.log", port=port):
        done = echo(port, *client)
        # What the hint says first reaches it (with the retired profile's warning).
        retired = echo(port, *client, "--profile", "bcp195")
    assert done.returncode == 3, done.stderr
    assert error_line(done) == PREFIX.format(port=port) + (
        "peer offers no cipher suite allowed by profile 'bcp195-rfc9325'" + RETIRED)
    assert retired.returncode == 0, retired.stderr
    assert "TLS_RSA_WITH_AES_128_CBC_SHA" in retired.stdout
    assert "is retired and weak" in retired.stderr


def test_client_without_certificate_to_s_server_of_aes128_sha(openssl: Path, rsa: Pki,
                                                              tmp_path: Path) -> None:
    port = free_port()
    with background_process(openssl, "s_server", "-accept", f"{LOOPBACK}:{port}",
                            "-cert", rsa.server_cert, "-key", rsa.server_key,
                            "-cipher", "AES128-SHA", "-tls1_2", "-quiet",
                            log_path=tmp_path / "s_server.log", port=port):
        done = echo(port, "--ca", rsa.ca_file)
    assert done.returncode == 3, done.stderr
    # Refused before any ServerHello: no client certificate was asked yet.
    assert error_line(done) == PREFIX.format(port=port) + (
        "peer offers no cipher suite allowed by profile 'bcp195-rfc9325'" + RETIRED)


def test_default_client_to_s_server_of_tls_1_0_only(openssl: Path, rsa: Pki,
                                                    tmp_path: Path) -> None:
    """A TLS 1.0-only server (an old modality) to a default client: it said "peer
    offers no protocol version allowed by profile 'bcp195-rfc9325'" and nothing
    of the retired profile that reaches it, whose handshake then succeeds (s_server
    speaks no DICOM: the association, not the TLS link, fails)."""
    port = free_port()
    with background_process(openssl, "s_server", "-accept", f"{LOOPBACK}:{port}",
                            "-cert", rsa.server_cert, "-key", rsa.server_key,
                            "-tls1", "-cipher", "DEFAULT@SECLEVEL=0", "-quiet",
                            log_path=tmp_path / "s_server.log", port=port):
        done = echo(port, "--ca", rsa.ca_file)
        retired = echo(port, "--ca", rsa.ca_file, "--profile", "bcp195")
    assert done.returncode == 3, done.stderr
    assert error_line(done) == PREFIX.format(port=port) + (
        "peer offers no protocol version allowed by profile 'bcp195-rfc9325' (an older "
        "peer may speak only TLS 1.0 or 1.1: try --profile bcp195 (PS3.15 B.9, TLS 1.0 "
        "and up), else --profile aes (B.3); weaker, they warn)")
    assert "is retired and weak" in retired.stderr
    assert error_line(retired) == ("error: association aborted - the transport connection "
                                   "closed before answering the A-ASSOCIATE-RQ")
