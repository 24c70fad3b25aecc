"""Translate ``ssl`` exceptions into :class:`~dicomnet.errors.TLSError` with a reason a
user can act on.

OpenSSL reports a failed handshake in its own words ("tlsv1 alert unknown ca",
"certificate verify failed: unable to get local issuer certificate"). Users need
to know which check failed, on which side, and what to change. Two sources:

- our own verification of the peer's certificate failed
  (``ssl.SSLCertVerificationError``: ``verify_code`` is an X509_V_ERR_* value);
- the peer refused us and said why in a TLS alert (RFC 8446 6.2, RFC 5246
  7.2.2), which OpenSSL reports as ``reason`` ``TLSV1_ALERT_UNKNOWN_CA``,
  ``SSLV3_ALERT_BAD_CERTIFICATE``... ("the server does not trust our certificate").
"""

from __future__ import annotations

import errno
import ipaddress
import re
import ssl
from typing import Literal

from dicomnet.errors import TLSError
from dicomnet.security.peer_checks import key_minimum

__all__ = ["translate_ssl_error"]

Side = Literal["client", "server"]

# X509_V_ERR_* codes (OpenSSL x509_vfy.h) -> what to tell the user. {who} is
# "the server" or "the client", the peer whose certificate we checked.
_VERIFY_REASONS: dict[int, str] = {
    # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT: the chain reached a CA of the trust store
    # that is not self-signed (an intermediate), and OpenSSL, without partial chains,
    # then wants that CA's own issuer there too: the leaf's issuer is known.
    2: "the certificate of {who} chains up to a CA certificate of ours that is not a root "
    "(not self-signed), and a chain must end in a root: its issuer, the root CA above "
    "it, is missing (add the root CA to our cafile/capath)",
    20: "the certificate of {who} is signed by an unknown CA (its issuer is not in our "
    "cafile/capath)",
    21: "the certificate of {who} is signed by an unknown CA (its issuer is not in our "
    "cafile/capath)",
    # 19 is what an unknown CA usually gives: OpenSSL servers send their root too.
    19: "the certificate of {who} is signed by an unknown CA (its chain ends in a "
    "self-signed root that is not in our cafile/capath)",
    18: "the certificate of {who} is self-signed and not trusted (add it to cafile, or use "
    "a CA-issued one)",
    10: "the certificate of {who} has expired",
    9: "the certificate of {who} is not yet valid (check both clocks)",
    12: "the CRL of {who}'s CA has expired (refresh crlfiles)",
    11: "the CRL of {who}'s CA is not yet valid (check clocks)",
    3: "no CRL for the CA of {who} (crlfiles must hold a CRL from every CA checked)",
    23: "the certificate of {who} has been revoked",
    7: "the certificate signature of {who} is invalid",
    24: "an intermediate certificate of {who} is not a valid CA",
    # OpenSSL's "unsupported certificate purpose": the extended key usage, or the key
    # usage (RFC 5280 4.2.1.3), does not allow TLS in this role.
    26: "the certificate of {who} is not meant for this use (its extended key usage lacks "
    "{usage}, or its key usage lacks digitalSignature (keyEncipherment for RSA key "
    "exchange))",
    62: "host name mismatch: the certificate of {who} is not valid for {host} (hosts are "
    "named by its subjectAltName, RFC 9525 6.3; an old device's certificate naming it in its "
    "subject CN alone: hostname_from_common_name=True)",
    64: "host name mismatch: the certificate of {who} is not valid for IP address {host}",
    # X509_V_ERR_EE_KEY_TOO_SMALL, _CA_KEY_TOO_SMALL, _CA_MD_TOO_WEAK: OpenSSL's
    # security level (SSL_CTX_set_security_level(3)); {minimum} says what it asks.
    66: "the certificate of {who} has a key too small for our security level: {minimum}",
    67: "a CA certificate of {whose} chain (sent by it, or in our cafile/capath) has a key too "
    "small for our security level: {minimum}",
    68: "the certificate of {who}, or a CA certificate of its chain, is signed with a hash too "
    "weak for our security level (SHA-1 or MD5: OpenSSL's security level {level} asks "
    "SHA-224 or stronger)",
}


# OpenSSL reason codes of alerts the peer sent us: it refused our certificate.
_ALERT_REASONS: dict[str, str] = {
    "TLSV1_ALERT_UNKNOWN_CA": "{who} refused our certificate: it does not trust our CA",
    "SSLV3_ALERT_BAD_CERTIFICATE": "{who} refused our certificate (bad certificate)",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "{who} refused our certificate: it has expired",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "{who} refused our certificate: it is revoked",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "{who} refused our certificate (certificate unknown)",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "{who} refused our certificate (unsupported "
    "certificate type or usage)",
    "TLSV1_ALERT_ACCESS_DENIED": "{who} denied access to our certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate (set "
    "certfile/keyfile)",
    "TLSV1_ALERT_DECRYPT_ERROR": "{who} could not verify our handshake signature",
    "TLSV1_ALERT_NO_APPLICATION_PROTOCOL": "{who} does not accept the ALPN protocols we offer",
    "NO_APPLICATION_PROTOCOL": "no ALPN protocol in common with {who}",
}

# The bytes received were not a TLS record: typically a plain DICOM PDU (0x01 ...).
_NOT_TLS_CODES = frozenset({
    "WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "RECORD_LAYER_FAILURE",
    "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL",
})
_NO_CIPHER_CODES = frozenset({
    "NO_SHARED_CIPHER", "SSLV3_ALERT_HANDSHAKE_FAILURE", "NO_CIPHERS_AVAILABLE",
})
# No group in common for the key exchange (RFC 8446 4.2.7-4.2.8, RFC 8422 5.1.1).
_NO_GROUP_CODES = frozenset({"NO_SHARED_GROUPS", "NO_SUITABLE_KEY_SHARE"})
# No signature scheme in common (RFC 8446 4.2.3, RFC 5246 7.4.1.4.1).
_NO_SIGNATURE_CODES = frozenset({
    "NO_SHARED_SIGNATURE_ALGORITHMS", "NO_SUITABLE_SIGNATURE_ALGORITHM",
})
_NO_VERSION_CODES = frozenset({
    "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE",
    "VERSION_TOO_LOW", "VERSION_TOO_HIGH",
})

_NOT_TLS = "peer does not speak TLS (plain DICOM on this port?)"
# What OpenSSL recognised instead of a ClientHello, said as such.
_NOT_TLS_WHAT = {
    "HTTP_REQUEST": "peer sent an HTTP request, not TLS (a web browser or HTTP client on "
    "this port?)",
    "HTTPS_PROXY_REQUEST": "peer sent an HTTP proxy request (CONNECT), not TLS",
    # An SSL 2.0 record header whose hello does not offer TLS: a scanner's probe, or
    # a very old client. SSL 2.0 is prohibited (RFC 6176).
    "UNKNOWN_PROTOCOL": "peer sent an SSL 2.0 ClientHello (prohibited, RFC 6176) or another "
    "protocol, not TLS",
}
_EOF = (
    "peer closed the connection during the TLS handshake (it may not speak TLS, or "
    "refused our certificate)"
)


_RESET = "reset the connection during the TLS handshake"


# A client whose ClientHello got no ServerHello: a plain DICOM server reads it as a
# PDU of unknown type (0x16) and closes (dicomnet, DCMTK) or answers an A-ABORT
# (pynetdicom). A TLS server answers it, or sends an alert: a close there is a
# server dropping connections (busy), hence "most likely" and link_failed.
_NO_ANSWER = (
    "the server closed the connection without answering our ClientHello (no TLS record "
    "came back): it most likely does not speak TLS here (a plain DICOM port?)"
)
_NOT_TLS_ANSWER = (
    "the server answered our ClientHello with bytes that are not a TLS record: it does not "
    "speak TLS here (a plain DICOM port?)"
)


def _eof(side: Side, sent_certificate: bool | None, server_hello: bool | None) -> str:
    """The peer hung up mid-handshake. A client that got no ServerHello says so; one
    that did, and sent no certificate, says that: a server requiring one (DCMTK,
    Orthanc) then simply closes, in TLS 1.3 too."""
    if side == "client" and server_hello is False:
        return _NO_ANSWER
    if side == "client" and sent_certificate is False:
        if server_hello:
            return ("peer closed the connection during the TLS handshake (we sent no "
                    "certificate: the server most likely requires one)")
        return ("peer closed the connection during the TLS handshake (we sent no "
                "certificate: the server most likely requires one; or it does not speak TLS)")
    return _EOF


def _reason_for(
    exc: BaseException, *, side: Side, peer: str, profile: str | None, host: str | None,
    sent_certificate: bool | None = None, server_hello: bool | None = None,
    established: bool = False, peer_certificate: bytes | None = None,
    peer_chain_length: int | None = None,
) -> str:
    who = "the server" if side == "client" else "the client"
    if isinstance(exc, ssl.SSLCertVerificationError):
        template = _VERIFY_REASONS.get(exc.verify_code)
        if template is not None:
            usage = "serverAuth" if side == "client" else "clientAuth"
            level, minimum = key_minimum(profile)
            named = _named_key(peer_certificate) if exc.verify_code == 66 else None
            if named is not None:
                return (f"the certificate of {who} ({named[0]}) has {named[1]}, too small "
                        f"for our security level: {minimum}")
            reason = template.format(who=who, whose=f"{who}'s", host=repr(host or peer),
                                     usage=usage, level=level, minimum=minimum)
            if exc.verify_code in (62, 64) and host is not None:
                reason = _host_mismatch(reason, peer_certificate, host,
                                        address=exc.verify_code == 64)
            if exc.verify_code == 20 and peer_chain_length == 1:
                reason += _sent_alone(peer_certificate, who)
            return reason
        return f"certificate verify failed: {exc.verify_message}"
    if _was_reset(exc, side):
        return f"{who} {_RESET}"
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | EOFError
                  | ConnectionResetError | BrokenPipeError):
        return _eof(side, sent_certificate, server_hello)
    if isinstance(exc, ssl.SSLError):
        reason_code = (exc.reason or "").upper()
        text = str(exc).lower()
        if reason_code in _ALERT_REASONS:
            return _ALERT_REASONS[reason_code].format(who=who)
        if established and reason_code == "SSLV3_ALERT_HANDSHAKE_FAILURE":
            return _after_handshake_failure(side, who)
        if reason_code == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return (
                "the client presented no certificate, but this server requires one "
                "(peer_certificate='required')"
            )
        if established and (reason_code in _NOT_TLS_CODES or reason_code in _BAD_RECORD_CODES):
            return _bad_record(reason_code, who)
        if reason_code in _NOT_TLS_CODES:
            if side == "client" and server_hello is False:
                return _NOT_TLS_ANSWER
            return _NOT_TLS_WHAT.get(reason_code, _NOT_TLS)
        by = f"profile {profile!r}" if profile else "our TLS profile"
        if (reason_code == "SSLV3_ALERT_HANDSHAKE_FAILURE" and side == "client"
                and sent_certificate is False and server_hello is not False):
            # The server's alert: TLS 1.2 sends this one for no shared suite and,
            # as well, for a client certificate it requires and did not get. Without
            # a ServerHello it is the suite: a certificate is asked after it.
            return (f"peer offers no cipher suite allowed by {by}, or (more likely: we "
                    "sent no certificate) the server requires a client certificate")
        if reason_code in _NO_CIPHER_CODES:
            reason = f"peer offers no cipher suite allowed by {by}"
            return reason + _retired_hint(profile) if side == "client" else reason
        if reason_code in _NO_GROUP_CODES:
            return (f"no key exchange group in common with {who} under {by} (its "
                    "supported_groups and key_share, RFC 8446 4.2.7-4.2.8)")
        if reason_code in _NO_SIGNATURE_CODES:
            return (f"no signature algorithm in common with {who} under {by} for the "
                    "certificate in use (signature_algorithms, RFC 8446 4.2.3)")
        if reason_code == "INAPPROPRIATE_FALLBACK":
            # Our side refused a ClientHello marked as a retry at a lower version.
            return (f"{who} retried the handshake at a lower TLS version than it supports "
                    "(TLS_FALLBACK_SCSV, RFC 7507): refused as a possible downgrade")
        if reason_code == "DH_KEY_TOO_SMALL":
            # OpenSSL's security level 2 (every profile but those reaching TLS 1.0)
            # refuses finite-field groups under 2048 bits.
            return (f"{who}'s Diffie-Hellman group (DHE) is smaller than {by} allows "
                    "(2048 bits at least, RFC 9325 4.1)")
        if reason_code in _NO_VERSION_CODES:
            reason = f"peer offers no protocol version allowed by {by}"
            return reason + _retired_version_hint(profile) if side == "client" else reason
        if reason_code == "EXCESSIVE_MESSAGE_SIZE":
            # OpenSSL bounds a certificate message by SSL_CTX_set_max_cert_list
            # (100 KiB); other handshake messages are far smaller.
            return (f"{who} sent a handshake message larger than OpenSSL accepts (a "
                    "certificate chain of more than 100 KiB: too many or too large "
                    "certificates)")
        if reason_code.startswith(("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")):
            # Any other alert of RFC 8446 6.2 / RFC 5246 7.2: its name, in words.
            alert = reason_code.split("_ALERT_", 1)[1].replace("_", " ").lower()
            return f"{who} ended the handshake with a TLS alert: {alert}"
        if "eof" in text and "violation of protocol" in text:
            return _eof(side, sent_certificate, server_hello)
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, TLSError):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror.lower()} during the TLS handshake"
    return f"{type(exc).__name__}: {exc}"


_AFTER_HANDSHAKE = "ended the link with a handshake_failure alert after the handshake"

# Records refused by the record layer (RFC 8446 5.2, RFC 5246 6.2.3) once the
# handshake is done: integrity check failed, or a type not allowed there.
_BAD_RECORD_CODES = frozenset({
    "DECRYPTION_FAILED_OR_BAD_RECORD_MAC", "BAD_RECORD_MAC", "DECRYPTION_FAILED",
    "BAD_RECORD_TYPE", "UNEXPECTED_RECORD", "UNEXPECTED_MESSAGE", "BAD_DECRYPT",
})


def _bad_record(reason_code: str, who: str) -> str:
    """What a record the TLS link refused after its handshake means: bytes that
    are not a record at all (the peer wrote plain DICOM into the link, or
    another program wrote into the connection), a record whose integrity check
    failed (RFC 8446 5.2: altered on the way, or not of this session), or one of
    a type the link does not allow there."""
    if reason_code in _NOT_TLS_CODES:
        return (f"{who} sent bytes that are not TLS records after the handshake (plain "
                f"DICOM written into the TLS link?) ({reason_code})")
    if reason_code in ("BAD_RECORD_TYPE", "UNEXPECTED_RECORD", "UNEXPECTED_MESSAGE"):
        return (f"{who} sent a TLS record of a type not allowed after the handshake "
                f"({reason_code})")
    return (f"a TLS record from {who} failed its integrity check (RFC 8446 5.2): altered "
            f"on the way, or not from this TLS session ({reason_code})")


def _after_handshake_failure(side: Side, who: str) -> str:
    """A handshake_failure alert on a link whose handshake had succeeded: its suite
    was agreed, so it is no "no cipher suite". OpenSSL peers send it when they
    asked to renegotiate (TLS 1.2: a server's HelloRequest, a client's new
    ClientHello, RFC 5246 7.4.1) and we refused (OP_NO_RENEGOTIATION, RFC 9325
    3.5); a TLS 1.3 server may also refuse our certificate so, after our Finished."""
    reason = (f"{who} {_AFTER_HANDSHAKE}: it most likely asked to renegotiate (TLS 1.2 and "
              "earlier), which we refuse (RFC 9325 3.5)")
    return reason + ", or refused our certificate" if side == "client" else reason


def _was_reset(exc: BaseException, side: Side) -> bool:
    """The peer reset the connection (TCP RST): met in the handshake, or by ``ssl``
    before it began (the socket no longer connected, the peer's bytes left unread:
    Python's "Closed before TLS handshake with data in recv buffer."). A client
    reads a reset in the handshake as a close (a server refusing to go on without
    the certificate it requires closes with our bytes unread: a reset): its hint
    then says more (``_eof``)."""
    if isinstance(exc, ssl.SSLError):
        return exc.errno == errno.ENOTCONN
    return side == "server" and isinstance(exc, ConnectionResetError)


def _named_key(der: bytes | None) -> tuple[str, str] | None:
    """(subject, "an RSA key of 1024 bits") of a DER certificate, or None."""
    if der is None:
        return None
    from dicomnet.security.certificates import CertificateInfo  # a failure path: its cost

    try:
        cert = CertificateInfo.from_der(der)
    except ValueError:
        return None
    words = {"RSA": "an RSA", "DSA": "a DSA", "ECDSA": "an EC"}.get(cert.public_key_type)
    return None if words is None else (
        cert.subject, f"{words} key of {cert.public_key_bits} bits")


#: How many of a certificate's host names a mismatch says, before "and N more".
_NAMES_SAID = 4
#: A name the message offers to connect by: letters, digits, dots, hyphens, colons
#: (no wildcard, nothing a hostile certificate could slip into the message's advice).
_HOST_LIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]*")


def _host_mismatch(reason: str, der: bytes | None, host: str, *, address: bool) -> str:
    """The reason for a host-name mismatch (X509_V_ERR_HOSTNAME_MISMATCH 62,
    _IP_ADDRESS_MISMATCH 64) with what the certificate names instead and how to
    reach it: ``der`` is what the server presented (OpenSSL keeps it after the
    failed verification, ``aio.tls_socket.presented_certificate``). Without it,
    or when it cannot be read, ``reason`` as it is."""
    if der is None:
        return reason
    hint = _address_as_dns_name(der, host) if address else ""
    if hint:
        return reason + hint
    names = _host_names(der)
    if names is None:
        return reason
    sans, common_name = names
    base = reason.split(" (hosts are named", 1)[0]  # its generic hint: replaced
    wanted = f"IP:{host}" if address else f"DNS:{host}"
    if sans is None:
        return base + _common_name_only(common_name, host, wanted, address=address)
    if not sans:
        return (f"{base}: its subjectAltName names no host (no DNS or IP entry); reissue "
                f"the certificate with {wanted}")
    shown = ", ".join(sans[:_NAMES_SAID])
    if len(sans) > _NAMES_SAID:
        shown += f" and {len(sans) - _NAMES_SAID} more"
    # RFC 6125 6.4.4: a client checks the CN only when there is no subjectAltName.
    ignored = (f"; its subject CN names {host} too, but a client ignores the CN of a "
               "certificate that has a subjectAltName, RFC 6125 6.4.4"
               if common_name is not None and common_name.lower() == host.lower() else "")
    one = "that name" if len(sans) == 1 else "one of these names"
    concrete = [name.split(":", 1)[1] for name in sans
                if _HOST_LIKE.fullmatch(name.split(":", 1)[1])]
    by_name = (f", or keep this {'address' if address else 'host'} and check the "
               f"certificate against {'it' if len(sans) == 1 else 'one of them'} "
               f"(server_hostname='{concrete[0]}')" if concrete else "")
    return (f"{base}: it names {shown} (subjectAltName{ignored}); connect by {one}"
            f"{by_name}, or reissue the certificate with {wanted}")


def _common_name_only(common_name: str | None, host: str, wanted: str, *,
                      address: bool) -> str:
    """What a certificate without subjectAltName names: its subject CN alone, which
    RFC 9525 6.3 no longer takes for a host (RFC 6125 6.4.4 let a client fall back
    to it; hostname_from_common_name=True does), and never for an IP address
    (OpenSSL's X509_check_ip reads iPAddress entries only, RFC 5280 4.2.1.6)."""
    if common_name is None:
        return (f": it names no host (no subjectAltName, no subject CN); reissue the "
                f"certificate with {wanted}")
    said = f": it has no subjectAltName, only its subject CN {common_name!r}"
    if address:
        reason = (f"{said}, and an IP address is matched by an IP subjectAltName alone, "
                  "never by the CN (RFC 5280 4.2.1.6)")
        if not _HOST_LIKE.fullmatch(common_name) or _is_address(common_name):
            return f"{reason}; reissue the certificate with {wanted}"
        return (f"{reason}; reissue the certificate with {wanted}, or, for an old "
                "device, connect by that name (or keep this address and give "
                f"server_hostname='{common_name}') with hostname_from_common_name=True")
    reason = (f"{said}: hosts are named by the subjectAltName (RFC 9525 6.3; RFC 6125 "
              "6.4.4 let clients fall back to the CN)")
    if common_name.lower() == host.lower():
        return (f"{reason}; reissue the certificate with {wanted}, or, for an old device, "
                "take its CN: hostname_from_common_name=True")
    if not _HOST_LIKE.fullmatch(common_name):
        return f"{reason}; reissue the certificate with {wanted}"
    return (f"{reason}; reissue the certificate with {wanted}, or, for an old device, "
            f"connect by that name (server_hostname='{common_name}') with "
            "hostname_from_common_name=True")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host_names(der: bytes) -> tuple[list[str] | None, str | None] | None:
    """(its subjectAltName's DNS and IP entries as "DNS:name", "IP:address", in
    their order, None without that extension; its subject CN or None), or None
    when ``der`` cannot be read."""
    from cryptography import x509  # a failure path: its cost
    from cryptography.x509.oid import NameOID

    from dicomnet.security.x509_load import (
        EXTENSION_ERRORS,
        load_der_certificate,
        read_extensions,
        readable_name,
    )

    try:
        cert, _ = load_der_certificate(der)
        subject = readable_name(cert)  # quietly: a peer's odd attribute lengths
        if subject is None:
            return None
        cns = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(cns[0].value) if cns else None
        try:
            entries = read_extensions(cert).get_extension_for_class(
                x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return None, common_name
    except EXTENSION_ERRORS:  # ValueError among them
        return None
    sans = [f"DNS:{_printable(entry.value)}" if isinstance(entry, x509.DNSName)
            else f"IP:{entry.value}"
            for entry in entries if isinstance(entry, x509.DNSName | x509.IPAddress)]
    return sans, common_name


def _printable(text: str) -> str:
    """``text`` with what would break a one-line message escaped (a certificate's
    names are the peer's to choose)."""
    return text if text.isprintable() else ascii(text)[1:-1]


def _address_as_dns_name(der: bytes | None, address: str) -> str:
    """The hint for a certificate naming ``address`` in a dNSName subjectAltName
    ("DNS:10.0.0.5" in an openssl config), which matches no IP address: only an
    iPAddress entry does (RFC 5280 4.2.1.6, RFC 9525 6.2.1). Empty otherwise."""
    if der is None:
        return ""
    from cryptography import x509  # a failure path: its cost

    from dicomnet.security.x509_load import EXTENSION_ERRORS, load_der_certificate

    try:
        names = load_der_certificate(der)[0].extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        return ""
    except EXTENSION_ERRORS:  # ValueError among them
        return ""
    if address.lower() not in (name.lower() for name in names):
        return ""
    return (f" (it names {address} as a DNS name, which matches no address: an IP address "
            f"needs an IP subjectAltName, RFC 5280 4.2.1.6; reissue it with IP:{address})")


def _retired_hint(profile: str | None) -> str:
    """For a client of a current profile that shares no suite with its server: the
    retired profiles whose static-RSA suites an older peer may speak alone (PS3.15
    B.9, B.3; B.1 when this OpenSSL has 3DES). Which one that peer takes is not
    known here (its alert does not say): B.9 first, as it still offers the
    forward-secret suites first. Empty for a retired profile, the user's choice."""
    from dicomnet.security.profiles import PROFILES, openssl_has_3des

    current = PROFILES.get(profile or "")
    if current is None or current.retired:
        return ""
    basic = " or profile='basic' (B.1, 3DES)" if openssl_has_3des() else ""
    return (" (an older peer may speak only the suites of a retired profile: try "
            "profile='bcp195' (PS3.15 B.9: its forward-secret suites first, then "
            f"TLS_RSA_WITH_AES_128_CBC_SHA, TLS 1.0 and up), else profile='aes' (B.3){basic}; "
            "weaker, they warn)")


def _retired_version_hint(profile: str | None) -> str:
    """For a client of a current profile (TLS 1.2 and up) that shares no protocol
    version with its server: that server speaks TLS 1.0 or 1.1 only, which the
    retired profiles B.9 and B.3 still reach (PS3.15 B.9, B.3). Empty for a
    retired profile, the user's choice."""
    from dicomnet.security.profiles import PROFILES

    current = PROFILES.get(profile or "")
    if current is None or current.retired:
        return ""
    return (" (an older peer may speak only TLS 1.0 or 1.1: try profile='bcp195' "
            "(PS3.15 B.9, TLS 1.0 and up), else profile='aes' (B.3); weaker, they warn)")


def _sent_alone(der: bytes | None, who: str) -> str:
    """The hint for X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY (20) when the peer
    sent its certificate and nothing after it (RFC 8446 4.4.2, RFC 5246 7.4.2: the
    chain follows the leaf): the issuer OpenSSL could not find is the leaf's, and
    the leaf is not self-signed (that is code 18), so that issuer is either a root
    we lack or an intermediate the peer should have sent. Empty otherwise (code 20
    with CAs sent comes from higher up: their root is the one missing)."""
    if der is None:
        return ""
    from dicomnet.security.certificates import CertificateInfo  # a failure path: its cost

    try:
        issuer = CertificateInfo.from_der(der).issuer
    except ValueError:
        return ""
    peer = who.removeprefix("the ")
    return (f"; {who} sent this certificate alone, with no CA certificate after it: if its "
            f"issuer ({issuer}) is an intermediate CA, the {peer} is not sending it "
            "(configure its certificate chain file: its certificate followed by the "
            "intermediates), or add that intermediate to our cafile/capath beside the root")


def translate_ssl_error(
    exc: BaseException,
    *,
    side: Side,
    peer: str,
    profile: str | None = None,
    host: str | None = None,
    sent_certificate: bool | None = None,
    server_hello: bool | None = None,
    established: bool = False,
    peer_certificate: bytes | None = None,
    peer_chain_length: int | None = None,
) -> TLSError:
    """A :class:`TLSError` explaining ``exc`` (raised during or right after a handshake).

    ``side`` is our role, ``peer`` names the other end (``host:port``) for the
    message, ``profile`` the PS3.15 profile in use, ``host`` the name we checked
    the server certificate against, ``sent_certificate`` whether we (a client)
    had a certificate to present, ``server_hello`` whether the server answered our
    ClientHello with its ServerHello (a client's; None: not known), ``established``
    whether ``exc`` ended a link whose handshake had succeeded, ``peer_certificate``
    the DER of the certificate the peer presented, when known (a client's failed
    verification: ``aio.tls_socket.presented_certificate``), named in a reason
    about its key or, for a host-name mismatch, with the names it holds instead,
    ``peer_chain_length`` how many certificates it sent (the same
    case: a leaf sent alone, without its intermediates, is said). The returned
    error's ``reason`` is the one-line explanation; chain it with ``raise ... from exc``.
    """
    if isinstance(exc, TLSError):
        return exc
    reason = _reason_for(exc, side=side, peer=peer, profile=profile, host=host,
                         sent_certificate=sent_certificate, server_hello=server_hello,
                         established=established, peer_certificate=peer_certificate,
                         peer_chain_length=peer_chain_length)
    # A refused renegotiation ends a link whose handshake had succeeded.
    what = "TLS link" if _AFTER_HANDSHAKE in reason else "TLS handshake"
    # Transient: the link failed, not a check (a caller may try again).
    return TLSError(f"{what} with {peer} failed: {reason}", reason=reason,
                    link_failed=reason in (_EOF, _NO_ANSWER) or reason.endswith(_RESET))
