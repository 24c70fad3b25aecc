"""TLS for DICOM: PS3.15 Annex B secure transport connection profiles.

``TLSConfig`` builds ``ssl.SSLContext`` objects for clients and servers;
``SecurityInfo`` says what a handshake negotiated; ``translate_ssl_error``
turns ``ssl`` failures into a ``TLSError`` with a reason a user can act on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomnet._lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from dicomnet.security.certificates import (
        CertificateAuthority,
        CertificateInfo,
        DevPKI,
        IssuedCert,
        make_dev_pki,
        self_signed,
    )
    from dicomnet.security.config import PeerCertificatePolicy, TLSConfig
    from dicomnet.security.detect import (
        explain_first_bytes,
        looks_like_dicom_associate,
        looks_like_tls,
    )
    from dicomnet.security.errors_map import translate_ssl_error
    from dicomnet.security.info import SecurityInfo, security_info_from_ssl
    from dicomnet.security.pem import key_is_encrypted
    from dicomnet.security.profiles import (
        DEFAULT_PROFILE,
        PROFILES,
        CipherSuite,
        Profile,
        SecurityWarning,
        get_profile,
    )

#: Public name -> the module that defines it, imported on first use (PEP 562):
#: importing one module of this package (the profiles, for SecurityWarning) no
#: longer loads them all, cryptography's x509 with the certificates (~40 ms).
_EXPORTS: dict[str, str] = {
    "CertificateAuthority": ".certificates",
    "CertificateInfo": ".certificates",
    "DevPKI": ".certificates",
    "IssuedCert": ".certificates",
    "key_is_encrypted": ".pem",
    "make_dev_pki": ".certificates",
    "self_signed": ".certificates",
    "PeerCertificatePolicy": ".config",
    "TLSConfig": ".config",
    "explain_first_bytes": ".detect",
    "looks_like_dicom_associate": ".detect",
    "looks_like_tls": ".detect",
    "translate_ssl_error": ".errors_map",
    "SecurityInfo": ".info",
    "security_info_from_ssl": ".info",
    "DEFAULT_PROFILE": ".profiles",
    "PROFILES": ".profiles",
    "CipherSuite": ".profiles",
    "Profile": ".profiles",
    "SecurityWarning": ".profiles",
    "get_profile": ".profiles",
}

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "CertificateAuthority",
    "CertificateInfo",
    "CipherSuite",
    "DevPKI",
    "IssuedCert",
    "PeerCertificatePolicy",
    "Profile",
    "SecurityInfo",
    "SecurityWarning",
    "TLSConfig",
    "explain_first_bytes",
    "get_profile",
    "key_is_encrypted",
    "looks_like_dicom_associate",
    "looks_like_tls",
    "make_dev_pki",
    "security_info_from_ssl",
    "self_signed",
    "translate_ssl_error",
]


# Hidden from type checkers, as in dicomnet/__init__.py: they read the imports above.
if not TYPE_CHECKING:
    __getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
