"""Our certificate, key, CA and CRL files loaded into an ``ssl.SSLContext`` as
:class:`~dicomnet.security.config.TLSConfig` builds one, and checked.

OpenSSL says "PEM lib" for most things wrong with a file (a wrong password, a file
cut short by a copy still in progress, a key file with no key); what is wrong is
found here and said in a :class:`~dicomnet.errors.ConfigurationError` naming the
file. Our own certificate is also checked against what every peer would check
(validity dates, extended key usage: RFC 5280 4.1.2.5, 4.2.1.12), the profile's
key sizes (PS3.15 B.11, B.13) and, on a server, the TLS 1.2 suites it offers.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import ssl
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dicomnet.errors import ConfigurationError
from dicomnet.security.peer_checks import key_size_problem, too_weak_for_level
from dicomnet.security.profiles import Profile, SecurityWarning, suite_by_openssl
from dicomnet.security.trust_store import (
    cafile_problem,
    has_hashed_names,
    read_unhashed_capath,
)

# Certificates are read with `cryptography` (~30 ms to import), imported where a
# certificate is: a plain association, which imports this module, needs none.
if TYPE_CHECKING:
    from dicomnet.security.certificates import CertificateInfo
    from dicomnet.security.config import Side

__all__ = ["certificate_info", "check_own_certificate", "check_suites_fit",
           "load_own_certificate", "load_trust"]

logger = logging.getLogger("dicomnet.security")


def load_own_certificate(ctx: ssl.SSLContext, certfile: Path, keyfile: Path | None,
                         password: bytes | None, profile: Profile, *,
                         key_is_encrypted: Callable[[], bool]) -> None:
    """``ctx.load_cert_chain``, its failure said as a ConfigurationError naming the
    file and what is wrong with it. ``key_is_encrypted`` is asked only to tell a
    wrong password from the rest."""
    for path in (certfile, keyfile):
        if path is not None and not path.is_file():
            raise ConfigurationError(f"certificate/key file not found: {path}")
    try:
        ctx.load_cert_chain(certfile, keyfile, password=password)
    except ssl.SSLError as exc:
        key = keyfile or certfile
        # The file checks come before the password: OpenSSL says "PEM lib" for a
        # wrong password and for a file cut short alike (a copy still in
        # progress, as a rotation can meet), which a password cannot fix.
        if (exc.reason or "") == "KEY_VALUES_MISMATCH":
            reason = f"private key {key} does not match certificate {certfile}"
        elif (exc.reason or "") in ("EE_KEY_TOO_SMALL", "CA_MD_TOO_WEAK"):
            reason = f"certificate {certfile} " + too_weak_for_level(
                certfile, exc.reason or "", profile.name)
        elif not _holds(certfile, b"-----BEGIN CERTIFICATE-----"):
            reason = f"certificate file {certfile} holds no PEM certificate"
        elif not _certificates_whole(certfile):
            reason = (f"certificate file {certfile} holds an incomplete or malformed PEM "
                      "certificate (a copy still in progress?)")
        elif keyfile is None and not _holds(certfile, b"PRIVATE KEY-----"):
            reason = (f"certificate file {certfile} holds no private key: set keyfile (its "
                      "key is in another file)")
        elif keyfile is not None and not _holds(keyfile, b"PRIVATE KEY-----"):
            reason = f"key file {keyfile} holds no PEM private key"
        elif not _key_block_ends(key):
            reason = (f"key file {key} holds an incomplete PEM private key (no END line: "
                      "a copy still in progress?)")
        elif password is not None and key_is_encrypted():
            reason = f"wrong password for private key {key}"
        else:
            reason = f"cannot load certificate {certfile} / key {key}: {exc.reason or exc}"
        raise ConfigurationError(reason) from exc


def check_own_certificate(cert: CertificateInfo, certfile: Path, profile: Profile, side: Side,
                          *, refuse: bool) -> None:
    """Refuse (ConfigurationError) our certificate when its key is smaller than the
    profile allows, or when every peer that checks it would refuse it (expired, not
    yet valid, not meant for ``side``): with ``refuse`` False the latter only warns
    (SecurityWarning, at the caller of the context build). One that expires within
    14 days is logged as a warning."""
    problem = key_size_problem(cert, profile)
    if problem:
        raise ConfigurationError(f"our certificate {certfile} {problem}")
    now = dt.datetime.now(dt.UTC)
    refused = _own_certificate_problem(cert, side, now)
    if refused is not None:
        what, advice = refused
        if refuse:
            raise ConfigurationError(f"our certificate {certfile} {what}; {advice}")
        # TLSConfig.[server|client]_context[_sync] -> _build -> _load_own_certificate -> here.
        warnings.warn(
            f"our certificate {certfile} {what} (check_own_certificate=False: used all "
            "the same)",
            SecurityWarning,
            stacklevel=5,
        )
    elif cert.not_after - now < _EXPIRY_WARNING:
        left = cert.not_after - now
        logger.warning(
            "our certificate %s expires on %s, in %s: renew it before then",
            certfile, _utc(cert.not_after),
            f"{left.days} days" if left.days >= 2 else f"{left // dt.timedelta(hours=1)} hours",
        )


def load_trust(ctx: ssl.SSLContext, *, cafile: str | Path | None, capath: str | Path | None,
               crlfiles: Sequence[str | Path], checked: str | None) -> None:
    """Load the CA certificates we trust (``cafile``, ``capath``) and the CRLs into
    ``ctx``; ConfigurationError naming the file that cannot be. ``checked``: the
    profile whose security level the CAs must meet (None: the peer is not
    verified, so a weak CA fails nothing)."""
    for label, path in (("cafile", cafile), ("capath", capath)):
        if path is not None and not Path(path).exists():
            raise ConfigurationError(f"{label} not found: {path}")
    # Swapped, ssl raised a bare IsADirectoryError, or trusted nothing at all.
    if cafile is not None and Path(cafile).is_dir():
        raise ConfigurationError(f"cafile {cafile} is a folder, not a file: give a "
                                 "folder of CA certificates as capath")
    if capath is not None and not Path(capath).is_dir():
        raise ConfigurationError(f"capath {capath} is a file, not a folder: give a "
                                 "file of CA certificates as cafile")
    if cafile is not None:
        # cryptography is imported there: its ~30 ms a context with no cafile
        # (system CAs, or a client that verifies nothing) need not pay.
        problem = cafile_problem(Path(cafile), checked)
        if problem is not None:
            raise ConfigurationError(f"cafile {cafile} {problem}")
    folder = None if capath is None else Path(capath)
    cadata = None
    if folder is not None and folder.is_dir() and not has_hashed_names(folder):
        # OpenSSL finds a CA in capath only by its hashed name: without them it
        # trusts nothing there, and every peer is refused as "unknown CA".
        cadata, folder = read_unhashed_capath(folder, checked), None
    if cafile is not None or folder is not None or cadata is not None:
        try:
            ctx.load_verify_locations(
                cafile=None if cafile is None else str(cafile),
                capath=None if folder is None else str(folder),
                cadata=cadata,
            )
        except ssl.SSLError as exc:
            # OpenSSL says "PEM lib" for a file cut short, which a rotation can meet
            # while it is being copied: said as such, as for our own certificate.
            if cafile is not None and not _certificates_whole(Path(cafile)):
                raise ConfigurationError(
                    f"cafile {cafile} holds an incomplete or malformed PEM "
                    "certificate (a copy still in progress?)") from exc
            raise ConfigurationError(f"cannot load CA certificates: {exc}") from exc
    for crl in crlfiles:
        if not Path(crl).is_file():
            raise ConfigurationError(f"CRL file not found: {crl}")
        try:
            # load_verify_locations reads CRLs as well as certificates from PEM.
            ctx.load_verify_locations(cafile=str(crl))
        except ssl.SSLError as exc:
            raise ConfigurationError(f"cannot load CRL {crl}: {exc}") from exc
    if crlfiles:
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def _holds(path: Path, marker: bytes) -> bool:
    """Whether a PEM file holds a block of this kind (``PRIVATE KEY-----`` matches every
    private key label: PKCS#8, encrypted or not, and OpenSSL's RSA/EC ones)."""
    try:
        return marker in path.read_bytes()
    except OSError:
        return True  # unreadable: say what OpenSSL said


def _certificates_parse(path: Path) -> bool:
    """Whether every PEM certificate in the file is whole and well-formed."""
    from dicomnet.security.certificates import pem_certificates

    try:
        pem_certificates(path)
    except ValueError:
        return False
    except OSError:
        return True  # unreadable: say what OpenSSL said
    return True


def _certificates_whole(path: Path) -> bool:
    """Whether each PEM certificate of the file has its END line (cryptography skips a
    block without one) and all parse."""
    try:
        data = path.read_bytes()
    except OSError:
        return True
    ends = data.count(b"-----END CERTIFICATE-----")
    return data.count(b"-----BEGIN CERTIFICATE-----") == ends and _certificates_parse(path)


def _key_block_ends(path: Path) -> bool:
    """Whether the file's PEM private key has its END line (RFC 7468 2: a BEGIN and
    an END line, both ending in ``PRIVATE KEY-----``)."""
    try:
        return path.read_bytes().count(b"PRIVATE KEY-----") >= 2
    except OSError:
        return True


_EXPIRY_WARNING = dt.timedelta(days=14)
_PURPOSE: dict[Side, str] = {"server": "serverAuth", "client": "clientAuth"}
_ANY_EXTENDED_KEY_USAGE = "2.5.29.37.0"  # RFC 5280 4.2.1.12 anyExtendedKeyUsage


def _utc(when: dt.datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC"


def _own_certificate_problem(
    cert: CertificateInfo, side: Side, now: dt.datetime
) -> tuple[str, str] | None:
    """(what is wrong, what to do) when every peer that checks our certificate would
    refuse it, or None."""
    if now > cert.not_after:
        return (f"expired on {_utc(cert.not_after)}",
                "renew it (for a development PKI: 'dicomnet certs issue')")
    if now < cert.not_before:
        return (f"is not valid before {_utc(cert.not_before)} (it is now {_utc(now)})",
                "check this machine's clock, or use a certificate valid now")
    purpose = _PURPOSE[side]
    usages = cert.extended_key_usage
    if usages and purpose not in usages and _ANY_EXTENDED_KEY_USAGE not in usages:
        peers = "clients refuse it" if side == "server" else (
            "servers that ask for a client certificate refuse it")
        return (f"is not meant for a {side}: its extended key usage is {', '.join(usages)}, "
                f"without {purpose} (RFC 5280 4.2.1.12), so {peers}",
                f"use a {side} certificate ({side}.pem of 'dicomnet certs init', or "
                f"'dicomnet certs issue DIR NAME --role {side}')")
    return None


# Key type -> (what our certificate has, the --key-type of `dicomnet certs init`).
_KEY_WORDS = {"RSA": ("an RSA", "rsa"), "ECDSA": ("an EC", "ecdsa")}


def check_suites_fit(cert: CertificateInfo, certfile: Path, names: list[str], profile: Profile,
                     *, chosen: bool) -> None:
    """A server's certificate must suit the TLS 1.2 suite it negotiates (RFC 5246 7.4.2:
    an ECDHE_ECDSA suite needs an EC key, the others here an RSA one). When it suits
    none of ours, no TLS 1.2 client can connect: with no TLS 1.3 either, the server
    would refuse every client while blaming them ("peer offers no cipher suite")."""
    if cert.public_key_type not in _KEY_WORDS:
        return
    suites = [s for n in names if (s := suite_by_openssl(n)) is not None and not s.tls13]
    if not suites or any(s.authentication == cert.public_key_type for s in suites):
        return
    ours = _KEY_WORDS[cert.public_key_type][0]
    other, flag = next(w for key, w in _KEY_WORDS.items() if key != cert.public_key_type)
    of = "the ciphers chosen" if chosen else f"profile {profile.name!r} ({profile.section})"
    head = f"our certificate {certfile} has {ours} key, and every TLS 1.2 cipher suite of {of}"
    if profile.maximum_version < ssl.TLSVersion.TLSv1_3:
        listed = [s.iana for s in suites]
        named = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
        raise ConfigurationError(
            f"{head}, {named}, needs {other} one: no client could connect; use {other} "
            f"certificate (dicomnet certs init --key-type {flag})")
    logger.warning("%s needs %s one: only TLS 1.3 clients can connect", head, other)


@functools.lru_cache(maxsize=16)
def certificate_info(path: str, mtime_ns: int, size: int) -> CertificateInfo:
    """Parsed once per version of the file (every handshake asks for it; a rotated
    certificate has a new mtime or size and is read again)."""
    from dicomnet.security.certificates import CertificateInfo

    return CertificateInfo.from_pem_file(path)


