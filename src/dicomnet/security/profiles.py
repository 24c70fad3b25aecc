"""DICOM Secure Transport Connection Profiles (PS3.15 Annex B) as data.

Each :class:`Profile` says which TLS versions and which TLS 1.2 cipher suites a
PS3.15 Annex B profile allows, and which key sizes it demands. Cipher suites are
named with their IANA names (RFC 8446 B.4, RFC 5246 A.5, RFC 5289, RFC 7905,
RFC 7251); :data:`SUITES` maps them to OpenSSL's names and describes them
(key exchange, authentication, encryption, integrity), which is what
:mod:`dicomnet.security.info` reports after a handshake.

Profiles, newest first:

- ``bcp195-rfc9325`` (PS3.15 B.12, the default): BCP 195 = RFC 8996 + RFC 9325.
  TLS 1.2 required, 1.3 preferred; TLS 1.2 limited to the four ECDHE AES-GCM
  suites that RFC 9325 section 4.2 recommends; RSA certificate keys of 2048 bits
  or more (RFC 9325 4.5).
- ``bcp195-rfc9325-modified`` (PS3.15 B.13): only ECDHE with AEAD ciphers,
  RSA keys of 2048 bits or more, EC keys of 256 bits or more, DHE groups of
  2048 bits or more; no extra suites may be added.
- ``bcp195`` (PS3.15 B.9, retired): RFC 7525; may fall back to TLS 1.0 and to
  ``TLS_RSA_WITH_AES_128_CBC_SHA`` for peers of the AES profile.
- ``bcp195-non-downgrading`` (PS3.15 B.10, retired): as B.9 without falling
  back below TLS 1.2 nor to non-AEAD suites.
- ``bcp195-extended`` (PS3.15 B.11, retired): TLS 1.2 only, AEAD suites only.
- ``aes`` (PS3.15 B.3, retired): ``TLS_RSA_WITH_AES_128_CBC_SHA`` (+3DES).
- ``basic`` (PS3.15 B.1, retired): ``TLS_RSA_WITH_3DES_EDE_CBC_SHA``.

Python's ``ssl`` module (3.11) cannot choose TLS 1.3 suites
(``SSL_CTX_set_ciphersuites`` is not exposed): OpenSSL's defaults are used,
``TLS_AES_256_GCM_SHA384``, ``TLS_CHACHA20_POLY1305_SHA256`` and
``TLS_AES_128_GCM_SHA256``, all of which every profile here allows.
``Profile.tls13_ciphersuites`` lists what the profile permits; the negotiated
suite is checked against it after the handshake. One shortfall follows: B.13
says servers shall support all of its TLS 1.3 suites, among them
``TLS_AES_128_CCM_SHA256`` and ``TLS_AES_128_CCM_8_SHA256``, which OpenSSL has
but does not enable by default and Python cannot turn on; a B.13 client that
offers only those meets no shared suite here.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Literal

from dicomnet.errors import ConfigurationError

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "SUITES",
    "CipherSuite",
    "Profile",
    "SecurityWarning",
    "get_profile",
    "openssl_has_3des",
    "suite_by_iana",
    "suite_by_openssl",
    "to_openssl_names",
]


class SecurityWarning(UserWarning):
    """A weak or unverified TLS setting was chosen on purpose (legacy profile, no checks)."""


KeyExchange = Literal["ECDHE", "DHE", "RSA"]


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """One TLS cipher suite, described from its IANA registry entry.

    For TLS 1.3 suites (RFC 8446 B.4) the key exchange and authentication are
    not part of the suite, so ``key_exchange`` and ``authentication`` are None.
    """

    iana: str
    """IANA name, e.g. ``TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256``."""
    openssl: str
    """OpenSSL's name for it, e.g. ``ECDHE-RSA-AES128-GCM-SHA256``."""
    code: int
    """The two-byte code point of the TLS Cipher Suites registry."""
    key_exchange: KeyExchange | None
    """How the premaster secret is agreed (TLS <= 1.2 only)."""
    authentication: Literal["RSA", "ECDSA"] | None
    """Which server key type signs the exchange (TLS <= 1.2 only)."""
    encryption: str
    """Bulk cipher and mode, e.g. ``AES-128-GCM``, ``CHACHA20-POLY1305``."""
    encryption_bits: int
    """Key length of the bulk cipher (168 for 3DES, whose strength is 112)."""
    integrity: str
    """Record integrity: ``AEAD (GCM)``, ``AEAD (Poly1305)``, ``HMAC-SHA1``..."""
    tls13: bool = False
    """True for the TLS 1.3 suites, which only TLS 1.3 uses."""

    @property
    def aead(self) -> bool:
        """True when the record protection is an AEAD cipher (RFC 5116)."""
        return self.integrity.startswith("AEAD")


def _s(  # noqa: PLR0917 - one positional row per table entry reads best
    iana: str,
    openssl: str,
    code: int,
    kx: KeyExchange | None,
    au: Literal["RSA", "ECDSA"] | None,
    enc: str,
    bits: int,
    integrity: str,
) -> CipherSuite:
    return CipherSuite(iana, openssl, code, kx, au, enc, bits, integrity, tls13=kx is None)


_GCM, _POLY, _CCM, _CCM8 = "AEAD (GCM)", "AEAD (Poly1305)", "AEAD (CCM)", "AEAD (CCM-8)"

# Every suite a profile below allows, plus the common TLS 1.2 ones a peer may
# pick when the user overrides the list. Code points: IANA TLS Cipher Suites
# registry; tests check each against OpenSSL's own id.
SUITES: tuple[CipherSuite, ...] = (
    # TLS 1.3 (RFC 8446 B.4)
    _s("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", 0x1301, None, None,
       "AES-128-GCM", 128, _GCM),
    _s("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", 0x1302, None, None,
       "AES-256-GCM", 256, _GCM),
    _s("TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256", 0x1303, None, None,
       "CHACHA20-POLY1305", 256, _POLY),
    _s("TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_SHA256", 0x1304, None, None,
       "AES-128-CCM", 128, _CCM),
    _s("TLS_AES_128_CCM_8_SHA256", "TLS_AES_128_CCM_8_SHA256", 0x1305, None, None,
       "AES-128-CCM-8", 128, _CCM8),
    # ECDHE + AEAD (RFC 5289, RFC 7905, RFC 7251)
    _s("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02B,
       "ECDHE", "ECDSA", "AES-128-GCM", 128, _GCM),
    _s("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384", 0xC02C,
       "ECDHE", "ECDSA", "AES-256-GCM", 256, _GCM),
    _s("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256", 0xC02F,
       "ECDHE", "RSA", "AES-128-GCM", 128, _GCM),
    _s("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384", 0xC030,
       "ECDHE", "RSA", "AES-256-GCM", 256, _GCM),
    _s("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305", 0xCCA8,
       "ECDHE", "RSA", "CHACHA20-POLY1305", 256, _POLY),
    _s("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305",
       0xCCA9, "ECDHE", "ECDSA", "CHACHA20-POLY1305", 256, _POLY),
    _s("TLS_ECDHE_ECDSA_WITH_AES_128_CCM", "ECDHE-ECDSA-AES128-CCM", 0xC0AC,
       "ECDHE", "ECDSA", "AES-128-CCM", 128, _CCM),
    _s("TLS_ECDHE_ECDSA_WITH_AES_256_CCM", "ECDHE-ECDSA-AES256-CCM", 0xC0AD,
       "ECDHE", "ECDSA", "AES-256-CCM", 256, _CCM),
    _s("TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", "ECDHE-ECDSA-AES128-CCM8", 0xC0AE,
       "ECDHE", "ECDSA", "AES-128-CCM-8", 128, _CCM8),
    _s("TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8", "ECDHE-ECDSA-AES256-CCM8", 0xC0AF,
       "ECDHE", "ECDSA", "AES-256-CCM-8", 256, _CCM8),
    # DHE + AEAD (RFC 5288, RFC 7905)
    _s("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256", 0x009E,
       "DHE", "RSA", "AES-128-GCM", 128, _GCM),
    _s("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "DHE-RSA-AES256-GCM-SHA384", 0x009F,
       "DHE", "RSA", "AES-256-GCM", 256, _GCM),
    _s("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "DHE-RSA-CHACHA20-POLY1305", 0xCCAA,
       "DHE", "RSA", "CHACHA20-POLY1305", 256, _POLY),
    # ECDHE + CBC (RFC 4492, RFC 5289)
    _s("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA", 0xC009,
       "ECDHE", "ECDSA", "AES-128-CBC", 128, "HMAC-SHA1"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA", 0xC00A,
       "ECDHE", "ECDSA", "AES-256-CBC", 256, "HMAC-SHA1"),
    _s("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA", 0xC013,
       "ECDHE", "RSA", "AES-128-CBC", 128, "HMAC-SHA1"),
    _s("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA", 0xC014,
       "ECDHE", "RSA", "AES-256-CBC", 256, "HMAC-SHA1"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256", 0xC023,
       "ECDHE", "ECDSA", "AES-128-CBC", 128, "HMAC-SHA256"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "ECDHE-ECDSA-AES256-SHA384", 0xC024,
       "ECDHE", "ECDSA", "AES-256-CBC", 256, "HMAC-SHA384"),
    _s("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256", 0xC027,
       "ECDHE", "RSA", "AES-128-CBC", 128, "HMAC-SHA256"),
    _s("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "ECDHE-RSA-AES256-SHA384", 0xC028,
       "ECDHE", "RSA", "AES-256-CBC", 256, "HMAC-SHA384"),
    # DHE + CBC
    _s("TLS_DHE_RSA_WITH_AES_128_CBC_SHA", "DHE-RSA-AES128-SHA", 0x0033,
       "DHE", "RSA", "AES-128-CBC", 128, "HMAC-SHA1"),
    _s("TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "DHE-RSA-AES256-SHA", 0x0039,
       "DHE", "RSA", "AES-256-CBC", 256, "HMAC-SHA1"),
    # static RSA key transport (RFC 5246, RFC 5288): the retired AES and Basic profiles
    _s("TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA", 0x002F,
       "RSA", "RSA", "AES-128-CBC", 128, "HMAC-SHA1"),
    _s("TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA", 0x0035,
       "RSA", "RSA", "AES-256-CBC", 256, "HMAC-SHA1"),
    _s("TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256", 0x003C,
       "RSA", "RSA", "AES-128-CBC", 128, "HMAC-SHA256"),
    _s("TLS_RSA_WITH_AES_256_CBC_SHA256", "AES256-SHA256", 0x003D,
       "RSA", "RSA", "AES-256-CBC", 256, "HMAC-SHA256"),
    _s("TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256", 0x009C,
       "RSA", "RSA", "AES-128-GCM", 128, _GCM),
    _s("TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384", 0x009D,
       "RSA", "RSA", "AES-256-GCM", 256, _GCM),
    _s("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA", 0x000A,
       "RSA", "RSA", "3DES-EDE-CBC", 168, "HMAC-SHA1"),
)

_BY_IANA = {s.iana: s for s in SUITES}
_BY_OPENSSL = {s.openssl: s for s in SUITES}


def suite_by_iana(name: str) -> CipherSuite | None:
    """The suite with this IANA name (case-insensitive), or None if not in :data:`SUITES`."""
    return _BY_IANA.get(name.upper())


def suite_by_openssl(name: str) -> CipherSuite | None:
    """The suite with this OpenSSL name, or None if not in :data:`SUITES`."""
    return _BY_OPENSSL.get(name)


def to_openssl_names(names: tuple[str, ...] | list[str]) -> list[str]:
    """Translate IANA or OpenSSL suite names to OpenSSL names, keeping the order.

    Raises ConfigurationError naming the first unknown suite. TLS 1.3 suites are
    refused here: Python's ``ssl`` cannot select them (see the module docstring).
    """
    out: list[str] = []
    for name in names:
        suite = suite_by_iana(name) or suite_by_openssl(name)
        if suite is None:
            known = ", ".join(s.iana for s in SUITES if not s.tls13)
            raise ConfigurationError(f"unknown TLS cipher suite {name!r}; known: {known}")
        if suite.tls13:
            raise ConfigurationError(
                f"{suite.iana} is a TLS 1.3 suite: TLS 1.3 suites cannot be chosen with "
                "Python's ssl module (OpenSSL's AEAD defaults are used); list TLS 1.2 suites"
            )
        out.append(suite.openssl)
    return out


_TLS13_DEFAULT = (
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
)
_TLS13_ALL = (*_TLS13_DEFAULT, "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256")


@dataclass(frozen=True, slots=True)
class Profile:
    """One Secure Transport Connection Profile of PS3.15 Annex B.

    ``tls12_suites`` is in order of preference, strongest first; as a server we
    choose by our own order (OpenSSL's server preference, RFC 9325 4.2 advice to
    pick the strongest suite the client offers).
    """

    name: str
    """Short name used in configuration and on the command line."""
    title: str
    """The profile's name in the standard."""
    section: str
    """Where the standard defines it, e.g. ``PS3.15 B.12``."""
    description: str
    """One sentence on what it allows."""
    minimum_version: ssl.TLSVersion
    """Lowest TLS version negotiated."""
    maximum_version: ssl.TLSVersion
    """Highest TLS version negotiated."""
    tls12_suites: tuple[str, ...]
    """IANA names of the suites allowed with TLS 1.2 and older, preferred first."""
    tls13_ciphersuites: tuple[str, ...] | None = _TLS13_DEFAULT
    """IANA names of the TLS 1.3 suites allowed; None means OpenSSL's defaults."""
    legacy: bool = False
    """Weak by today's standards: a TLSConfig naming it warns (SecurityWarning) when its
    first context is built, not again when it is rebuilt (a certificate rotation)."""
    retired: bool = False
    """Retired from PS3.15; kept by name so old peers can still be reached."""
    security_level: int | None = None
    """OpenSSL ``@SECLEVEL`` to force (old suites and TLS < 1.2 need 0), else the default."""
    min_rsa_bits: int = 0
    """Smallest RSA key accepted in certificates (ours and the peer's); 0: OpenSSL decides."""
    min_ec_bits: int = 0
    """Smallest EC key accepted in certificates; 0: OpenSSL decides."""
    min_dh_bits: int = 0
    """Smallest finite-field DHE group the profile asks for. Enforced by OpenSSL's
    security level (2, the default, refuses groups under 2048 bits), not by
    dicomnet: Python's ``ssl`` does not say which group a handshake used. A
    client at security level 0 (B.9, reaching TLS 1.0) cannot enforce it, so it
    offers no DHE suite (``dhgroups.client_suites``); a dicomnet server offers
    RFC 7919's ffdhe2048 only (:mod:`dicomnet.security.dhgroups`)."""
    allows_extra_suites: bool = True
    """False when the standard forbids suites beyond ``tls12_suites`` (B.11, B.13)."""
    requires: tuple[str, ...] = field(default=())
    """OpenSSL suites that must be available for this profile to be usable at all."""

    @property
    def tls12_ciphers(self) -> str:
        """The OpenSSL cipher string for TLS <= 1.2, with ``@SECLEVEL`` when forced."""
        return cipher_string(to_openssl_names(self.tls12_suites), self.security_level)

    def allows_suite(self, iana: str) -> bool:
        """Whether a negotiated suite (IANA name) is one this profile permits."""
        if iana in self.tls12_suites:
            return True
        allowed13 = self.tls13_ciphersuites or _TLS13_DEFAULT
        return iana in allowed13 and self.maximum_version >= ssl.TLSVersion.TLSv1_3


def cipher_string(openssl_names: list[str], security_level: int | None) -> str:
    """Join OpenSSL names into a cipher string, forcing a security level if asked."""
    text = ":".join(openssl_names)
    if security_level is not None:
        text += f":@SECLEVEL={security_level}"
    return text


_V = ssl.TLSVersion
_RFC9325_TLS12 = (
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="bcp195-rfc9325",
            title="BCP 195 RFC 8996, 9325 TLS Secure Transport Connection Profile",
            section="PS3.15 B.12",
            description="TLS 1.2 or 1.3 (1.3 preferred); TLS 1.2 only with ECDHE and AES-GCM "
            "(RFC 9325 4.2)",
            minimum_version=_V.TLSv1_2,
            maximum_version=_V.TLSv1_3,
            tls12_suites=_RFC9325_TLS12,
            tls13_ciphersuites=None,
            # RFC 9325 4.5: "When using RSA, servers MUST authenticate using certificates
            # with at least a 2048-bit modulus" (also checked with verification off).
            min_rsa_bits=2048,
        ),
        Profile(
            name="bcp195-rfc9325-modified",
            title="Modified BCP 195 RFC 8996, 9325 TLS Secure Transport Connection Profile",
            section="PS3.15 B.13",
            description="TLS 1.2 or 1.3; ECDHE with AEAD ciphers only; RSA >= 2048 bits, "
            "EC >= 256 bits, DHE >= 2048 bits; no other suites",
            minimum_version=_V.TLSv1_2,
            maximum_version=_V.TLSv1_3,
            # The standard also lists the Camellia-GCM suites (RFC 6367); OpenSSL
            # does not implement them, so they cannot be offered.
            tls12_suites=(
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
                "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8",
                "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
            ),
            tls13_ciphersuites=_TLS13_ALL,
            min_rsa_bits=2048,
            min_ec_bits=256,
            min_dh_bits=2048,
            allows_extra_suites=False,
        ),
        Profile(
            name="bcp195",
            title="BCP195 TLS Secure Transport Connection Profile",
            section="PS3.15 B.9 (retired)",
            description="RFC 7525: TLS 1.2 with ECDHE/DHE and AES-GCM, falling back to TLS 1.0 "
            "and TLS_RSA_WITH_AES_128_CBC_SHA for peers of the AES profile",
            minimum_version=_V.TLSv1,
            maximum_version=_V.TLSv1_3,
            tls12_suites=(
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_RSA_WITH_AES_128_CBC_SHA",
            ),
            legacy=True,
            retired=True,
            # OpenSSL 3 refuses TLS 1.0/1.1 above security level 0, which checks no
            # key size: the certificate's is checked after the handshake instead
            # (RFC 7525 4.3: "at least a 2048-bit modulus").
            security_level=0,
            min_rsa_bits=2048,
            min_dh_bits=2048,
        ),
        Profile(
            name="bcp195-non-downgrading",
            title="Non-downgrading BCP195 TLS Secure Transport Connection Profile",
            section="PS3.15 B.10 (retired)",
            description="RFC 7525 without fallback: TLS 1.2 or newer, ECDHE/DHE with AES-GCM",
            minimum_version=_V.TLSv1_2,
            maximum_version=_V.TLSv1_3,
            tls12_suites=(
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
            ),
            retired=True,
            min_dh_bits=2048,
        ),
        Profile(
            name="bcp195-extended",
            title="Extended BCP195 TLS Secure Transport Connection Profile",
            section="PS3.15 B.11 (retired)",
            description="TLS 1.2 only, the strongest AEAD suites (ECDHE/DHE AES-GCM); DHE >= 2048 "
            "bits, ECDHE >= 256 bits; no other suites",
            minimum_version=_V.TLSv1_2,
            maximum_version=_V.TLSv1_2,
            tls12_suites=(
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
            ),
            retired=True,
            min_ec_bits=256,
            min_rsa_bits=2048,
            min_dh_bits=2048,
            allows_extra_suites=False,
        ),
        Profile(
            name="aes",
            title="AES TLS Secure Transport Connection Profile",
            section="PS3.15 B.3 (retired)",
            description="TLS_RSA_WITH_AES_128_CBC_SHA (and 3DES when OpenSSL has it); "
            "TLS 1.0 to 1.2; no forward secrecy",
            minimum_version=_V.TLSv1,
            maximum_version=_V.TLSv1_2,
            tls12_suites=("TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
            tls13_ciphersuites=(),
            legacy=True,
            retired=True,
            security_level=0,
            requires=("AES128-SHA",),
        ),
        Profile(
            name="basic",
            title="Basic TLS Secure Transport Connection Profile",
            section="PS3.15 B.1 (retired)",
            description="TLS_RSA_WITH_3DES_EDE_CBC_SHA only; TLS 1.0 to 1.2; 112-bit strength",
            minimum_version=_V.TLSv1,
            maximum_version=_V.TLSv1_2,
            tls12_suites=("TLS_RSA_WITH_3DES_EDE_CBC_SHA",),
            tls13_ciphersuites=(),
            legacy=True,
            retired=True,
            security_level=0,
            requires=("DES-CBC3-SHA",),
        ),
    )
}

DEFAULT_PROFILE = "bcp195-rfc9325"


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ConfigurationError listing the valid names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        valid = ", ".join(PROFILES)
        raise ConfigurationError(f"unknown TLS profile {name!r}; valid profiles: {valid}") from None


def openssl_supports(openssl_name: str) -> bool:
    """Whether this OpenSSL build can offer a TLS <= 1.2 suite at all (at security level 0)."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.set_ciphers(f"{openssl_name}:@SECLEVEL=0")
    except ssl.SSLError:
        return False
    return any(c["name"] == openssl_name for c in probe.get_ciphers())


def openssl_has_3des() -> bool:
    """Whether OpenSSL offers TLS_RSA_WITH_3DES_EDE_CBC_SHA (absent unless built with
    ``enable-weak-ssl-ciphers`` since OpenSSL 1.1.0)."""
    return openssl_supports("DES-CBC3-SHA")


def check_available(profile: Profile) -> None:
    """Raise ConfigurationError if this OpenSSL build cannot run ``profile`` at all."""
    for name in profile.requires:
        if openssl_supports(name):
            continue
        suite = suite_by_openssl(name)
        label = suite.iana if suite else name
        raise ConfigurationError(
            f"TLS profile {profile.name!r} ({profile.title}, {profile.section}) needs "
            f"{label}, which this OpenSSL build ({ssl.OPENSSL_VERSION}) does not provide "
            "(3DES is only compiled in with enable-weak-ssl-ciphers); choose the "
            f"{DEFAULT_PROFILE!r} profile, or 'aes' for old peers"
        )
