"""Checks of a certificate that OpenSSL, as Python's ``ssl`` drives it, does not make.

:meth:`TLSConfig.check_established <dicomnet.security.config.TLSConfig.check_established>`
runs them once the handshake is done, before any DICOM byte; the key-size rule
applies to our own certificate too, when a context is built.
"""

from __future__ import annotations

import hashlib
import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dicomnet.security.certificates import CertificateInfo
    from dicomnet.security.profiles import Profile

__all__ = ["ca_leaf_problem", "key_size_problem"]


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
