"""Checks of a certificate that OpenSSL, as Python's ``ssl`` drives it, does not make.

:meth:`TLSConfig.check_established <dicomnet.security.config.TLSConfig.check_established>`
runs them once the handshake is done, before any DICOM byte; the key-size rule
applies to our own certificate too, when a context is built.
"""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from dicomnet.security.profiles import PROFILES

if TYPE_CHECKING:
    from dicomnet.security.certificates import CertificateInfo
    from dicomnet.security.profiles import Profile

__all__ = ["ca_leaf_problem", "key_minimum", "key_size_problem", "too_weak_for_level"]

# OpenSSL security level -> the smallest (RSA and DSA, EC) keys it takes, in bits.
_LEVEL_KEY_BITS = {1: (1024, 160), 2: (2048, 224), 3: (3072, 256), 4: (7680, 384),
                   5: (15360, 512)}
#: Python's ssl sets level 2 (its default cipher string); profiles without their own keep it.
_DEFAULT_LEVEL = 2


def key_size_problem(cert: CertificateInfo, profile: Profile) -> str | None:
    """Why ``cert``'s key is smaller than ``profile`` allows (PS3.15 B.11, B.12, B.13:
    RSA keys of 2048 bits at least, EC keys of 256 where the profile says so), or None."""
    if cert.public_key_type == "RSA" and cert.public_key_bits < profile.min_rsa_bits:
        return (f"has an RSA key of {cert.public_key_bits} bits; profile {profile.name!r} "
                f"({profile.section}) requires at least {profile.min_rsa_bits}")
    if cert.public_key_type == "ECDSA" and cert.public_key_bits < profile.min_ec_bits:
        return (f"has an EC key of {cert.public_key_bits} bits; profile {profile.name!r} "
                f"({profile.section}) requires at least {profile.min_ec_bits}")
    return None


def key_minimum(profile_name: str | None) -> tuple[int, str]:
    """(OpenSSL's security level, the keys it and the profile ask) for ``profile_name``
    (None or an unknown name: the level alone)."""
    profile = PROFILES.get(profile_name or "")
    level = _DEFAULT_LEVEL if profile is None or profile.security_level is None else (
        profile.security_level)
    rsa, ec = _LEVEL_KEY_BITS.get(level, (0, 0))
    text = (f"OpenSSL's security level {level} asks RSA and DSA keys of {rsa} bits at least, "
            f"EC keys of {ec}")
    stricter = [f"{kind} keys of {bits}" for kind, bits, floor in (
        ("RSA", profile.min_rsa_bits if profile else 0, rsa),
        ("EC", profile.min_ec_bits if profile else 0, ec)) if bits > floor]
    if profile is not None and stricter:
        text += f"; profile {profile.name!r} ({profile.section}) asks " + ", ".join(stricter)
    return level, text


def too_weak_for_level(certfile: Path, code: str, profile_name: str) -> str:
    """What makes our own certificate (the first in ``certfile``) too weak for OpenSSL's
    security level, ``code`` being what ``load_cert_chain`` said (``EE_KEY_TOO_SMALL``,
    ``CA_MD_TOO_WEAK``): its key type and size, or its signature hash, and what the
    level asks."""
    from dicomnet.security.certificates import CertificateInfo

    level, minimum = key_minimum(profile_name)
    cert: CertificateInfo | None
    try:
        cert = CertificateInfo.from_pem_file(certfile)
    except (OSError, ValueError):
        cert = None  # said without its key, then
    if code == "CA_MD_TOO_WEAK":
        signed = f"is signed with {cert.signature_hash}" if cert and cert.signature_hash else (
            "is signed with a hash")
        return (f"{signed}, too weak for OpenSSL's security level {level} (it asks SHA-224 "
                "or stronger); have it signed again with SHA-256")
    key = (f"has an {cert.public_key_type} key of {cert.public_key_bits} bits"
           if cert and cert.public_key_type in ("RSA", "ECDSA", "DSA") else "has a key")
    return f"{key}, too small for OpenSSL's security level: {minimum}; make one with a larger key"


def ca_leaf_problem(obj: ssl.SSLObject | ssl.SSLSocket, cert: CertificateInfo,
                    who: str) -> str | None:
    """Why the peer's verified leaf ``cert`` is refused as a CA's certificate, or None.

    RFC 5280 4.2.1.9: basicConstraints CA:TRUE says the subject is a CA, and
    4.2.1.3 gives a CA's key the signing of certificates (keyCertSign). A peer
    whose own certificate says CA:TRUE, signed by a CA we trust, is using a CA's
    key as its identity, and that key can sign more identities that we would
    trust as well. OpenSSL takes such a leaf (it checks the CA flag only on the
    certificates above it), so it is refused here, after the handshake.

    Not refused: a CA:TRUE certificate that is itself one of our trust anchors (in
    cafile or capath), such as a peer's self-signed certificate pinned there
    (``openssl req -x509`` sets CA:TRUE), a common DICOM set-up. Trusting it as an
    anchor already trusts whatever its key signs, so refusing it as a leaf would
    protect nothing. Nor is a peer whose chain was not verified (``verify_peer``
    off, a server asking no certificate): nothing about it is checked.

    ``who`` names the peer in the reason ("the server", "the client"). A capath's
    certificates are in the context's store once a handshake has looked them up,
    which this one, having verified the chain, did.
    """
    if not cert.is_ca or obj.context.verify_mode == ssl.CERT_NONE:
        return None
    fingerprint = cert.sha256_fingerprint.replace(":", "").lower()
    anchors: list[bytes] = obj.context.get_ca_certs(binary_form=True)
    if any(hashlib.sha256(der).hexdigest() == fingerprint for der in anchors):
        return None
    return (f"the certificate of {who} ({cert.subject}) is a CA certificate (basicConstraints "
            "CA:TRUE), not a node's own, and is not one of our trust anchors: a CA's key signs "
            "certificates (RFC 5280 4.2.1.9) and could sign more identities; give that node "
            "a certificate of its own (CA:FALSE), or take this one with "
            "allow_ca_peer_certificate=True")
