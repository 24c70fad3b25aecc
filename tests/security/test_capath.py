"""capath: a folder of CA certificates, hashed by `openssl rehash` or not."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from dicomnet.errors import ConfigurationError
from dicomnet.security import x509_load
from dicomnet.security.certificates import CertificateAuthority, DevPKI
from dicomnet.security.config import TLSConfig, dev_pki_configs
from tests.security.tlspair import handshake


def _capath_configs(pki: DevPKI, capath: Path) -> tuple[TLSConfig, TLSConfig]:
    """Both peers trust only what ``capath`` holds (mutual authentication)."""
    return dev_pki_configs(pki, cafile=None, capath=capath)


def test_unhashed_folder_of_pem_files_is_read(
    ec_pki: DevPKI, rsa_pki: DevPKI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`cp ca.pem cadir/` without `openssl rehash`: OpenSSL alone trusted nothing there
    and every peer was an "unknown CA"; the PEM files are now read as a cafile."""
    capath = tmp_path / "cadir"
    capath.mkdir()
    shutil.copy(ec_pki.ca_cert, capath / "ca.pem")
    shutil.copy(rsa_pki.ca_cert, capath / "other.crt")
    shutil.copy(ec_pki.ca_key, capath / "ca.key")  # not a certificate file: left alone
    (capath / "README.pem").write_text("no certificate here\n")
    server, client = _capath_configs(ec_pki, capath)
    with caplog.at_level(logging.INFO, logger="dicomnet.security"):
        s_ctx, c_ctx = server.server_context_sync(), client.client_context_sync()
    result = handshake(c_ctx, s_ctx)
    assert result.ok, result.errors
    loaded = (f"capath {capath} has no hashed names (openssl rehash): loaded 2 CA "
              "certificates from ca.pem, other.crt")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", loaded), ("INFO", loaded)]


def test_folder_without_certificates_refused(ec_pki: DevPKI, tmp_path: Path) -> None:
    capath = tmp_path / "cadir"
    capath.mkdir()
    shutil.copy(ec_pki.ca_key, capath / "ca.key")
    (capath / "notes.pem").write_text("no certificate here\n")
    for build in (TLSConfig(capath=capath).client_context_sync,
                  dev_pki_configs(ec_pki, cafile=None, capath=capath)[0].server_context_sync):
        with pytest.raises(ConfigurationError) as caught:
            build()
        assert str(caught.value) == (
            f"capath {capath} holds no CA certificates: no hashed names (run 'openssl rehash "
            f"{capath}') and no certificate (PEM or DER) in a .pem, .crt, .cer or .der file")


def test_malformed_certificate_named(tmp_path: Path) -> None:
    capath = tmp_path / "cadir"
    capath.mkdir()
    (capath / "bad.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigurationError) as caught:
        TLSConfig(capath=capath).client_context_sync()
    assert str(caught.value).startswith(f"{capath / 'bad.pem'} holds a malformed certificate: ")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_hashed_folder_is_left_to_openssl(
    ec_pki: DevPKI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    capath = tmp_path / "cadir"
    capath.mkdir()
    shutil.copy(ec_pki.ca_cert, capath / "ca.pem")
    subprocess.run(["openssl", "rehash", str(capath)], check=True, capture_output=True)
    server, client = _capath_configs(ec_pki, capath)
    with caplog.at_level(logging.INFO, logger="dicomnet.security"):
        result = handshake(client.client_context_sync(), server.server_context_sync())
    assert result.ok, result.errors
    assert caplog.records == []


def test_each_trust_file_is_parsed_once_per_context(
        ca: CertificateAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cafile was parsed twice per context build (its CA check, its weak-CA scan), as
    was each file of an unhashed capath (read, scanned): once is enough."""
    parsed: list[int] = []
    parse = x509_load.load_pem_certificates

    def counted(data: bytes, source: str | None = None) -> list[x509.Certificate]:
        parsed.append(len(data))
        return parse(data, source)

    monkeypatch.setattr(x509_load, "load_pem_certificates", counted)
    cafile = ca.write_cert(tmp_path / "ca.pem")
    TLSConfig(cafile=cafile).client_context_sync()
    assert len(parsed) == 1
    parsed.clear()
    capath = tmp_path / "cas"
    capath.mkdir()
    ca.write_cert(capath / "one.pem")
    CertificateAuthority.create("other CA", key_type="ecdsa").write_cert(capath / "two.pem")
    TLSConfig(capath=capath).client_context_sync()
    assert len(parsed) == 2
