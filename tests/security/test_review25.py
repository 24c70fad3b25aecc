"""Review 25 of the TLS side: what a security engineer met with real keys and chains."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

from dicomnet.cli.output import in_cli_words
from dicomnet.errors import ConfigurationError
from dicomnet.security.certificates import CertificateAuthority, CertificateInfo, DevPKI
from dicomnet.security.config import TLSConfig
from dicomnet.security.info import security_info_from_ssl
from tests.security.leaves import server_leaf, write_leaf
from tests.security.tlspair import handshake


def _eddsa_server(ca: CertificateAuthority, tmp_path: Path,
                  key: ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey,
                  profile: str) -> TLSConfig:
    """A server certificate whose key is EdDSA (RFC 8410), issued by ``ca``."""
    cert = server_leaf(ca, key, [x509.DNSName("localhost")], common_name="localhost")
    certfile, keyfile = write_leaf(cert, key, tmp_path, "ed")
    return TLSConfig(certfile=certfile, keyfile=keyfile, peer_certificate="none",
                     profile=profile)


_EDDSA: dict[str, tuple[Callable[[], ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey], int]]
_EDDSA = {"Ed25519": (ed25519.Ed25519PrivateKey.generate, 256),
          "Ed448": (ed448.Ed448PrivateKey.generate, 456)}


@pytest.mark.parametrize("name", sorted(_EDDSA))
@pytest.mark.parametrize("profile", ["bcp195-rfc9325", "bcp195-extended"])
def test_eddsa_server_key_is_the_authentication(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path, name: str, profile: str,
) -> None:
    """An Ed25519/Ed448 server key was reported as no authentication at all under TLS
    1.3 and as "ECDSA" of unknown size under TLS 1.2 (the ECDSA suites, RFC 8422
    5.1.1): both sides now name the key that signed the handshake."""
    make_key, bits = _EDDSA[name]
    server_cfg = _eddsa_server(ca, tmp_path, make_key(), profile)
    client_cfg = TLSConfig(cafile=ca_file, profile=profile)
    result = handshake(client_cfg.client_context_sync(), server_cfg.server_context_sync())
    assert result.ok, result.errors
    expected_protocol = "TLSv1.2" if profile == "bcp195-extended" else "TLSv1.3"
    client = security_info_from_ssl(result.client, side="client", local_cert=None)
    server = security_info_from_ssl(
        result.server, side="server",
        local_cert=CertificateInfo.from_pem_file(server_cfg.certfile))  # type: ignore[arg-type]
    for info in (client, server):
        assert info.protocol == expected_protocol
        assert (info.authentication, info.authentication_key_bits) == (name, bits)
    assert f"({name} {bits})" in client.summary()


def test_intermediate_alone_in_cafile_is_said(tmp_path: Path) -> None:
    """A client trusting only the intermediate CA that issued the server's certificate
    (the server sends leaf and intermediate) was told "signed by an unknown CA (its
    issuer is not in our cafile/capath)", though that issuer was there: OpenSSL
    wants the chain to end in a self-signed root (X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT).
    The reason now says the root is what is missing."""
    from dicomnet.security.errors_map import translate_ssl_error

    root = CertificateAuthority.create("review root", key_type="ecdsa")
    issuing = root.intermediate("review issuing CA", key_type="ecdsa")
    certfile, keyfile = issuing.issue("localhost", sans=("localhost",), key_type="ecdsa",
                                      client=False).write(tmp_path, "server")
    assert certfile.read_text().count("BEGIN CERTIFICATE") == 2  # leaf, intermediate
    cafile = issuing.write_cert(tmp_path / "issuing.pem")
    server_cfg = TLSConfig(certfile=certfile, keyfile=keyfile, peer_certificate="none")
    client_cfg = TLSConfig(cafile=cafile)
    result = handshake(client_cfg.client_context_sync(), server_cfg.server_context_sync())
    assert isinstance(result.client_error, ssl.SSLCertVerificationError)
    assert result.client_error.verify_code == 2
    reason = translate_ssl_error(result.client_error, side="client", peer="p").reason
    assert reason == (
        "the certificate of the server chains up to a CA certificate of ours that is not a "
        "root (not self-signed), and a chain must end in a root: its issuer, the root CA "
        "above it, is missing (add the root CA to our cafile/capath)")
    assert in_cli_words(reason).endswith("(add the root CA to --ca)")
    # With the root trusted as well, the same server is taken.
    both = tmp_path / "both.pem"
    both.write_bytes(cafile.read_bytes() + root.cert_pem())
    again = handshake(TLSConfig(cafile=both).client_context_sync(),
                      server_cfg.server_context_sync())
    assert again.ok, again.errors


def _der(cert_pem: Path) -> bytes:
    return x509.load_pem_x509_certificate(cert_pem.read_bytes()).public_bytes(
        serialization.Encoding.DER)


def test_a_folder_of_der_cer_files_is_trusted(rsa_pki: DevPKI, tmp_path: Path) -> None:
    """A CA exported from Windows is a DER .cer by default: a --ca folder of them was
    refused ("no PEM certificate in a .pem, .crt or .cer file"), and one beside PEM
    files was skipped, its peers then refused as "unknown CA". Now read."""
    folder = tmp_path / "cas"
    folder.mkdir()
    (folder / "site-ca.cer").write_bytes(_der(rsa_pki.ca_cert))
    (folder / "notes.cer").write_bytes(b"0 not a certificate")  # starts as DER would
    server = TLSConfig(certfile=rsa_pki.server_cert, keyfile=rsa_pki.server_key,
                       peer_certificate="none")
    client = TLSConfig(capath=folder)
    result = handshake(client.client_context_sync(), server.server_context_sync())
    assert result.ok, result.errors
    assert result.echoed == b"ping/pong"


def test_a_der_ca_file_is_named_as_such(rsa_pki: DevPKI, tmp_path: Path) -> None:
    """A DER certificate given as the CA file was said to hold "no PEM certificate",
    which leaves one wondering what it does hold."""
    cafile = tmp_path / "site-ca.cer"
    cafile.write_bytes(_der(rsa_pki.ca_cert))
    with pytest.raises(ConfigurationError) as caught:
        TLSConfig(cafile=cafile).client_context_sync()
    assert str(caught.value) == (
        f"cafile {cafile} holds a DER (binary) certificate, where PEM is read: convert it "
        f"('openssl x509 -inform DER -in {cafile} -out ca.pem')")
