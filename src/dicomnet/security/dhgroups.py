"""The finite-field Diffie-Hellman group a TLS 1.2 server offers for DHE suites.

PS3.15 B.9, B.10 and B.11 list ``TLS_DHE_RSA_WITH_AES_*_GCM_*`` suites (RFC 5288).
OpenSSL negotiates them as a server only once the context holds DH parameters,
and Python's ``ssl`` (3.11) neither loads any by default nor exposes OpenSSL's
automatic choice (``SSL_CTX_set_dh_auto``): without this module a dicomnet
server answered a client offering only DHE suites with "no shared cipher".

The group is ffdhe2048, RFC 7919 Appendix A.1: a published group (no
parameters generated here, none to trust), 2048 bits as RFC 9325 4.1 and
PS3.15 B.13 require at least. Its PEM is below; ``tests/security`` checks the
prime against the formula of RFC 7919 A.1.
"""

from __future__ import annotations

import os
import ssl
import tempfile

from dicomnet.errors import ConfigurationError
from dicomnet.security.profiles import Profile, suite_by_openssl

__all__ = ["FFDHE2048_PEM", "client_suites", "load_dhe_group", "offers_dhe"]

FFDHE2048_PEM = """\
-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""
"""RFC 7919 A.1 ffdhe2048 (generator 2) as PKCS #3 DH parameters in PEM."""


def offers_dhe(openssl_names: list[str]) -> bool:
    """True when one of these TLS 1.2 suites (OpenSSL names) uses DHE key exchange."""
    for name in openssl_names:
        suite = suite_by_openssl(name)
        if suite is not None and suite.key_exchange == "DHE":
            return True
    return False


def client_suites(openssl_names: list[str], profile: Profile, *, chosen: bool) -> list[str]:
    """A client's TLS 1.2 suites, without DHE when its profile runs at OpenSSL
    security level 0 (to reach TLS 1.0: B.9), which checks no group size, while
    asking for ``min_dh_bits``: Python's ``ssl`` (3.11) does not say which group a
    handshake used, so a server's 1024-bit group would pass unseen (RFC 7525 4.3,
    RFC 9325 4.1: none under 2048 bits). ECDHE and TLS 1.3 remain. Suites the
    user ``chosen`` are not dropped in silence: ConfigurationError."""
    if profile.security_level != 0 or not profile.min_dh_bits:
        return openssl_names
    dhe = [suite for name in openssl_names
           if (suite := suite_by_openssl(name)) is not None and suite.key_exchange == "DHE"]
    if dhe and chosen:
        raise ConfigurationError(
            f"profile {profile.name!r} runs at OpenSSL security level 0 (to reach TLS 1.0), "
            "which checks no Diffie-Hellman group size: a client cannot offer "
            f"{', '.join(s.iana for s in dhe)} (a server's group may be under the "
            f"{profile.min_dh_bits} bits of RFC 9325 4.1); use bcp195-non-downgrading or "
            "ECDHE suites")
    return [name for name in openssl_names if name not in {s.openssl for s in dhe}]


def load_dhe_group(ctx: ssl.SSLContext) -> None:
    """Give a server context the ffdhe2048 group, so it can negotiate DHE suites.

    ``SSLContext.load_dh_params`` reads only a file, hence the short-lived one.
    """
    fd, path = tempfile.mkstemp(prefix="dicomnet-ffdhe-", suffix=".pem")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(FFDHE2048_PEM)
        ctx.load_dh_params(path)
    finally:
        os.unlink(path)
