"""A cafile that holds no CA certificate (a peer's or our own leaf certificate
given as --ca, a common slip) is refused when the context is built, naming the
certificate: it loaded silently, then every peer was refused "unknown CA".
A self-signed end-entity certificate stays accepted: OpenSSL takes it as a
trust anchor that pins that one peer."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dicomnet.errors import ConfigurationError
from dicomnet.security.certificates import DevPKI, trust_file_problem
from dicomnet.security.config import TLSConfig
from tests.cli.helpers import serve_that_must_refuse
from tests.security.tlspair import handshake


def _refusal(cafile: Path, name: str = "cafile") -> str:
    return re.escape(
        f"{name} {cafile} holds no CA certificate: O=dicomnet,CN=localhost is an "
        "end-entity certificate (CA:FALSE) issued by O=dicomnet,CN=dicomnet development CA, "
        "so it can vouch for no peer; give the certificate of the CA that issued the "
        "peers' certificates")


def test_a_leaf_as_cafile_is_refused_on_both_sides(rsa_pki: DevPKI) -> None:
    with pytest.raises(ConfigurationError, match=_refusal(rsa_pki.server_cert)):
        TLSConfig(certfile=rsa_pki.server_cert, keyfile=rsa_pki.server_key,
                  cafile=rsa_pki.server_cert).server_context_sync()
    with pytest.raises(ConfigurationError, match=_refusal(rsa_pki.server_cert)):
        TLSConfig(cafile=rsa_pki.server_cert).client_context_sync()


def test_a_leaf_beside_its_ca_is_fine(rsa_pki: DevPKI, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(rsa_pki.server_cert.read_bytes() + rsa_pki.ca_cert.read_bytes())
    server = TLSConfig(certfile=rsa_pki.server_cert, keyfile=rsa_pki.server_key,
                       peer_certificate="none").server_context_sync()
    result = handshake(TLSConfig(cafile=bundle).client_context_sync(), server)
    assert result.echoed == b"ping/pong"


def test_a_self_signed_end_entity_certificate_still_pins_its_peer(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pinned")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    pem, key_file = tmp_path / "pinned.pem", tmp_path / "pinned.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = TLSConfig(certfile=pem, keyfile=key_file,
                       peer_certificate="none").server_context_sync()
    result = handshake(TLSConfig(cafile=pem).client_context_sync(), server)
    assert result.echoed == b"ping/pong"


def test_serve_with_a_leaf_as_ca_exits_2_before_listening(
        rsa_pki: DevPKI, tmp_path: Path) -> None:
    proc = serve_that_must_refuse(tmp_path, "--cert", rsa_pki.server_cert, "--key",
                                  rsa_pki.server_key, "--ca", rsa_pki.server_cert)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    # The command names its flag, --ca, where the library names its field.
    assert re.fullmatch("error: " + _refusal(rsa_pki.server_cert, "--ca"), proc.stderr.strip())


def test_a_cafile_without_certificates_says_so_naming_it(
        rsa_pki: DevPKI, tmp_path: Path) -> None:
    """Was "cannot load CA certificates: [X509: NO_CERTIFICATE_OR_CRL_FOUND] no
    certificate or crl found (_ssl.c:4154)", the file not named (a key given as
    --ca, a file half copied during a rotation)."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("garbage\n")
    for cafile in (rsa_pki.server_key, garbage):
        with pytest.raises(ConfigurationError) as caught:
            TLSConfig(cafile=cafile).client_context_sync()
        assert str(caught.value) == (f"cafile {cafile} holds no PEM certificate (BEGIN "
                                     "CERTIFICATE): give the CA's certificate in PEM")


def test_a_cafile_in_openssls_trusted_form_is_left_to_openssl(
        rsa_pki: DevPKI, tmp_path: Path) -> None:
    """OpenSSL also reads "BEGIN TRUSTED CERTIFICATE" (a certificate with its
    trust settings, ``openssl x509 -trustout``): no "holds no PEM certificate"."""
    trusted = subprocess.run(
        ["openssl", "x509", "-in", str(rsa_pki.ca_cert), "-trustout", "-addtrust", "clientAuth",
         "-addtrust", "serverAuth"], capture_output=True, check=True, timeout=30).stdout
    assert b"BEGIN TRUSTED CERTIFICATE" in trusted
    path = tmp_path / "trusted.pem"
    path.write_bytes(trusted)
    assert trust_file_problem(path) is None


@pytest.mark.parametrize("whole", [0, 1], ids=["cut-in-its-first", "cut-in-its-second"])
def test_a_cafile_cut_short_says_so_naming_it(rsa_pki: DevPKI, ec_pki: DevPKI,
                                              tmp_path: Path, whole: int) -> None:
    """A CA file still being copied (a rotation meets one) was said in OpenSSL's words
    alone: "cannot load CA certificates: [X509] PEM lib (_ssl.c:4154)"."""
    pems = [rsa_pki.ca_cert.read_bytes(), ec_pki.ca_cert.read_bytes()]
    cafile = tmp_path / "cut.pem"
    cafile.write_bytes(b"".join(pems[:whole]) + pems[whole][:300])
    with pytest.raises(ConfigurationError) as refused:
        TLSConfig(cafile=cafile).client_context_sync()
    assert str(refused.value) == (
        f"cafile {cafile} holds an incomplete or malformed PEM certificate (a copy still "
        "in progress?)")
