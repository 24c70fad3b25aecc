"""Review 25: what `dicomnet echo` says of certificates a site's own PKI made."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dicomnet.security.certificates import CertificateAuthority, DevPKI
from dicomnet.security.config import TLSConfig
from tests.security.leaves import server_leaf, write_leaf

from .helpers import ServerThread, client_tls_args, error_line, run_cli

StartServer = Callable[..., ServerThread]


def _server_cert(pki: DevPKI, tmp_path: Path, names: list[x509.GeneralName]) -> tuple[Path, Path]:
    """A server certificate of ``pki``'s CA with exactly these subjectAltNames."""
    ca = CertificateAuthority.load(pki.ca_cert, pki.ca_key, password=pki.password)
    key = ec.generate_private_key(ec.SECP256R1())
    return write_leaf(server_leaf(ca, key, names), key, tmp_path, "pacs")


def test_an_address_written_as_a_dns_name_is_said(start_server: StartServer, pki: DevPKI,
                                                   tmp_path: Path) -> None:
    """A certificate made with 'subjectAltName=DNS:127.0.0.1' (a common slip in an
    openssl config) matches no address: 'echo 127.0.0.1' was told only "not valid
    for IP address '127.0.0.1'", though the certificate shows 127.0.0.1 to anyone
    who looks. The reason now says why it does not count and what to reissue."""
    certfile, keyfile = _server_cert(pki, tmp_path, [x509.DNSName("127.0.0.1")])
    server = start_server(tls=TLSConfig(certfile=certfile, keyfile=keyfile, cafile=pki.ca_cert))
    refused = run_cli("echo", "127.0.0.1", server.port, *client_tls_args(pki))
    assert refused.exit_code == 3
    assert error_line(refused) == (
        f"error: TLS handshake with 127.0.0.1:{server.port} failed: host name mismatch: the "
        "certificate of the server is not valid for IP address '127.0.0.1' (it names "
        "127.0.0.1 as a DNS name, which matches no address: an IP address needs an IP "
        "subjectAltName, RFC 5280 4.2.1.6; reissue it with IP:127.0.0.1)")


def test_an_address_missing_from_a_certificate_gets_no_such_hint(
        start_server: StartServer, pki: DevPKI, tmp_path: Path) -> None:
    """A certificate that does not name the address at all gets no such hint: its
    names, and the ways to reach it, are said (tests/security/test_hostname_words.py)."""
    certfile, keyfile = _server_cert(pki, tmp_path, [x509.DNSName("pacs.example"),
                                                     x509.DNSName("10.0.0.5")])
    server = start_server(tls=TLSConfig(certfile=certfile, keyfile=keyfile, cafile=pki.ca_cert))
    refused = run_cli("echo", "127.0.0.1", server.port, *client_tls_args(pki))
    assert refused.exit_code == 3
    assert error_line(refused) == (
        f"error: TLS handshake with 127.0.0.1:{server.port} failed: host name mismatch: the "
        "certificate of the server is not valid for IP address '127.0.0.1': it names "
        "DNS:pacs.example, DNS:10.0.0.5 (subjectAltName); connect by one of these names, or "
        "keep this address and check the certificate against one of them (--server-name "
        "pacs.example), or reissue the certificate with IP:127.0.0.1")


def test_certs_show_reads_a_der_certificate(pki: DevPKI, tmp_path: Path) -> None:
    """'certs show site-ca.cer' of a CA exported from Windows (DER, its default) said
    "holds no PEM certificate": an engineer checking what a device trusts had to find
    openssl first. It is shown as its PEM form is."""
    der = tmp_path / "site-ca.cer"
    der.write_bytes(x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()).public_bytes(
        serialization.Encoding.DER))
    as_der = run_cli("certs", "show", der, "--json")
    as_pem = run_cli("certs", "show", pki.ca_cert, "--json")
    assert as_der.exit_code == 0, as_der.output
    assert as_der.stdout == as_pem.stdout
    bogus = tmp_path / "bogus.cer"
    bogus.write_bytes(b"\x30\x03\x02\x01\x00")  # DER, but no certificate
    refused = run_cli("certs", "show", bogus)
    assert refused.exit_code == 2
    assert error_line(refused) == f"error: {bogus} holds no PEM certificate (nor a DER one)"
