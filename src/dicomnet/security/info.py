"""What a TLS handshake negotiated: :class:`SecurityInfo`.

This answers the brief's GetCiphersuiteTLS / GetEncryptionAlgorithmTLS /
GetIntegrityAlgorithmTLS: protocol version, cipher suite by its IANA name,
key exchange, authentication, bulk encryption, record integrity (PS3.15 Annex B
profiles restrict all of them), plus the peer certificate, ALPN (RFC 7301), SNI
(RFC 6066 3) and whether the session was resumed.

Limits of Python 3.11's ``ssl`` module, reported rather than guessed:

- TLS 1.3 suites (RFC 8446 B.4) do not name the key exchange, and Python
  cannot tell which group was used, so ``key_exchange`` is None for TLS 1.3.
- Only the peer's leaf certificate is exposed (``getpeercert(binary_form=True)``),
  so ``peer_certificates`` holds just the leaf; the verified chain is not available.
"""

from __future__ import annotations

import ipaddress
import ssl
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from dicomnet.security.profiles import CipherSuite, suite_by_openssl

if TYPE_CHECKING:  # imported where a handshake is described (cryptography: ~30 ms)
    from dicomnet.security.certificates import CertificateInfo

__all__ = [
    "SecurityInfo",
    "record_sni",
    "security_info_from_ssl",
    "sni_of",
]

Side = Literal["client", "server"]

# The SNI a client sent, per server-side SSLObject/SSLSocket, filled by the
# server context's sni_callback. Weak keys: an entry goes with its connection.
_SNI_SEEN: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()


def record_sni(obj: object, server_name: str | None) -> None:
    """Remember the server name a client sent (called from the server's sni_callback)."""
    if server_name is not None:
        _SNI_SEEN[obj] = server_name


def sni_of(obj: object) -> str | None:
    """The server name the client sent on this server-side connection, if any."""
    return _SNI_SEEN.get(obj)


@dataclass(frozen=True, slots=True)
class SecurityInfo:
    """The security parameters of an established TLS connection (PS3.15 Annex B)."""

    side: Side
    """Which end we are."""
    protocol: str | None
    """Negotiated version, e.g. ``TLSv1.3``."""
    cipher_suite: str | None
    """IANA name, e.g. ``TLS_AES_256_GCM_SHA384``; None if not in our table."""
    openssl_cipher_name: str | None
    """OpenSSL's name for the suite, e.g. ``ECDHE-RSA-AES128-GCM-SHA256``."""
    key_exchange: str | None
    """``ECDHE``, ``DHE`` or ``RSA`` for TLS <= 1.2; None for TLS 1.3 (Python cannot tell)."""
    authentication: str | None
    """Server key type that authenticated the exchange: ``RSA``, ``ECDSA``, ``Ed25519``
    or ``Ed448`` (RFC 8446 4.2.3; under TLS 1.2 an EdDSA key signs for the ECDSA
    suites, RFC 8422 5.1.1, so the suite's name alone would say ECDSA)."""
    authentication_key_bits: int | None
    """Size of that server key."""
    encryption: str | None
    """Bulk cipher, e.g. ``AES-256-GCM``, ``CHACHA20-POLY1305``, ``AES-128-CBC``."""
    encryption_key_bits: int | None
    """Key length of the bulk cipher."""
    integrity: str | None
    """Record integrity: ``AEAD (GCM)``, ``AEAD (Poly1305)``, ``HMAC-SHA1``, ``HMAC-SHA256``..."""
    peer_certificates: tuple[CertificateInfo, ...]
    """The peer's certificate: only the leaf, as Python 3.11 exposes no more; empty if none."""
    local_certificate: CertificateInfo | None
    """Our own certificate, if we presented one."""
    alpn: str | None
    """Application protocol agreed by ALPN (RFC 7301), e.g. ``dicom``."""
    sni: str | None
    """Server name indication: sent (client side) or received (server side)."""
    session_resumed: bool
    """True when an earlier session was resumed (abbreviated handshake)."""

    @property
    def peer_certificate(self) -> CertificateInfo | None:
        """The peer's leaf certificate, if it sent one."""
        return self.peer_certificates[0] if self.peer_certificates else None

    def summary(self) -> str:
        """One line for logs: ``TLSv1.3 TLS_AES_256_GCM_SHA384 (RSA 2048) peer CN=...``."""
        parts = [self.protocol or "?", self.cipher_suite or self.openssl_cipher_name or "?"]
        if self.authentication:
            parts.append(f"({self.authentication} {self.authentication_key_bits})")
        peer = self.peer_certificate
        parts.append(f"peer {peer.subject}" if peer else "peer without certificate")
        return " ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (datetimes as ISO 8601 text)."""
        return {
            "side": self.side,
            "protocol": self.protocol,
            "cipher_suite": self.cipher_suite,
            "openssl_cipher_name": self.openssl_cipher_name,
            "key_exchange": self.key_exchange,
            "authentication": self.authentication,
            "authentication_key_bits": self.authentication_key_bits,
            "encryption": self.encryption,
            "encryption_key_bits": self.encryption_key_bits,
            "integrity": self.integrity,
            "peer_certificates": [c.to_dict() for c in self.peer_certificates],
            "local_certificate": (
                self.local_certificate.to_dict() if self.local_certificate else None
            ),
            "alpn": self.alpn,
            "sni": self.sni,
            "session_resumed": self.session_resumed,
        }


def _suite_from_context(obj: ssl.SSLObject | ssl.SSLSocket, name: str) -> CipherSuite | None:
    """Describe a suite missing from our table from OpenSSL's own description.

    ``SSLContext.get_ciphers()`` lists the enabled suites with their
    ``kea``/``auth``/``symmetric``/``digest`` fields and code point.
    """
    for entry in obj.context.get_ciphers():
        if entry["name"] != name:
            continue
        kea = {"kx-ecdhe": "ECDHE", "kx-dhe": "DHE", "kx-rsa": "RSA"}.get(str(entry["kea"]))
        auth = {"auth-rsa": "RSA", "auth-ecdsa": "ECDSA"}.get(str(entry["auth"]))
        symmetric = str(entry["symmetric"]).upper()
        digest = entry.get("digest")
        if entry["aead"]:
            mode = "Poly1305" if "POLY1305" in symmetric else symmetric.rsplit("-", 1)[-1]
            integrity = f"AEAD ({mode})"
        else:
            integrity = f"HMAC-{str(digest).upper()}" if digest else "unknown"
        return CipherSuite(
            iana="",  # not in our IANA table
            openssl=name,
            code=int(entry["id"]) & 0xFFFF,
            key_exchange=kea,  # type: ignore[arg-type]
            authentication=auth,  # type: ignore[arg-type]
            encryption=symmetric,
            encryption_bits=int(entry["alg_bits"]),
            integrity=integrity,
            tls13=entry["protocol"] == "TLSv1.3",
        )
    return None


#: Key types of CertificateInfo that sign a TLS handshake (RFC 8446 4.2.3).
_SIGNING_KEYS = frozenset({"RSA", "ECDSA", "Ed25519", "Ed448"})


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def security_info_from_ssl(
    obj: ssl.SSLObject | ssl.SSLSocket,
    *,
    side: Side,
    local_cert: CertificateInfo | None,
) -> SecurityInfo:
    """Describe the established connection ``obj`` (call after a successful handshake).

    ``local_cert`` is our own certificate (the context's certfile), needed on the
    server side to report the authentication key, since the server's key is ours.
    """
    from dicomnet.security.certificates import CertificateInfo

    cipher = obj.cipher()
    name = cipher[0] if cipher else None
    protocol = obj.version()
    suite = (suite_by_openssl(name) or _suite_from_context(obj, name)) if name else None

    peer_der = obj.getpeercert(binary_form=True)
    peer_certs = (CertificateInfo.from_der(peer_der),) if peer_der else ()

    # The key that authenticates the handshake is the server's certificate key.
    server_cert = (peer_certs[0] if peer_certs else None) if side == "client" else local_cert
    if server_cert is not None and server_cert.public_key_type in _SIGNING_KEYS:
        authentication: str | None = server_cert.public_key_type
        auth_bits: int | None = server_cert.public_key_bits
    else:
        authentication = suite.authentication if suite else None
        auth_bits = None

    if side == "client":
        hostname = obj.server_hostname
        # Python sends no SNI for an IP address literal (RFC 6066 3 forbids it).
        sni = hostname if hostname and not _is_ip(hostname) else None
    else:
        sni = sni_of(obj)

    is_tls13 = protocol == "TLSv1.3"
    return SecurityInfo(
        side=side,
        protocol=protocol,
        cipher_suite=(suite.iana or None) if suite else None,
        openssl_cipher_name=name,
        key_exchange=None if (is_tls13 or suite is None) else suite.key_exchange,
        authentication=authentication,
        authentication_key_bits=auth_bits,
        encryption=suite.encryption if suite else None,
        encryption_key_bits=suite.encryption_bits if suite else (cipher[2] if cipher else None),
        integrity=suite.integrity if suite else None,
        peer_certificates=peer_certs,
        local_certificate=local_cert,
        alpn=obj.selected_alpn_protocol(),
        sni=sni,
        session_resumed=bool(obj.session_reused),
    )
