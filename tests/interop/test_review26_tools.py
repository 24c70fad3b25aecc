"""Review 26, by use: what `dicomnet certs` writes, as OpenSSL's own tools and DCMTK's
storescp (+tls +crl) take it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.aio.helpers import LOOPBACK, background_process, free_port
from tests.interop.conftest import Dcmtk

pytestmark = pytest.mark.interop


def _dicomnet(*args: str | Path | int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dicomnet.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_crl_of_certs_revoke_as_openssl_and_storescp_take_it(
        dcmtk: Dcmtk, openssl: Path, tmp_path: Path) -> None:
    """`openssl crl -text` shows the CRL number and authority key identifier
    (RFC 5280 5.2.1, 5.2.3) it lacked; `openssl verify -crl_check` and storescp
    given `+crl` refuse the revoked certificate and take the others, before and
    after the CRL is renewed."""
    pki = tmp_path / "pki"
    commands: list[list[str | Path]] = [["init", pki, "--key-type", "ecdsa"],
                                        ["issue", pki, "modality", "--role", "client"],
                                        ["revoke", pki, "modality"]]
    for command in commands:
        done = _dicomnet("certs", *command)
        assert done.returncode == 0, done.stderr
    crl = pki / "ca.crl"
    text = subprocess.run([openssl, "crl", "-in", crl, "-noout", "-text"], capture_output=True,
                          text=True, timeout=30, check=True).stdout
    assert "X509v3 CRL Number: \n                1\n" in text
    assert "X509v3 Authority Key Identifier:" in text
    verify = subprocess.run(
        [openssl, "verify", "-CAfile", pki / "ca.pem", "-CRLfile", crl, "-crl_check",
         pki / "client.pem", pki / "modality.pem"],
        capture_output=True, text=True, timeout=30, check=False)
    assert f"{pki / 'client.pem'}: OK" in verify.stdout
    assert "certificate revoked" in verify.stdout + verify.stderr
    assert verify.returncode != 0
    renewed = _dicomnet("certs", "revoke", pki, "--json")
    assert renewed.returncode == 0, renewed.stderr
    assert json.loads(renewed.stdout)["added"] == []
    port = free_port()
    with background_process(dcmtk.storescp, "+tls", pki / "server.key", pki / "server.pem",
                            "+cf", pki / "ca.pem", "+crl", crl, "-od", tmp_path, str(port),
                            log_path=tmp_path / "storescp.log", port=port):
        client = _dicomnet("echo", LOOPBACK, port, "--tls", "--ca", pki / "ca.pem",
                           "--cert", pki / "client.pem", "--key", pki / "client.key", "--json")
        revoked = _dicomnet("echo", LOOPBACK, port, "--tls", "--ca", pki / "ca.pem",
                            "--cert", pki / "modality.pem", "--key", pki / "modality.key",
                            "--json")
    assert json.loads(client.stdout)["status"] == 0, client.stdout
    assert revoked.returncode == 3
    assert json.loads(revoked.stdout)["error"] == (
        f"TLS handshake with {LOOPBACK}:{port} failed: the server refused our certificate: "
        "it is revoked")
