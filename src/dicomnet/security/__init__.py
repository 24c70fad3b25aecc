"""TLS for DICOM: PS3.15 Annex B secure transport connection profiles.

``TLSConfig`` builds ``ssl.SSLContext`` objects for clients and servers;
``SecurityInfo`` says what a handshake negotiated; ``translate_ssl_error``
turns ``ssl`` failures into a ``TLSError`` with a reason a user can act on.
"""

from dicomnet.security.certificates import (
    CertificateAuthority,
    CertificateInfo,
    DevPKI,
    IssuedCert,
    key_is_encrypted,
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
from dicomnet.security.profiles import (
    DEFAULT_PROFILE,
    PROFILES,
    CipherSuite,
    Profile,
    SecurityWarning,
    get_profile,
)

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
