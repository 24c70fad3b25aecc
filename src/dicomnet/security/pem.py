"""What a PEM file says of itself, read without ``cryptography`` (whose import
costs every TLS context ~30 ms): building a context only needs to know whether
its private key asks for a password."""

from __future__ import annotations

__all__ = ["key_is_encrypted"]


def key_is_encrypted(pem: bytes) -> bool:
    """Whether a PEM private key is password protected.

    PKCS#8 says so in its label (``ENCRYPTED PRIVATE KEY``, RFC 5958 / RFC 7468
    section 11); the traditional OpenSSL format in a ``Proc-Type: 4,ENCRYPTED``
    header (RFC 1421).
    """
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem or b"Proc-Type: 4,ENCRYPTED" in pem
