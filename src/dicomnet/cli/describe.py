"""A certificate and a TLS link described for a person, a field a line (``dicomnet
echo``, ``store``, ``demo``, ``certs show``).

Apart from the commands: ``certs show`` describes a certificate without loading
the network stack the echo command needs.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dicomnet.security.certificates import CertificateInfo
    from dicomnet.security.info import SecurityInfo

__all__ = ["describe_certificate", "describe_security"]


def _bits(name: str | None, bits: int | None) -> str:
    if name is None:
        return "-"
    return f"{name} ({bits} bits)" if bits else name


def describe_certificate(cert: CertificateInfo, indent: str = "  ") -> list[str]:
    """Lines describing a certificate: subject, issuer, names, validity, fingerprint."""
    now = dt.datetime.now(dt.UTC)
    days = (cert.not_after - now).days
    expiry = f"{cert.not_after:%Y-%m-%d %H:%M} UTC"
    expiry += f" (in {days} days)" if cert.not_after > now else " (EXPIRED)"
    rows = [
        ("subject", cert.subject),
        ("issuer", cert.issuer),
        ("names", ", ".join(cert.sans) or "-"),
        ("key", f"{cert.public_key_type} {cert.public_key_bits} bits"),
        ("usage", ", ".join(cert.extended_key_usage) or "any (no extended key usage)"),
        ("valid from", f"{cert.not_before:%Y-%m-%d %H:%M} UTC"),
        ("expires", expiry),
        ("SHA-256", cert.sha256_fingerprint),
    ]
    return [f"{indent}{k:<11} {v}" for k, v in rows]


#: Why a link has no server name: a client sends none for an IP address (RFC 6066 3).
_NO_SNI = {"client": "none sent (the server is named by its IP address)",
           "server": "none received"}


def describe_security(info: SecurityInfo, indent: str = "  ") -> list[str]:
    """Lines describing a TLS connection as negotiated."""
    kx = info.key_exchange or (
        "(TLS 1.3: (EC)DHE, group not reported by Python)" if info.protocol == "TLSv1.3" else "-"
    )
    rows = [
        ("protocol", info.protocol or "-"),
        ("cipher suite", info.cipher_suite or info.openssl_cipher_name or "-"),
        ("key exchange", kx),
        ("authentication", _bits(info.authentication, info.authentication_key_bits)),
        ("encryption", _bits(info.encryption, info.encryption_key_bits)),
        ("integrity", info.integrity or "-"),
        ("ALPN", info.alpn or "-"),
        ("SNI", info.sni or _NO_SNI[info.side]),
    ]
    lines = [f"{indent}{k:<15} {v}" for k, v in rows]
    peer = info.peer_certificate
    if peer is None:
        lines.append(f"{indent}{'peer cert':<15} none presented")
    else:
        lines.append(f"{indent}peer certificate")
        lines.extend(describe_certificate(peer, indent + "  "))
    return lines
