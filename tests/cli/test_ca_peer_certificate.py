"""dicomnet echo against a server whose own certificate is a CA's (CA:TRUE, signed
by the CA in --ca): refused, the reason naming --allow-ca-peer-cert, which takes
it with a warning (RFC 5280 4.2.1.9)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from dicomnet.security.certificates import CertificateAuthority, DevPKI, IssuedCert, generate_key
from dicomnet.security.config import TLSConfig

from .helpers import ServerThread, client_tls_args, error_line, json_out, run_cli


def test_a_server_presenting_a_ca_certificate(
        start_server: Callable[..., ServerThread], pki: DevPKI, tmp_path: Path) -> None:
    ca = CertificateAuthority.load(pki.ca_cert, pki.ca_key, password=pki.password)
    key = generate_key("ecdsa")
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rogue")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca.key, hashes.SHA256()))
    cert, key_file = IssuedCert(certificate, key).write(tmp_path, "rogue")
    server = start_server(tls=TLSConfig(certfile=cert, keyfile=key_file, cafile=pki.ca_cert))
    refused = run_cli("echo", "localhost", server.port, *client_tls_args(pki))
    assert refused.exit_code == 3
    assert error_line(refused) == (
        f"error: TLS handshake with localhost:{server.port} failed: the certificate of the "
        "server (CN=rogue) is a CA certificate (basicConstraints CA:TRUE), not a node's own, "
        "and is not one of our trust anchors: a CA's key signs certificates (RFC 5280 "
        "4.2.1.9) and could sign more identities; give that node a certificate of its own "
        "(CA:FALSE), or take this one with --allow-ca-peer-cert")
    taken = run_cli("echo", "localhost", server.port, *client_tls_args(pki),
                    "--allow-ca-peer-cert", "--json")
    assert taken.exit_code == 0, taken.output
    assert json_out(taken)["status"] == 0
    assert ("WARNING: a peer whose own certificate is a CA's (CA:TRUE) is taken "
            "(--allow-ca-peer-cert): its key can sign more identities") in taken.stderr
