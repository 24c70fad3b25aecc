"""First-byte detection (TLS vs plain DICOM) and ssl error translation."""

from __future__ import annotations

import errno
import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomnet import security
from dicomnet.errors import TLSError
from dicomnet.security.certificates import DevPKI
from dicomnet.security.config import dev_pki_configs
from dicomnet.security.detect import (
    explain_first_bytes,
    looks_like_dicom_associate,
    looks_like_tls,
)
from dicomnet.security.errors_map import translate_ssl_error
from tests.security.tlspair import handshake, server_receives

# A-ASSOCIATE-RQ head (PS3.8 9.3.2):
ASSOCIATE_RQ_HEAD = bytes.fromhex(
    "01"        # PDU type: A-ASSOCIATE-RQ
    "00"        # reserved
    "000000cd"  # PDU length: 205
    "0001"      # protocol version 1
    "0000"      # reserved
) + b"ANY-SCP         " + b"ECHOSCU         " + bytes(32)
CLIENT_HELLO_HEAD = bytes.fromhex(
    "16"    # content type: handshake
    "0301"  # legacy record version: TLS 1.0 (what TLS 1.2/1.3 ClientHellos carry)
    "00f4"  # record length
    "01"    # handshake type: ClientHello
)


def test_looks_like_tls() -> None:
    assert looks_like_tls(CLIENT_HELLO_HEAD)
    assert looks_like_tls(b"\x16\x03\x03")
    assert not looks_like_tls(b"\x16\x03\x05")
    assert not looks_like_tls(b"\x16\x03")
    assert not looks_like_tls(ASSOCIATE_RQ_HEAD)


def test_looks_like_dicom_associate() -> None:
    assert looks_like_dicom_associate(ASSOCIATE_RQ_HEAD)
    assert looks_like_dicom_associate(ASSOCIATE_RQ_HEAD[:6])
    assert not looks_like_dicom_associate(ASSOCIATE_RQ_HEAD[:5])
    assert not looks_like_dicom_associate(bytes.fromhex("0100000000100001"))  # too short a PDU
    assert not looks_like_dicom_associate(bytes.fromhex("01000000cd000002"))  # version 2
    assert not looks_like_dicom_associate(bytes.fromhex("02000000cd0001"))  # A-ASSOCIATE-AC
    assert not looks_like_dicom_associate(CLIENT_HELLO_HEAD)


def test_explain_first_bytes() -> None:
    assert explain_first_bytes(ASSOCIATE_RQ_HEAD, expecting="tls") == (
        "received a plain DICOM A-ASSOCIATE-RQ on a TLS port: the peer spoke plain DICOM "
        "to it (its TLS is off, or it has the wrong port)"
    )
    assert explain_first_bytes(CLIENT_HELLO_HEAD, expecting="dicom") == (
        "received a TLS ClientHello on a plain DICOM port: the peer spoke TLS to it (its TLS "
        "is on, or it has the wrong port)"
    )
    assert explain_first_bytes(ASSOCIATE_RQ_HEAD, expecting="dicom") is None
    assert explain_first_bytes(CLIENT_HELLO_HEAD, expecting="tls") is None
    assert explain_first_bytes(b"GET / HTTP/1.1", expecting="tls") is None


def test_real_client_hello_is_detected(rsa_pki: DevPKI) -> None:
    server, client = dev_pki_configs(rsa_pki)
    result = handshake(client.client_context_sync(), server.server_context_sync())
    first = result.bytes_to_server[0]
    assert looks_like_tls(first)
    assert explain_first_bytes(first, expecting="dicom") is not None


@given(st.binary(max_size=16))
def test_never_both(head: bytes) -> None:
    assert not (looks_like_tls(head) and looks_like_dicom_associate(head))


def test_plain_dicom_on_tls_port(rsa_pki: DevPKI) -> None:
    server, _ = dev_pki_configs(rsa_pki)
    exc = server_receives(server.server_context_sync(), ASSOCIATE_RQ_HEAD)
    assert exc is not None
    err = translate_ssl_error(exc, side="server", peer="10.0.0.5:11112")
    assert err.reason == "peer does not speak TLS (plain DICOM on this port?)"
    assert str(err) == (
        "TLS handshake with 10.0.0.5:11112 failed: peer does not speak TLS (plain DICOM on "
        "this port?)"
    )


def test_eof_during_handshake(rsa_pki: DevPKI) -> None:
    server, _ = dev_pki_configs(rsa_pki)
    exc = server_receives(server.server_context_sync(), b"")
    assert isinstance(exc, ssl.SSLEOFError)
    err = translate_ssl_error(exc, side="server", peer="p")
    assert err.reason == (
        "peer closed the connection during the TLS handshake (it may not speak TLS, or "
        "refused our certificate)"
    )
    assert translate_ssl_error(ConnectionResetError(), side="client", peer="p").reason == (
        err.reason
    )
    # A client that sent no certificate: a server requiring one (DCMTK, Orthanc)
    # just closes, in TLS 1.3 too, and "refused our certificate" misled.
    assert translate_ssl_error(exc, side="client", peer="p", sent_certificate=False).reason == (
        "peer closed the connection during the TLS handshake (we sent no certificate: the "
        "server most likely requires one; or it does not speak TLS)")


def test_a_client_handshake_the_server_never_answered() -> None:
    """What the client saw decides the reason: no ServerHello and a close (a plain
    DICOM server reading our ClientHello as a PDU and hanging up: dicomnet,
    storescp) is a port without TLS, not a server wanting our certificate; bytes
    that are not a TLS record (an A-ABORT: pynetdicom) are said as such."""
    closed = "the server closed the connection without answering our ClientHello (no TLS " \
        "record came back): it most likely does not speak TLS here (a plain DICOM port?)"
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    for exc in (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), eof):
        for sent in (False, True):
            err = translate_ssl_error(exc, side="client", peer="p", sent_certificate=sent,
                                      server_hello=False)
            assert (err.reason, err.link_failed) == (closed, True)
    not_tls = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    not_tls.reason = "WRONG_VERSION_NUMBER"
    err = translate_ssl_error(not_tls, side="client", peer="p", sent_certificate=False,
                              server_hello=False)
    assert (err.reason, err.link_failed) == (
        "the server answered our ClientHello with bytes that are not a TLS record: it does "
        "not speak TLS here (a plain DICOM port?)", False)
    # Its ServerHello came, then the close: our certificate is the likely cause.
    err = translate_ssl_error(eof, side="client", peer="p", sent_certificate=False,
                              server_hello=True)
    assert err.reason == ("peer closed the connection during the TLS handshake (we sent no "
                          "certificate: the server most likely requires one)")
    # Unknown (a session offered: its cipher is there before any answer): as before.
    assert translate_ssl_error(eof, side="client", peer="p", sent_certificate=False).reason == (
        "peer closed the connection during the TLS handshake (we sent no certificate: the "
        "server most likely requires one; or it does not speak TLS)")


def test_a_reset_during_the_handshake() -> None:
    """A reset (TCP RST) is said as one, and is transient (``link_failed``): met in
    the handshake by a server, or by Python's ssl before it began, on either side
    (the socket no longer connected, the peer's bytes unread). A client keeps the
    hint of a close: a server requiring a certificate resets as it closes."""
    for side, who in (("server", "the client"), ("client", "the server")):
        before = ssl.SSLError(errno.ENOTCONN, "Closed before TLS handshake with data in "
                              "recv buffer.")
        err = translate_ssl_error(before, side=side, peer="p")  # type: ignore[arg-type]
        assert (err.reason, err.link_failed) == (
            f"{who} reset the connection during the TLS handshake", True)
    err = translate_ssl_error(ConnectionResetError(errno.ECONNRESET, "Connection reset by "
                                                   "peer"), side="server", peer="10.0.0.5:2762")
    assert (str(err), err.link_failed) == (
        "TLS handshake with 10.0.0.5:2762 failed: the client reset the connection during the "
        "TLS handshake", True)
    other = OSError(errno.EHOSTUNREACH, "No route to host")
    assert translate_ssl_error(other, side="server", peer="p").reason == (
        "no route to host during the TLS handshake")


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    exc.verify_code = code
    exc.verify_message = message
    return exc


@pytest.mark.parametrize(
    ("code", "side", "reason"),
    [
        (20, "client", "the certificate of the server is signed by an unknown CA (its issuer is "
                       "not in our cafile/capath)"),
        (10, "server", "the certificate of the client has expired"),
        (26, "client", "the certificate of the server is not meant for this use (its extended "
                       "key usage lacks serverAuth, or its key usage lacks digitalSignature "
                       "(keyEncipherment for RSA key exchange))"),
        (12345, "client", "certificate verify failed: something new"),
    ],
)
def test_verify_codes(code: int, side: str, reason: str) -> None:
    err = translate_ssl_error(_verify_error(code, "something new"), side=side,  # type: ignore[arg-type]
                              peer="p")
    assert err.reason == reason


def test_alert_reasons() -> None:
    exc = ssl.SSLError(1, "[SSL: SSLV3_ALERT_CERTIFICATE_EXPIRED] sslv3 alert certificate expired")
    exc.reason = "SSLV3_ALERT_CERTIFICATE_EXPIRED"
    assert translate_ssl_error(exc, side="client", peer="p").reason == (
        "the server refused our certificate: it has expired"
    )
    exc.reason = "SSLV3_ALERT_BAD_CERTIFICATE"
    assert translate_ssl_error(exc, side="server", peer="p").reason == (
        "the client refused our certificate (bad certificate)"
    )
    exc.reason = "SOMETHING_ELSE"
    assert translate_ssl_error(exc, side="server", peer="p").reason == "TLS error: SOMETHING_ELSE"


def test_tls_error_passes_through() -> None:
    original = TLSError("x", reason="y")
    assert translate_ssl_error(original, side="client", peer="p") is original


def test_public_names() -> None:
    for name in security.__all__:
        assert hasattr(security, name), name
    public = {n for n in dir(security) if not n.startswith("_")}  # the lazy names too
    modules = {"certificates", "config", "context_files", "detect", "dhgroups", "errors_map",
               "info", "issuing", "key_password", "pem", "peer_checks", "profiles", "revocation",
               "rotation", "sessions", "trust_store", "x509_load"}
    loading = {"annotations", "importlib", "TYPE_CHECKING"}  # what loads them (PEP 562)
    assert public - modules - loading == set(security.__all__)


def _ssl_error(code: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {code}] (_ssl.c:0)")
    error.library, error.reason = "SSL", code
    return error


def test_records_refused_after_the_handshake_are_said_in_words() -> None:
    """After the handshake a bad record is no "peer does not speak TLS" (it did
    speak it) nor a bare OpenSSL code: integrity failure, plain bytes written into
    the link, or a record type not allowed there."""
    def after(code: str) -> str:
        return translate_ssl_error(_ssl_error(code), side="server", peer="p",
                                   established=True).reason

    assert after("DECRYPTION_FAILED_OR_BAD_RECORD_MAC") == (
        "a TLS record from the client failed its integrity check (RFC 8446 5.2): altered "
        "on the way, or not from this TLS session (DECRYPTION_FAILED_OR_BAD_RECORD_MAC)")
    assert after("WRONG_VERSION_NUMBER") == (
        "the client sent bytes that are not TLS records after the handshake (plain DICOM "
        "written into the TLS link?) (WRONG_VERSION_NUMBER)")
    assert after("BAD_RECORD_TYPE").startswith(
        "the client sent a TLS record of a type not allowed after the handshake")
    # In the handshake the same codes keep their meaning there.
    during = translate_ssl_error(_ssl_error("WRONG_VERSION_NUMBER"), side="server", peer="p")
    assert during.reason == "peer does not speak TLS (plain DICOM on this port?)"
