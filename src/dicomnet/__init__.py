"""dicomnet: secure DICOM networking (PS3.8 Upper Layer, PS3.7 DIMSE, PS3.15 TLS).

The public API; everything else is reachable from its subpackages.
"""

from __future__ import annotations

from .aio.client import ClientAssociation, associate
from .aio.server import Server, serve
from .aio.transport import SecureLinkEvent
from .config import DEFAULT_PLAIN_PORT, DEFAULT_TLS_PORT, Limits, Timeouts
from .dimse.status import Status
from .errors import (
    AssociationAborted,
    AssociationError,
    AssociationRejected,
    ConfigurationError,
    ConnectError,
    DicomNetError,
    DimseError,
    DimseTimeout,
    LocalProtocolError,
    NoAcceptedContext,
    ProtocolError,
    RemoteProtocolError,
    StatusError,
    TimeoutError,
    TLSError,
    TransportError,
)
from .security.certificates import CertificateInfo, make_dev_pki
from .security.config import TLSConfig
from .security.info import SecurityInfo
from .security.profiles import PROFILES, SecurityWarning
from .services.storage import StorageSCP, StoredInstance, StoreResult, store_paths
from .services.verification import VerificationSCP
from .ul.negotiation import AcceptedContext, ContextRequest

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PLAIN_PORT",
    "DEFAULT_TLS_PORT",
    "PROFILES",
    "AcceptedContext",
    "AssociationAborted",
    "AssociationError",
    "AssociationRejected",
    "CertificateInfo",
    "ClientAssociation",
    "ConfigurationError",
    "ConnectError",
    "ContextRequest",
    "DicomNetError",
    "DimseError",
    "DimseTimeout",
    "Limits",
    "LocalProtocolError",
    "NoAcceptedContext",
    "ProtocolError",
    "RemoteProtocolError",
    "SecureLinkEvent",
    "SecurityInfo",
    "SecurityWarning",
    "Server",
    "Status",
    "StatusError",
    "StorageSCP",
    "StoreResult",
    "StoredInstance",
    "TLSConfig",
    "TLSError",
    "Timeouts",
    "TimeoutError",
    "TransportError",
    "VerificationSCP",
    "__version__",
    "associate",
    "make_dev_pki",
    "serve",
    "store_paths",
]
