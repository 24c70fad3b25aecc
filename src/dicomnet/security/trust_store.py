"""Our trust store as a context is built: the CA certificates of ``cafile`` and ``capath``.

OpenSSL finds a CA in a capath only by its hashed name (``openssl rehash``); a
capath without them is read here, whole, as if its PEM files were one cafile.

A CA there that OpenSSL's security level refuses (a key too small, a signature
hash too weak: :func:`~dicomnet.security.peer_checks.anchor_problem`) fails the
handshake of every peer chained to it, which would be the first the operator
hears of it, once per connection: each one is named at WARNING when the context
is built (:func:`warn_weak_anchors`), once per process: a server builds its context
again at each rotation of its files, a script may build many. A hashed capath is
not read for it: OpenSSL looks its files up one by one, at the handshakes that
need them.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from dicomnet.errors import ConfigurationError
from dicomnet.security.peer_checks import anchor_problem

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "cafile_problem",
    "der_certificate",
    "has_hashed_names",
    "read_unhashed_capath",
    "warn_weak_anchors",
]

logger = logging.getLogger("dicomnet.security")

# What `openssl rehash` names a CA certificate: its subject's hash, a dot, a number
# (CRLs are .r0, .r1...).
_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")
_PEM_SUFFIXES = (".pem", ".crt", ".cer", ".der")

#: (SHA-256 of a weak CA, what is wrong with it) already said; bounded, so that a process
#: building contexts of ever new CAs keeps no more than these (the oldest is forgotten).
_SAID: dict[tuple[bytes, str], None] = {}
_SAID_MOST = 256


def der_certificate(data: bytes) -> x509.Certificate | None:
    """``data`` as one DER certificate (RFC 5280 4.1, a SEQUENCE: 0x30), or None."""
    if not data.startswith(b"\x30"):
        return None
    from dicomnet.security.x509_load import load_der_certificate

    try:
        # Quietly where its serial is not positive (a root exported as a .cer).
        return load_der_certificate(data)[0]
    except ValueError:  # InvalidVersion too: x509_load turns it into one
        return None


def has_hashed_names(capath: Path) -> bool:
    """Whether ``capath`` holds a file named as ``openssl rehash`` names one."""
    try:
        return any(_HASHED_NAME.fullmatch(name) for name in os.listdir(capath))
    except OSError as exc:
        raise ConfigurationError(f"cannot read capath {capath}: {exc.strerror or exc}") from exc


def warn_weak_anchors(pem: bytes | str, where: str, profile: str) -> None:
    """Log at WARNING each certificate of ``pem`` (``where``: "cafile ...") that
    OpenSSL's security level, under ``profile``, refuses as a trust anchor, unless this
    process has said so of it already."""
    from dicomnet.security.certificates import load_pem_certificates

    try:
        certs = load_pem_certificates(pem.encode() if isinstance(pem, str) else pem, where)
    except ValueError:
        return  # no certificate, or a malformed one: OpenSSL says which
    _warn_weak(certs, where, profile)


def _warn_weak(certs: list[x509.Certificate], where: str, profile: str) -> None:
    """:func:`warn_weak_anchors` of certificates parsed already."""
    from cryptography.hazmat.primitives import hashes

    from dicomnet.security.certificates import describe_key, signature_hash
    from dicomnet.security.x509_load import name_text, self_issued

    for cert in certs:
        # Only what the check needs is read: a system bundle's extensions are left
        # unparsed (cryptography warns about some of those certificates when they are).
        self_signed = self_issued(cert)
        if not self_signed and not _is_ca(cert):
            continue  # no trust anchor (security.certificates.trust_file_problem)
        problem = anchor_problem(*describe_key(cert),
                                 None if self_signed else signature_hash(cert), profile)
        if problem is None:
            continue
        what, key = problem
        said = (cert.fingerprint(hashes.SHA256()), what)
        if said in _SAID:
            continue
        if len(_SAID) >= _SAID_MOST:
            del _SAID[next(iter(_SAID))]
        _SAID[said] = None
        if self_signed and not _is_ca(cert):  # a peer's own, pinned: only its key counts
            kind, tail = "certificate", ("the peer presenting it will be refused at its "
                                         "handshake (EE_KEY_TOO_SMALL): replace it with a "
                                         "certificate of a larger key")
        elif self_signed and key:
            # A self-signed CA:TRUE one may be a root or a peer's own, pinned
            # (``openssl req -x509`` sets CA:TRUE): which, the handshake shows.
            kind, tail = "CA certificate", (
                "every peer whose chain goes through it, or that presents it as its own "
                "(a pinned self-signed certificate), will be refused at its handshake "
                "(CA_KEY_TOO_SMALL, or EE_KEY_TOO_SMALL for the latter): replace it with "
                "one of a larger key")
        else:
            kind = "CA certificate"
            tail = "every peer whose chain goes through it will be refused at its handshake " + (
                "(CA_KEY_TOO_SMALL): replace it with a CA of a larger key" if key else
                "(CA_MD_TOO_WEAK): have it signed again with SHA-256")
        logger.warning("%s %s in %s %s; %s", kind, name_text(cert), where,
                       what, tail)


def _is_ca(cert: x509.Certificate) -> bool:
    """basicConstraints CA:TRUE (RFC 5280 4.2.1.9); False without it, or unreadable."""
    from cryptography import x509

    from dicomnet.security.x509_load import extension_value

    constraints = extension_value(cert, x509.BasicConstraints)
    return constraints is not None and constraints.ca


def cafile_problem(cafile: Path, profile: str | None) -> str | None:
    """Why ``cafile`` can vouch for no peer
    (:func:`~dicomnet.security.certificates.trust_file_problem`), or None; then, with
    ``profile``, its weak CAs named (:func:`warn_weak_anchors`). The file is read and
    parsed once for both (a system bundle holds some 150 certificates)."""
    from dicomnet.security.certificates import load_pem_certificates, trust_problem

    try:
        data = cafile.read_bytes()
    except OSError:
        return None  # OpenSSL says why when it loads it
    where = f"cafile {cafile}"
    try:
        certs: list[x509.Certificate] | None = load_pem_certificates(data, where)
    except ValueError:
        certs = None  # no certificate, or a malformed one: OpenSSL says which
    problem = trust_problem(data, certs)
    if problem is not None and der_certificate(data) is not None:
        problem = ("holds a DER (binary) certificate, where PEM is read: convert it "
                   f"('openssl x509 -inform DER -in {cafile} -out ca.pem')")
    if problem is None and certs and profile is not None:
        _warn_weak(certs, where, profile)
    return problem


def read_unhashed_capath(capath: Path, profile: str | None = None) -> str:
    """The certificates of the files of a capath without hashed names (PEM, or a DER
    certificate alone: a Windows .cer), as PEM cadata;
    with ``profile``, each one its security level refuses is named (:func:`warn_weak_anchors`)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from dicomnet.security.certificates import load_pem_certificates

    found: list[str] = []
    files: list[str] = []
    for path in sorted(capath.iterdir()):
        if path.suffix.lower() not in _PEM_SUFFIXES or not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
        where = f"capath {capath} ({path.name})"
        if b"-----BEGIN CERTIFICATE-----" not in data:
            # Windows exports a CA as a DER (binary) .cer by default.
            der = der_certificate(data)
            if der is None:
                continue  # a key, a CRL, a text: no CA
            certs = [der]
        else:
            try:
                certs = load_pem_certificates(data, where)
            except ValueError as exc:
                raise ConfigurationError(f"{path} holds a malformed certificate: {exc}") from exc
        if profile is not None:
            _warn_weak(certs, where, profile)
        # Its certificates alone: OpenSSL's cadata takes nothing else.
        pem = "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certs)
        if pem:
            found.append(pem)
            files.append(path.name)
    if not found:
        raise ConfigurationError(
            f"capath {capath} holds no CA certificates: no hashed names (run 'openssl rehash "
            f"{capath}') and no certificate (PEM or DER) in a .pem, .crt, .cer or .der file"
        )
    count = sum(pem.count("-----BEGIN CERTIFICATE-----") for pem in found)
    logger.info("capath %s has no hashed names (openssl rehash): loaded %d CA certificate%s "
                "from %s", capath, count, "" if count == 1 else "s", ", ".join(files))
    return "".join(found)
