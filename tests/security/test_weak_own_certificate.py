"""Our own certificate refused by OpenSSL's security level when its context is built
(EE_KEY_TOO_SMALL, CA_MD_TOO_WEAK from load_cert_chain): the error says its key
type and size, or its signature hash, and what the level asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomnet.errors import ConfigurationError
from dicomnet.security.certificates import CertificateAuthority
from dicomnet.security.config import TLSConfig
from tests.security.test_weak_keys import needs_openssl, sha1_signed


def test_our_certificate_with_a_key_too_small(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert, key = ca.issue("localhost", sans=("localhost",), rsa_bits=1024).write(tmp_path, "s")
    with pytest.raises(ConfigurationError) as raised:
        TLSConfig(certfile=cert, keyfile=key, peer_certificate="none").server_context_sync()
    assert str(raised.value) == (
        f"certificate {cert} has an RSA key of 1024 bits, too small for OpenSSL's security "
        "level: OpenSSL's security level 2 asks RSA and DSA keys of 2048 bits at least, EC "
        "keys of 224; make one with a larger key")


@needs_openssl
def test_our_certificate_signed_with_a_hash_too_weak(ca: CertificateAuthority, ca_file: Path,
                                                     tmp_path: Path) -> None:
    cert, key = sha1_signed(ca, ca_file, tmp_path)
    with pytest.raises(ConfigurationError) as raised:
        TLSConfig(certfile=cert, keyfile=key, peer_certificate="none").server_context_sync()
    assert str(raised.value) == (
        f"certificate {cert} is signed with sha1, too weak for OpenSSL's security level 2 (it "
        "asks SHA-224 or stronger); have it signed again with SHA-256")
