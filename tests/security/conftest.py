"""PKI fixtures for the security tests: every key and certificate is made at run time."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomnet.security.certificates import CertificateAuthority, DevPKI, make_dev_pki


@pytest.fixture(scope="session")
def rsa_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    """CA, server (localhost, 127.0.0.1) and client certificates with RSA 2048 keys."""
    return make_dev_pki(tmp_path_factory.mktemp("rsa-pki"))


@pytest.fixture(scope="session")
def ec_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    """The same with ECDSA P-256 keys."""
    return make_dev_pki(tmp_path_factory.mktemp("ec-pki"), key_type="ecdsa")


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    """A CA (ECDSA, fast) for tests that need unusual certificates."""
    return CertificateAuthority.create("dicomnet test CA", key_type="ecdsa")


@pytest.fixture(scope="session")
def ca_file(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test CA's certificate, PEM."""
    return ca.write_cert(tmp_path_factory.mktemp("ca") / "ca.pem")
