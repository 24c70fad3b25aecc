"""Revoking certificates of a development PKI: the CRL (RFC 5280 5) that a
:func:`~dicomnet.security.certificates.make_dev_pki` folder's CA signs, for
``TLSConfig(crlfiles=...)`` and the command line's ``--crl``.

A production PKI publishes its own CRLs; this is for the folder ``dicomnet certs
init`` made, so that revocation can be tried end to end (``dicomnet certs
revoke``): a revoked client is refused by a server given the CRL, a revoked
server by a client given it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from ..errors import ConfigurationError
from .certificates import CertificateAuthority, serial_text
from .x509_load import load_der_certificate, load_pem_certificates, name_text

__all__ = ["CRL_NAME", "RevocationList", "revoke_dev_certificates"]

#: The CRL's file name in the PKI folder.
CRL_NAME = "ca.crl"


@dataclass(frozen=True, slots=True)
class RevocationList:
    """What :func:`revoke_dev_certificates` wrote."""

    path: Path
    #: Serial numbers listed, the new ones and those the previous CRL held.
    serials: tuple[int, ...]
    #: Of them, those this call added.
    added: tuple[int, ...]
    #: The CRL's nextUpdate: a peer refuses the CRL after it (X509_V_ERR_CRL_HAS_EXPIRED).
    next_update: dt.datetime


def revoke_dev_certificates(directory: str | Path, certificates: Sequence[str | Path], *,
                            password: str | None = None, days: int = 30) -> RevocationList:
    """Add ``certificates`` (PEM files issued by the folder's CA) to the folder's
    CRL, ``ca.crl``, and sign it again, valid ``days`` days (RFC 5280 5.1.2.5,
    nextUpdate). The entries of the previous ``ca.crl`` stay, with their dates;
    with no certificates the CRL is only renewed. Written atomically (a server
    re-reading it meanwhile sees the old or the new one).

    Raises ``ConfigurationError`` for a certificate another CA issued, an
    unreadable file, or a previous CRL this CA did not sign."""
    directory = Path(directory)
    ca = CertificateAuthority.load(directory / "ca.pem", directory / "ca.key",
                                   password=password)
    now = dt.datetime.now(dt.UTC)
    entries: dict[int, dt.datetime] = {}
    number = 0
    crl_path = directory / CRL_NAME
    if crl_path.exists():
        entries, number = _listed(crl_path, ca)
    added: list[int] = []
    for item in certificates:
        cert, serial = _certificate(Path(item))
        try:  # the name and the signature: two dev PKIs' CAs share their name
            cert.verify_directly_issued_by(ca.certificate)
        except (ValueError, TypeError, InvalidSignature):
            raise ConfigurationError(
                f"{item} was issued by {name_text(cert, issuer=True)}, not by this "
                f"folder's CA ({directory / 'ca.pem'})") from None
        if serial <= 0:
            raise ConfigurationError(
                f"{item} ({name_text(cert)}) has serial number "
                f"{serial_text(serial)}, which a CRL cannot list (RFC 5280 4.1.2.2 asks a "
                "positive one); renew the certificate instead")
        if serial not in entries:
            entries[serial] = now - dt.timedelta(minutes=1)
            added.append(serial)
    next_update = now + dt.timedelta(days=days)
    pem = ca.sign_crl(entries, number=number + 1, next_update=next_update).public_bytes(
        serialization.Encoding.PEM)
    temporary = crl_path.with_name(f".{CRL_NAME}.tmp")
    try:
        temporary.write_bytes(pem)
        os.replace(temporary, crl_path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigurationError(f"cannot write {crl_path}: {exc.strerror or exc}") from exc
    return RevocationList(crl_path, tuple(sorted(entries)), tuple(added), next_update)


def _certificate(path: Path) -> tuple[x509.Certificate, int]:
    """The first certificate of the PEM file at ``path``, and its serial number (one of
    0 or below parsed without cryptography's warning: security.x509_load)."""
    try:
        certs = load_pem_certificates(path.read_bytes(), f"certificate {path}")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError:
        certs = []
    if not certs:
        raise ConfigurationError(f"{path} holds no PEM certificate")
    return load_der_certificate(certs[0].public_bytes(serialization.Encoding.DER))


def _listed(path: Path, ca: CertificateAuthority) -> tuple[dict[int, dt.datetime], int]:
    """The entries (serial -> revocation date) of the CRL at ``path``, checked to be
    this CA's (its issuer and signature), and its CRL number (0 if it has none: one
    written before ``certs revoke`` numbered them)."""
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"{path} holds no PEM CRL") from exc
    public_key = ca.certificate.public_key()
    if crl.issuer != ca.certificate.subject or not crl.is_signature_valid(
            public_key):  # type: ignore[arg-type]
        raise ConfigurationError(f"{path} is not a CRL of this folder's CA: move it away")
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = 0
    return {entry.serial_number: entry.revocation_date_utc for entry in crl}, number
