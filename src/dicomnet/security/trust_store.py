"""Our trust store as a context is built: the CA certificates of ``cafile`` and ``capath``.

OpenSSL finds a CA in a capath only by its hashed name (``openssl rehash``); a
capath without them is read here, whole, as if its PEM files were one cafile.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from dicomnet.errors import ConfigurationError

__all__ = ["has_hashed_names", "read_unhashed_capath"]

logger = logging.getLogger("dicomnet.security")

# What `openssl rehash` names a CA certificate: its subject's hash, a dot, a number
# (CRLs are .r0, .r1...).
_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")
_PEM_SUFFIXES = (".pem", ".crt", ".cer")


def has_hashed_names(capath: Path) -> bool:
    """Whether ``capath`` holds a file named as ``openssl rehash`` names one."""
    try:
        return any(_HASHED_NAME.fullmatch(name) for name in os.listdir(capath))
    except OSError as exc:
        raise ConfigurationError(f"cannot read capath {capath}: {exc.strerror or exc}") from exc


def read_unhashed_capath(capath: Path) -> str:
    """The certificates of the PEM files of a capath without hashed names, as cadata."""
    from dicomnet.security.certificates import pem_certificates

    found: list[str] = []
    files: list[str] = []
    for path in sorted(capath.iterdir()):
        if path.suffix.lower() not in _PEM_SUFFIXES or not path.is_file():
            continue
        try:
            pem = pem_certificates(path)
        except OSError as exc:
            raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise ConfigurationError(f"{path} holds a malformed certificate: {exc}") from exc
        if pem:
            found.append(pem)
            files.append(path.name)
    if not found:
        raise ConfigurationError(
            f"capath {capath} holds no CA certificates: no hashed names (run 'openssl rehash "
            f"{capath}') and no PEM certificate in a .pem, .crt or .cer file"
        )
    count = sum(pem.count("-----BEGIN CERTIFICATE-----") for pem in found)
    logger.info("capath %s has no hashed names (openssl rehash): loaded %d CA certificate%s "
                "from %s", capath, count, "" if count == 1 else "s", ", ".join(files))
    return "".join(found)
