"""A host-name mismatch says which names the server's certificate holds, and how to
reach it: a client connecting to 127.0.0.1, whose server certificate names only
``localhost``, was told "not valid for IP address '127.0.0.1'" and no more.

OpenSSL keeps the chain the server sent after its verification failed
(SSL_get_peer_cert_chain), which is what the client's ``HandshakeTrace`` holds and
``translate_ssl_error`` reads: here the in-memory handshake's own SSLObject gives it.
Handshakes in memory (``tlspair``)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from dicomnet.cli.output import in_cli_words
from dicomnet.security.certificates import CertificateAuthority
from dicomnet.security.config import TLSConfig
from dicomnet.security.errors_map import translate_ssl_error
from tests.security.leaves import server_leaf, write_leaf
from tests.security.tlspair import handshake


def _refusal(ca: CertificateAuthority, ca_file: Path, tmp_path: Path, *, host: str,
             common_name: str, sans: tuple[str, ...]) -> str:
    """The client's reason for refusing a server certificate of ``common_name`` and
    ``sans`` when it connects to ``host``."""
    cert, key = ca.issue(common_name, sans=sans, client=False, key_type="ecdsa").write(
        tmp_path, "server")
    return _refusal_of(cert, key, ca_file, host)


def _refusal_of(cert: Path, key: Path, ca_file: Path, host: str) -> str:
    server = TLSConfig(certfile=cert, keyfile=key, peer_certificate="none")
    result = handshake(TLSConfig(cafile=ca_file).client_context_sync(),
                       server.server_context_sync(), server_hostname=host)
    assert isinstance(result.client_error, ssl.SSLCertVerificationError), result.errors
    chain = result.client._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
    presented = ssl.PEM_cert_to_DER_cert(chain[0].public_bytes())
    return translate_ssl_error(result.client_error, side="client", peer="p", host=host,
                               peer_certificate=presented).reason


def test_an_address_not_named_says_the_names_and_the_ways_to_reach_it(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    reason = _refusal(ca, ca_file, tmp_path, host="127.0.0.1", common_name="pacs",
                      sans=("localhost",))
    assert reason == (
        "host name mismatch: the certificate of the server is not valid for IP address "
        "'127.0.0.1': it names DNS:localhost (subjectAltName); connect by that name, or "
        "keep this address and check the certificate against it "
        "(server_hostname='localhost'), or reissue the certificate with IP:127.0.0.1")
    assert in_cli_words(reason).endswith(
        "connect by that name, or keep this address and check the certificate against it "
        "(--server-name localhost), or reissue the certificate with IP:127.0.0.1")


def test_a_few_names_are_said_then_how_many_more(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    sans = ("*.site.example", "pacs.site.example", "10.0.0.5", "pacs", "10.0.0.6",
            "archive.site.example")
    reason = _refusal(ca, ca_file, tmp_path, host="wrong.example", common_name="pacs", sans=sans)
    assert reason == (
        "host name mismatch: the certificate of the server is not valid for 'wrong.example': "
        "it names DNS:*.site.example, DNS:pacs.site.example, IP:10.0.0.5, DNS:pacs and 2 "
        "more (subjectAltName); connect by one of these names, or keep this host and check "
        "the certificate against one of them (server_hostname='pacs.site.example'), or "
        "reissue the certificate with DNS:wrong.example")


def test_a_common_name_beside_a_subject_alt_name_is_said_to_be_ignored(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    reason = _refusal(ca, ca_file, tmp_path, host="localhost", common_name="localhost",
                      sans=("pacs.example",))
    assert reason == (
        "host name mismatch: the certificate of the server is not valid for 'localhost': it "
        "names DNS:pacs.example (subjectAltName; its subject CN names localhost too, but a "
        "client ignores the CN of a certificate that has a subjectAltName, RFC 6125 6.4.4); "
        "connect by that name, or keep this host and check the certificate against it "
        "(server_hostname='pacs.example'), or reissue the certificate with DNS:localhost")


@pytest.mark.parametrize(
    ("host", "common_name", "said"),
    [
        pytest.param("localhost", "localhost",
                     "'localhost': it has no subjectAltName, only its subject CN "
                     "'localhost': hosts are named by the subjectAltName (RFC 9525 6.3; RFC "
                     "6125 6.4.4 let clients fall back to the CN); reissue the certificate "
                     "with DNS:localhost, or, for an old device, take its CN: "
                     "hostname_from_common_name=True", id="cn-is-the-host"),
        pytest.param("localhost", "pacs.old",
                     "'localhost': it has no subjectAltName, only its subject CN "
                     "'pacs.old': hosts are named by the subjectAltName (RFC 9525 6.3; RFC "
                     "6125 6.4.4 let clients fall back to the CN); reissue the certificate "
                     "with DNS:localhost, or, for an old device, connect by that name "
                     "(server_hostname='pacs.old') with hostname_from_common_name=True",
                     id="cn-is-another-host"),
        pytest.param("127.0.0.1", "127.0.0.1",
                     "IP address '127.0.0.1': it has no subjectAltName, only its subject CN "
                     "'127.0.0.1', and an IP address is matched by an IP subjectAltName "
                     "alone, never by the CN (RFC 5280 4.2.1.6); reissue the certificate "
                     "with IP:127.0.0.1", id="cn-is-the-address"),
        pytest.param("127.0.0.1", "pacs.old",
                     "IP address '127.0.0.1': it has no subjectAltName, only its subject CN "
                     "'pacs.old', and an IP address is matched by an IP subjectAltName "
                     "alone, never by the CN (RFC 5280 4.2.1.6); reissue the certificate "
                     "with IP:127.0.0.1, or, for an old device, connect by that name (or "
                     "keep this address and give server_hostname='pacs.old') with "
                     "hostname_from_common_name=True", id="cn-is-a-host-by-address"),
    ],
)
def test_a_certificate_without_subject_alt_name_says_its_common_name(
        *, ca: CertificateAuthority, ca_file: Path, tmp_path: Path, host: str,
        common_name: str, said: str) -> None:
    reason = _refusal(ca, ca_file, tmp_path, host=host, common_name=common_name, sans=())
    assert reason == "host name mismatch: the certificate of the server is not valid for " + said


def test_names_a_certificate_chose_are_said_on_one_line_and_not_offered(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    """A certificate's names are the server's to choose: one holding a line break
    is escaped, and neither it nor a wildcard is offered to connect by."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.DNSName("pacs\nerror: forged"), x509.DNSName("*.example"),
        x509.UniformResourceIdentifier("https://pacs.example/"), x509.DNSName("ok.example")]
    cert, keyfile = write_leaf(server_leaf(ca, key, names), key, tmp_path, "odd")
    assert _refusal_of(cert, keyfile, ca_file, "127.0.0.1") == (
        "host name mismatch: the certificate of the server is not valid for IP address "
        "'127.0.0.1': it names DNS:pacs\\nerror: forged, DNS:*.example, DNS:ok.example "
        "(subjectAltName); connect by one of these names, or keep this address and check "
        "the certificate against one of them (server_hostname='ok.example'), or reissue the "
        "certificate with IP:127.0.0.1")


def test_a_subject_alt_name_without_host_names_says_so(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier("https://pacs.example/")]
    cert, keyfile = write_leaf(server_leaf(ca, key, names), key, tmp_path, "uri")
    assert _refusal_of(cert, keyfile, ca_file, "localhost") == (
        "host name mismatch: the certificate of the server is not valid for 'localhost': its "
        "subjectAltName names no host (no DNS or IP entry); reissue the certificate with "
        "DNS:localhost")


def test_without_the_presented_certificate_the_reason_is_as_before(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    cert, key = ca.issue("pacs", sans=("localhost",), client=False,
                         key_type="ecdsa").write(tmp_path, "server")
    server = TLSConfig(certfile=cert, keyfile=key, peer_certificate="none")
    result = handshake(TLSConfig(cafile=ca_file).client_context_sync(),
                       server.server_context_sync(), server_hostname="127.0.0.1")
    assert result.client_error is not None
    assert translate_ssl_error(result.client_error, side="client", peer="p",
                               host="127.0.0.1").reason == (
        "host name mismatch: the certificate of the server is not valid for IP address "
        "'127.0.0.1'")
