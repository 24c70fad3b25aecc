"""A CA of our own cafile/capath that OpenSSL's security level refuses (a key too
small, X509_V_ERR 67; a signature hash too weak, 68) is named when a context is
built, once, at WARNING: it used to be learnt only at the handshake of each peer
chained to it. Each named CA is shown to fail a handshake as said; a CA the level
takes (a SHA-1 self-signed root: OpenSSL checks no trust anchor's own signature)
is not named. Certificates are made at run time, the SHA-1 ones by the openssl
command (cryptography signs none with SHA-1)."""

from __future__ import annotations

import logging
import ssl
import subprocess
from pathlib import Path

import pytest

from dicomnet.security.certificates import CertificateAuthority, self_signed
from dicomnet.security.config import TLSConfig
from tests.security.test_weak_keys import needs_openssl
from tests.security.tlspair import handshake

LEVEL_2_KEYS = ("OpenSSL's security level 2 asks RSA and DSA keys of 2048 bits at least, EC "
                "keys of 224")


def _weak_server(cert: Path, key: Path) -> ssl.SSLContext:
    """A bare server at security level 0 (a TLSConfig refuses to present such a chain)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(cert, key)
    return context


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "dicomnet.security" and r.levelno >= logging.WARNING]


#: A self-signed CA:TRUE certificate may be a root or a peer's own, pinned
#: (``openssl req -x509`` makes those CA:TRUE): the warning names both refusals.
SELF_SIGNED_TAIL = (
    "every peer whose chain goes through it, or that presents it as its own (a pinned "
    "self-signed certificate), will be refused at its handshake (CA_KEY_TOO_SMALL, or "
    "EE_KEY_TOO_SMALL for the latter): replace it with one of a larger key")


def _verify_code(client: ssl.SSLContext, server: ssl.SSLContext) -> int | None:
    error = handshake(client, server).client_error
    return error.verify_code if isinstance(error, ssl.SSLCertVerificationError) else None


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def test_a_ca_key_too_small_is_named_by_clients_and_servers(
        ca: CertificateAuthority, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    weak = CertificateAuthority.create("weak CA", rsa_bits=1024)
    cafile = tmp_path / "cas.pem"
    cafile.write_bytes(ca.cert_pem() + weak.cert_pem())
    own_cert, own_key = ca.issue("localhost", sans=("localhost",), key_type="ecdsa").write(
        tmp_path, "own")
    client = TLSConfig(cafile=cafile)
    server = TLSConfig(certfile=own_cert, keyfile=own_key, cafile=cafile)
    with caplog.at_level(logging.INFO, logger="dicomnet.security"):
        client_ctx = client.client_context_sync()
        server.server_context_sync()
    said = (f"CA certificate O=dicomnet,CN=weak CA in cafile {cafile} has an RSA key of 1024 "
            f"bits, too small for OpenSSL's security level: {LEVEL_2_KEYS}; {SELF_SIGNED_TAIL}")
    assert _warnings(caplog) == [said]  # once: the server's build names it no more
    # As said: a peer the weak CA issued is refused, 67.
    peer = weak.issue("localhost", sans=("localhost",), key_type="ecdsa").write(tmp_path, "peer")
    assert _verify_code(client_ctx, _weak_server(*peer)) == 67


def test_a_weak_ca_is_named_once_per_process(ca: CertificateAuthority, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """A server builds its context again at each rotation of its files, a script may
    build many: a weak CA already named is not named again, another one is."""
    weak = CertificateAuthority.create("weak CA", rsa_bits=1024)
    cafile = tmp_path / "cas.pem"
    cafile.write_bytes(ca.cert_pem() + weak.cert_pem())
    config = TLSConfig(cafile=cafile)
    with caplog.at_level(logging.WARNING, logger="dicomnet.security"):
        config.client_context_sync()
        assert len(_warnings(caplog)) == 1
        caplog.clear()
        config.client_context_sync()
        TLSConfig(cafile=cafile).client_context_sync()
        assert _warnings(caplog) == []
        other = CertificateAuthority.create("other weak CA", rsa_bits=1024)
        other_file = other.write_cert(tmp_path / "other.pem")
        TLSConfig(cafile=other_file).client_context_sync()
    assert _warnings(caplog) == [
        f"CA certificate O=dicomnet,CN=other weak CA in cafile {other_file} has an RSA key "
        f"of 1024 bits, too small for OpenSSL's security level: {LEVEL_2_KEYS}; "
        f"{SELF_SIGNED_TAIL}"]


def test_what_the_profile_asks_is_said_too(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    weak = CertificateAuthority.create("weak CA", rsa_bits=1024)
    cafile = weak.write_cert(tmp_path / "weak.pem")
    with caplog.at_level(logging.WARNING, logger="dicomnet.security"):
        TLSConfig(cafile=cafile, profile="bcp195-rfc9325-modified").client_context_sync()
    assert len(_warnings(caplog)) == 1
    assert (f"{LEVEL_2_KEYS}; profile 'bcp195-rfc9325-modified' (PS3.15 B.13) asks EC keys "
            "of 256; every peer") in _warnings(caplog)[0]


def test_unhashed_capath_names_the_file(ca: CertificateAuthority, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    capath = tmp_path / "cadir"
    capath.mkdir()
    ca.write_cert(capath / "good.pem")
    CertificateAuthority.create("weak CA", rsa_bits=1024).write_cert(capath / "weak.crt")
    with caplog.at_level(logging.WARNING, logger="dicomnet.security"):
        TLSConfig(capath=capath).client_context_sync()
    assert _warnings(caplog) == [
        f"CA certificate O=dicomnet,CN=weak CA in capath {capath} (weak.crt) has an RSA key "
        f"of 1024 bits, too small for OpenSSL's security level: {LEVEL_2_KEYS}; "
        f"{SELF_SIGNED_TAIL}"]


def test_good_cas_and_unused_trust_are_not_named(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    weak = CertificateAuthority.create("weak CA", rsa_bits=1024).write_cert(tmp_path / "w.pem")
    own_cert, own_key = ca.issue("localhost", key_type="ecdsa").write(tmp_path, "own")
    with caplog.at_level(logging.WARNING, logger="dicomnet.security"):
        TLSConfig(cafile=ca_file).client_context_sync()
        TLSConfig(certfile=own_cert, keyfile=own_key, cafile=ca_file).server_context_sync()
        # A server asking no certificate verifies nothing against its cafile.
        TLSConfig(certfile=own_cert, keyfile=own_key, cafile=weak,
                  peer_certificate="none").server_context_sync()
    assert _warnings(caplog) == []


@needs_openssl
def test_a_ca_signed_with_sha1_is_named_not_a_sha1_root(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A root signed by itself with SHA-1 is taken (OpenSSL checks the signatures
    below the trust anchor only); an intermediate CA signed with SHA-1 is not."""
    root_key, root, req, ca_ext = (tmp_path / n for n in ("root.key", "root.pem", "i.csr",
                                                          "ca.ext"))
    inter_key, inter, leaf_key, leaf_req, leaf = (tmp_path / n for n in (
        "inter.key", "inter.pem", "leaf.key", "leaf.csr", "leaf.pem"))
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *ec, "-sha1", "-keyout", root_key, "-out", root, "-subj",
             "/CN=sha1 root", "-days", "2")
    ca_ext.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n")
    _openssl("req", "-new", *ec, "-keyout", inter_key, "-out", req, "-subj", "/CN=sha1 inter")
    _openssl("x509", "-req", "-in", req, "-sha1", "-CA", root, "-CAkey", root_key,
             "-set_serial", "2", "-extfile", ca_ext, "-days", "2", "-out", inter)
    (tmp_path / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    _openssl("req", "-new", *ec, "-keyout", leaf_key, "-out", leaf_req, "-subj", "/CN=localhost")
    for issuer, issuer_key, serial, out in ((inter, inter_key, "3", leaf),
                                            (root, root_key, "4", tmp_path / "leaf2.pem")):
        _openssl("x509", "-req", "-in", leaf_req, "-sha256", "-CA", issuer, "-CAkey",
                 issuer_key, "-set_serial", serial, "-extfile", tmp_path / "san.ext",
                 "-days", "2", "-out", out)
    cafile = tmp_path / "cas.pem"
    cafile.write_bytes(root.read_bytes() + inter.read_bytes())
    with caplog.at_level(logging.WARNING, logger="dicomnet.security"):
        client = TLSConfig(cafile=cafile).client_context_sync()
    assert _warnings(caplog) == [
        f"CA certificate CN=sha1 inter in cafile {cafile} is signed with sha1, too weak for "
        "OpenSSL's security level 2 (it asks SHA-224 or stronger); every peer whose chain "
        "goes through it will be refused at its handshake (CA_MD_TOO_WEAK): have it signed "
        "again with SHA-256"]
    assert _verify_code(client, _weak_server(leaf, leaf_key)) == 68
    result = handshake(client, _weak_server(tmp_path / "leaf2.pem", leaf_key))
    assert result.ok, result.errors


def test_a_pinned_peer_certificate_too_small(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """A peer's own self-signed certificate pinned in cafile (CA:FALSE) is checked as
    the leaf it is (66)."""
    pinned = self_signed("localhost", sans=("localhost",), rsa_bits=1024)
    cert, key = pinned.write(tmp_path, "pinned")
    cafile = tmp_path / "pinned-ca.pem"
    cafile.write_bytes(pinned.cert_pem())
    with caplog.at_level(logging.WARNING, logger="dicomnet.security"):
        client = TLSConfig(cafile=cafile).client_context_sync()
    assert _warnings(caplog) == [
        f"certificate O=dicomnet,CN=localhost in cafile {cafile} has an RSA key of 1024 bits, "
        f"too small for OpenSSL's security level: {LEVEL_2_KEYS}; the peer presenting it will "
        "be refused at its handshake (EE_KEY_TOO_SMALL): replace it with a certificate of a "
        "larger key"]
    assert _verify_code(client, _weak_server(cert, key)) == 66

