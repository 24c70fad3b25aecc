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

__all__ = ["anchor_problem", "ca_leaf_problem", "key_minimum", "key_size_problem",
           "too_weak_for_level"]

# OpenSSL security level -> the smallest (RSA and DSA, EC) keys it takes, in bits.
_LEVEL_KEY_BITS = {1: (1024, 160), 2: (2048, 224), 3: (3072, 256), 4: (7680, 384),
                   5: (15360, 512)}
# OpenSSL security level -> the security bits it asks of a signature (SHA-1 gives 63
# since OpenSSL 3.0, MD5 39: collision resistance), and the weakest hash it takes.
_LEVEL_SIGNATURE = {1: (80, "SHA-224"), 2: (112, "SHA-224"), 3: (128, "SHA-256"),
                    4: (192, "SHA-384"), 5: (256, "SHA-512")}
_HASH_BITS = {"md5": 39, "sha1": 63, "sha224": 112, "sha512-224": 112, "sha3-224": 112,
              "sha256": 128, "sha512-256": 128, "sha3-256": 128, "sha384": 192,
              "sha3-384": 192, "sha512": 256, "sha3-512": 256}
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


def anchor_problem(key_type: str, key_bits: int, signature_hash: str | None,
                   profile_name: str | None) -> tuple[str, bool] | None:
    """(what, whether it is the key) when OpenSSL's security level refuses every chain
    through one of our trust anchors (a CA certificate, or a self-signed one, in our
    cafile/capath), whose key and signature hash are given; else None.

    OpenSSL checks the key of each certificate of a chain, the anchor's too
    (X509_V_ERR_CA_KEY_TOO_SMALL, 67; EE_KEY_TOO_SMALL, 66, for a pinned peer's own),
    and the signature of each but the anchor's (CA_MD_TOO_WEAK, 68): pass no
    ``signature_hash`` for a self-signed one (a root signed by itself with SHA-1 is
    taken, an intermediate CA signed with it is not). The profile's own minimums apply
    to the peer's certificate, not to its CAs: said, not checked.
    """
    level, minimum = key_minimum(profile_name)
    if level not in _LEVEL_KEY_BITS:
        return None
    rsa, ec = _LEVEL_KEY_BITS[level]
    if (key_type in ("RSA", "DSA") and key_bits < rsa) or (key_type == "ECDSA" and key_bits < ec):
        words = {"RSA": "an RSA", "DSA": "a DSA", "ECDSA": "an EC"}[key_type]
        return (f"has {words} key of {key_bits} bits, too small for OpenSSL's security level: "
                f"{minimum}", True)
    asked, weakest = _LEVEL_SIGNATURE[level]
    hash_bits = _HASH_BITS.get(signature_hash or "")
    if hash_bits is not None and hash_bits < asked:
        return (f"is signed with {signature_hash}, too weak for OpenSSL's security level "
                f"{level} (it asks {weakest} or stronger)", False)
    return None


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
