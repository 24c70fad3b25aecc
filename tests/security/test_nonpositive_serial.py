"""Certificates whose serial number is 0 or negative (RFC 5280 4.1.2.2 asks a positive
one). Nine roots of Debian's CA bundle have serial 0, and OpenSSL takes them;
cryptography parses them with a CryptographyDeprecationWarning naming neither file
nor certificate (an error under -W error, as pytest runs here: a context of such a
cafile could not be built). They are said at DEBUG, with the file and the subject,
and used. The certificates are made at run time by the openssl command
(cryptography's builder refuses such serials)."""

from __future__ import annotations

import logging
import ssl
import subprocess
import threading
import warnings
from pathlib import Path

import pytest

from dicomnet.errors import ConfigurationError
from dicomnet.security.certificates import CertificateAuthority, CertificateInfo
from dicomnet.security.config import TLSConfig
from dicomnet.security.x509_load import load_pem_certificates
from tests.security.test_weak_keys import needs_openssl
from tests.security.tlspair import handshake

pytestmark = needs_openssl


def _self_signed(tmp_path: Path, serial: str, name: str) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for localhost (CA:TRUE, as openssl req -x509
    makes them) with this serial, and its key."""
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-subj", f"/CN={name}", "-set_serial", serial, "-days", "2", "-addext",
                    "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    return cert, key


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return sorted({r.getMessage() for r in caplog.records
                   if r.name == "dicomnet.security" and "serial number" in r.getMessage()})


def _text(where: str, name: str, serial: str) -> str:
    return (f"{where}: certificate CN={name} has serial number {serial}, not positive as "
            "RFC 5280 4.1.2.2 asks: OpenSSL takes it, cryptography warns it will refuse it "
            "one day")


def test_a_cafile_with_serials_zero_and_negative(ca: CertificateAuthority, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    zero, _ = _self_signed(tmp_path, "0", "zero")
    negative, _ = _self_signed(tmp_path, "-1", "negative")
    cafile = tmp_path / "bundle.pem"
    cafile.write_bytes(ca.cert_pem() + zero.read_bytes() + negative.read_bytes())
    with caplog.at_level(logging.DEBUG, logger="dicomnet.security"):
        context = TLSConfig(cafile=cafile).client_context_sync()
    assert len(context.get_ca_certs()) == 3
    assert _said(caplog) == [_text(f"cafile {cafile}", "negative", "-01"),
                             _text(f"cafile {cafile}", "zero", "00")]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_unhashed_capath_with_serial_zero(ca: CertificateAuthority, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    capath = tmp_path / "cas"
    capath.mkdir()
    ca.write_cert(capath / "good.pem")
    _self_signed(capath, "0", "zero")
    (capath / "zero.key").unlink()
    with caplog.at_level(logging.DEBUG, logger="dicomnet.security"):
        TLSConfig(capath=capath).client_context_sync()
    assert _text(f"capath {capath} (zero.pem)", "zero", "00") in _said(caplog)


def test_a_peer_and_our_own_certificate_with_serial_zero(tmp_path: Path) -> None:
    """OpenSSL takes the peer: its CertificateInfo (SecurityInfo, the AE binding) is
    made without cryptography's warning, as is our own certificate's."""
    cert, key = _self_signed(tmp_path, "0", "localhost")
    server = TLSConfig(certfile=cert, keyfile=key, peer_certificate="none")
    result = handshake(TLSConfig(cafile=cert).client_context_sync(),
                       server.server_context_sync())
    assert result.ok, result.errors
    der = result.client.getpeercert(binary_form=True)
    assert der is not None
    peer = CertificateInfo.from_der(der)
    assert (peer.subject, peer.serial, peer.serial_hex) == ("CN=localhost", 0, "00")
    own = server.local_certificate_info()
    assert own is not None and own.serial == 0


def test_two_threads_parsing_such_certificates_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each parse of one set the process's warning filters aside and back
    (warnings.catch_warnings, not thread-safe): a server's context rebuilt in its
    thread while a handshake read a peer's certificate, the parse begun first put
    the filters back, ending, under the other, whose warning then came out (raised
    under -W error: a handshake or a context build failed), and the other's end
    left its ignore filter in the process for good. Such parses take turns now."""
    from cryptography import x509

    from dicomnet.security import x509_load

    zero, _ = _self_signed(tmp_path, "0", "zero")
    pem = zero.read_bytes()
    der = ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))
    inside, first_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    load_der, load_pem = x509.load_der_x509_certificate, x509.load_pem_x509_certificates

    def handshake_parse() -> None:
        try:
            x509_load.load_der_certificate(der)
        except BaseException as exc:  # the warning, raised under -W error
            errors.append(exc)

    second = threading.Thread(target=handshake_parse, name="handshake")

    def parsed_meanwhile(data: bytes) -> x509.Certificate:
        if threading.current_thread() is second:  # inside its parse, once the first ended
            inside.set()
            first_done.wait(60)
        return load_der(data)

    def first_parse(data: bytes) -> list[x509.Certificate]:
        if not second.is_alive() and not inside.is_set():  # inside the first parse
            second.start()
            inside.wait(0.5)  # the second one begins, unless it waits its turn
        return load_pem(data)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        filters = list(warnings.filters)
        monkeypatch.setattr(x509, "load_der_x509_certificate", parsed_meanwhile)
        monkeypatch.setattr(x509, "load_pem_x509_certificates", first_parse)
        assert len(x509_load.load_pem_certificates(pem, "cafile")) == 1
        first_done.set()
        second.join(60)
        assert errors == []
        assert warnings.filters == filters


def _issued(tmp_path: Path, ca: Path, ca_key: Path, serial: str, name: str) -> Path:
    """A certificate for ``name`` signed by ``ca``, its Authority Key Identifier
    naming the CA's issuer and serial number (RFC 5280 4.2.1.1), as old roots' do."""
    key, csr, cert = (tmp_path / f"{name}{ext}" for ext in (".key", ".csr", ".pem"))
    extensions = tmp_path / f"{name}.ext"
    extensions.write_text("authorityKeyIdentifier=keyid,issuer:always\n"
                          "subjectAltName=DNS:localhost\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", f"/CN={name}"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey",
                    str(ca_key), "-set_serial", serial, "-days", "2", "-extfile",
                    str(extensions), "-out", str(cert)], check=True, capture_output=True)
    return cert


def test_a_serial_zero_named_in_an_authority_key_identifier(tmp_path: Path) -> None:
    """An Authority Key Identifier naming its issuer's serial, 0 (Go Daddy's and
    Starfield's roots of Debian's bundle name their own): cryptography warns when the
    extensions are read, after the load, which was quiet for the certificate's own
    serial alone: 'dicomnet certs show' of such a root, and the description of a peer
    whose certificate such a CA issued (at each handshake), said the bare warning."""
    root, root_key = _self_signed(tmp_path, "0", "root")
    old_root = _issued(tmp_path, root, root_key, "0", "old-root")  # serial 0, AKI serial 0
    leaf = _issued(tmp_path, root, root_key, "7", "leaf")  # serial 7, AKI serial 0
    for cert in (old_root, leaf):
        info = CertificateInfo.from_pem_file(cert)
        assert info.sans == ("localhost",)
    assert [CertificateInfo.from_der(ssl.PEM_cert_to_DER_cert(leaf.read_text())).serial,
            CertificateInfo.from_pem_file(old_root).serial] == [7, 0]
    parsed = load_pem_certificates(old_root.read_bytes() + leaf.read_bytes(), "cafile")
    assert [len(c.extensions) for c in parsed] == [3, 3]


def test_a_ca_of_serial_zero_loaded_to_issue(tmp_path: Path) -> None:
    """A CA made by openssl with serial 0, loaded to issue from ('dicomnet certs issue'):
    read quietly like any other, and what it issues chains to it."""
    root, root_key = _self_signed(tmp_path, "0", "zero-ca")
    ca = CertificateAuthority.load(root, root_key)
    leaf = ca.issue("peer.local")
    assert leaf.certificate.issuer.rfc4514_string() == "CN=zero-ca"
    leaf.certificate.verify_directly_issued_by(ca.certificate)
    with pytest.raises(ConfigurationError, match=r"zero-ca\.key holds no PEM certificate$"):
        CertificateAuthority.load(root_key, root_key)


def test_an_unhashed_capath_with_a_der_certificate_of_serial_zero(
        ca: CertificateAuthority, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Found by atheris (der): a DER certificate (a Windows .cer) was parsed by
    cryptography directly (trust_store.der_certificate), which warned of its serial
    (an exception under -W error: the context was not built), where a PEM one is
    read quietly."""
    import base64

    capath = tmp_path / "cas"
    capath.mkdir()
    ca.write_cert(capath / "good.pem")
    pem, _ = _self_signed(tmp_path, "0", "zero")
    body = b"".join(pem.read_bytes().split(b"-----")[2].split())
    (capath / "zero.cer").write_bytes(base64.b64decode(body))
    with caplog.at_level(logging.DEBUG, logger="dicomnet.security"):
        context = TLSConfig(capath=capath).client_context_sync()
    assert len(context.get_ca_certs()) == 2
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_certificate_object_of_serial_zero_is_described_quietly(tmp_path: Path) -> None:
    """Found by atheris (pem): CertificateInfo.from_x509 read the serial of a
    cryptography certificate itself, which warns for 0 (an exception under -W
    error); 'dicomnet certs show' of a DER file (a Windows .cer) goes that way."""
    from cryptography.hazmat.primitives import serialization

    from tests.cli.helpers import json_out, run_cli

    root, _ = _self_signed(tmp_path, "0", "zero-root")
    [cert] = load_pem_certificates(root.read_bytes(), "test")  # quietly
    der = tmp_path / "zero-root.cer"
    der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert CertificateInfo.from_x509(cert).serial == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run_cli("certs", "show", der, "--json")
    assert result.exit_code == 0, result.output
    assert json_out(result)["serial"] == "00"


def test_a_pem_block_inside_another_is_read_quietly(tmp_path: Path) -> None:
    """Found by atheris (pem): a line of ten dashes and BEGIN CERTIFICATE, then
    before its END another whole certificate, of serial 0. cryptography takes
    the first line for text and reads the inner block; the check for serials
    that warn found a block from the first line, did not decode it, and let the
    load warn (an exception under -W error). A block not decoded here now
    counts as one that may warn."""
    root, _ = _self_signed(tmp_path, "0", "nested")
    data = b"----------BEGIN CERTIFICATE-----\nAAAA\n" + root.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        certs = load_pem_certificates(data, "test")
    assert [CertificateInfo.from_x509(c).serial for c in certs] == [0]
