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

from dicomnet.security.profiles import suite_by_openssl

__all__ = ["FFDHE2048_PEM", "load_dhe_group", "offers_dhe"]

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
