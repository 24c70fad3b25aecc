"""Review 25 with DCMTK 3.6.7's storescp and openssl s_client as the peers: a site
PKI of a root and an issuing (intermediate) CA, whose server certificate has an
Ed25519 key; what `dicomnet echo` reports of it, against what s_client sees of
the same server, and what it says when it trusts the issuing CA alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from dicomnet.security.certificates import CertificateAuthority
from tests.aio.helpers import LOOPBACK, background_process, free_port
from tests.interop.conftest import Dcmtk
from tests.security.leaves import server_leaf

pytestmark = pytest.mark.interop


@dataclass(frozen=True)
class SitePki:
    root: Path
    issuing: Path
    server: tuple[Path, Path]
    """Ed25519 leaf then the issuing CA; its key."""
    client: tuple[Path, Path]


@pytest.fixture(scope="module")
def site_pki(tmp_path_factory: pytest.TempPathFactory) -> SitePki:
    folder = tmp_path_factory.mktemp("site-pki")
    root = CertificateAuthority.create("site root CA", key_type="ecdsa")
    issuing = root.intermediate("site issuing CA", key_type="ecdsa")
    key = ed25519.Ed25519PrivateKey.generate()
    leaf = server_leaf(issuing, key, [x509.IPAddress(ip_address(LOOPBACK))])
    server_cert, server_key = folder / "pacs.pem", folder / "pacs.key"
    server_cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM)
                            + issuing.certificate.public_bytes(serialization.Encoding.PEM))
    server_key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    client = issuing.issue("site client", key_type="ecdsa", server=False).write(folder, "client")
    return SitePki(root.write_cert(folder / "root.pem"),
                   issuing.write_cert(folder / "issuing.pem"),
                   (server_cert, server_key), client)



def _echo(pki: SitePki, port: int, ca: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "echo", LOOPBACK, str(port), "--tls",
         "--cert", str(pki.client[0]), "--key", str(pki.client[1]), "--ca", str(ca), "--json"],
        capture_output=True, text=True, timeout=60, check=False)


def test_ed25519_storescp_as_openssl_sees_it(dcmtk: Dcmtk, openssl: Path, site_pki: SitePki,
                                             tmp_path: Path) -> None:
    """storescp serving an Ed25519 certificate over TLS 1.2 (--profile-bcp195-ex):
    dicomnet echo --json said authentication "ECDSA" (the suite's word) of no size;
    s_client's "Peer signature type" says ed25519, as echo now does."""
    port = free_port()
    cert, key = site_pki.server
    with background_process(dcmtk.storescp, "+tls", key, cert, "+cf", site_pki.root,
                            "--profile-bcp195-ex", "-od", tmp_path, str(port),
                            log_path=tmp_path / "storescp.log", port=port):
        ours = _echo(site_pki, port, site_pki.root)
        theirs = subprocess.run(
            [openssl, "s_client", "-connect", f"{LOOPBACK}:{port}", "-cert", site_pki.client[0],
             "-key", site_pki.client[1], "-CAfile", site_pki.root],
            input="", capture_output=True, text=True, timeout=30, check=False)
    assert ours.returncode == 0, ours.stderr
    tls = json.loads(ours.stdout)["tls"]
    seen = re.search(r"^Peer signature type: (\S+)$", theirs.stdout, re.MULTILINE)
    cipher = re.search(r"^New, (TLSv[\d.]+), Cipher is (\S+)$", theirs.stdout, re.MULTILINE)
    assert seen is not None and cipher is not None, theirs.stdout
    assert seen.group(1) == "ed25519"
    assert (tls["protocol"], tls["openssl_cipher_name"]) == cipher.groups()
    assert (tls["authentication"], tls["authentication_key_bits"]) == ("Ed25519", 256)
    assert tls["cipher_suite"] == "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"


def test_trusting_the_issuing_ca_alone_is_said(dcmtk: Dcmtk, site_pki: SitePki,
                                               tmp_path: Path) -> None:
    """--ca issuing.pem (the CA that issued storescp's certificate, not the root above
    it): refused, as OpenSSL wants a chain to a root, and told so; it said "its issuer
    is not in --ca", the issuer being the very certificate given."""
    port = free_port()
    cert, key = site_pki.server
    with background_process(dcmtk.storescp, "+tls", key, cert, "+cf", site_pki.root,
                            "-od", tmp_path, str(port), log_path=tmp_path / "storescp.log",
                            port=port):
        refused = _echo(site_pki, port, site_pki.issuing)
    assert refused.returncode == 3
    assert json.loads(refused.stdout)["error"] == (
        f"TLS handshake with {LOOPBACK}:{port} failed: the certificate of the server chains up "
        "to a CA certificate of ours that is not a root (not self-signed), and a chain must "
        "end in a root: its issuer, the root CA above it, is missing (add the root CA to --ca)")
