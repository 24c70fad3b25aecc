"""dicomnet: secure DICOM networking (PS3.8 Upper Layer, PS3.7 DIMSE, PS3.15 TLS).

The public API; everything else is reachable from its subpackages. Its classes
and functions say what they are in their own docstrings (``help(dicomnet.serve)``);
the names that cannot carry one:

- ``DEFAULT_PLAIN_PORT``: 11112, the registered "dicom" port (PS3.8 9.1.1), where
  ``serve()`` listens without TLS when given no port.
- ``DEFAULT_TLS_PORT``: 2762, the registered "dicom-tls" port (PS3.15 B.1), its
  port with TLS.
- ``PROFILES``: the secure transport profiles of PS3.15 Annex B by the names
  ``TLSConfig(profile=...)`` takes ("bcp195-rfc9325", the default, ...), each
  with its title, protocol versions and cipher suites (docs/security.md).
- ``AssociationRequestHook``: the type of ``serve(on_association_request=...)``,
  a function (or coroutine function) of an ``AssociationInfo`` that returns None
  to go on or the ``Rejection`` to answer (A-ASSOCIATE-RJ, PS3.8 9.3.4).
- ``StoreHook``: the type of ``StorageSCP(on_c_store=...)``, a function (or
  coroutine function) of a ``StoredInstance`` that returns a ``HookAnswer``.
- ``HookAnswer``: what that handler answers: None (Success), a status (an int or
  a ``Status``), or a status with its Error Comment, ``(0xC001, "not a CT")``
  (PS3.4 B.2.3, PS3.7 9.3.1.2).
- ``StoredObserver``: the type of ``StorageSCP(on_stored=...)``, a function of a
  ``StoredInstance`` told of each object once durable; what it returns is ignored.
- ``RefusedObserver``: the type of ``StorageSCP(on_refused=...)``, a function of a
  ``RefusedInstance`` told of each object answered with a failure (a duplicate
  rejected, a handler's refusal, a write error); what it returns is ignored.
- ``SecureLinkHook``: the type of ``on_secure_link_ready=`` (``associate``,
  ``serve``), a function (or coroutine function) of a ``SecureLinkEvent``, told
  once the TLS handshake is done and before any DICOM is exchanged.
- ``PasswordCallback``: the type of ``TLSConfig(on_private_key_password=...)``,
  a function (or coroutine function) of no argument that returns the encrypted
  private key's password (str or bytes).
- ``VerifyCallback``: the type of ``TLSConfig(verify_callback=...)``, a function
  of the peer's ``CertificateInfo`` and its depth in the chain (0, the peer's
  own, is the one Python's ``ssl`` shows) that returns False to refuse the peer.
- ``ConnectionEvent``: what ``serve(on_connection_event=...)`` is told of: an
  ``AssociationAccepted``, an ``AssociationEnded`` or a ``ConnectionRefused``;
  ``ConnectionObserver`` is the type of that function.
- ``EchoHook``: the type of ``VerificationSCP(on_c_echo=...)``, a function (or
  coroutine function) of the association that returns None (Success) or a status.
- ``DrainOutcome``: what ``await server.drain(timeout)`` returns, how many
  associations ended by themselves (``drained``) and how many were aborted.
- ``ServiceProvider``: the type of each of ``serve(providers=[...])``
  (``VerificationSCP``, ``StorageSCP``, or a class of yours with the same methods).
- ``DevPKI``: the paths ``make_dev_pki`` wrote (CA, server and client
  certificates and keys).
- ``UserIdentityRQSubItem``: ``associate(user_identity=...)``, the user
  identity a client proposes (PS3.7 D.3.3.7: username, passcode, Kerberos,
  SAML or JWT).
- ``DuplicatePolicy`` and ``Layout``: the enumerations of ``StorageSCP(duplicates=...,
  layout=...)`` (which also takes the policy's name, "keep", "overwrite" or
  "reject").
- ``blocking``: the blocking facade for scripts (``dicomnet.blocking.store``,
  ``.echo``, ``.associate``), loaded on first use as the names above are.
- ``__version__``: this release of dicomnet.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dicomnet._lazy import lazy_exports as _lazy_exports

# A library says what it does through logging and leaves where it goes to the
# application: without this, Python prints WARNING and above to stderr for an
# application that configured no logging (the logging HOWTO's advice).
logging.getLogger("dicomnet").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from . import blocking
    from .aio.client import ClientAssociation, associate
    from .aio.server import AssociationInfo, AssociationRequestHook, DrainOutcome, Server, serve
    from .aio.server_association import ServiceProvider
    from .aio.server_events import (
        AssociationAccepted,
        AssociationEnded,
        ConnectionEvent,
        ConnectionObserver,
        ConnectionRefused,
    )
    from .aio.transport import SecureLinkEvent, SecureLinkHook
    from .config import DEFAULT_PLAIN_PORT, DEFAULT_TLS_PORT, FreeSpace, Limits, Timeouts
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
        StorageError,
        TimeoutError,
        TLSError,
        TransportError,
    )
    from .security.certificates import CertificateInfo, DevPKI, make_dev_pki
    from .security.config import PasswordCallback, TLSConfig, VerifyCallback
    from .security.info import SecurityInfo
    from .security.profiles import PROFILES, SecurityWarning
    from .services.storage import (
        RetryEvent,
        StorageSCP,
        StoredInstance,
        StoreResult,
        store_paths,
    )
    from .services.store_answers import (
        HookAnswer,
        RefusedInstance,
        RefusedObserver,
        StoredObserver,
        StoreHook,
    )
    from .services.verification import EchoHook, VerificationSCP
    from .storage.files import DuplicatePolicy, Layout
    from .ul.negotiation import AcceptedContext, ContextRequest
    from .ul.pdu import Rejection
    from .ul.user_information import UserIdentityRQSubItem

#: Public name -> the module that defines it. Imported on first use (PEP 562), so
#: that ``import dicomnet`` (and every ``dicomnet`` command) loads only what it
#: uses: the whole API at once cost each command ~0.2 s of start-up.
_EXPORTS: dict[str, str] = {
    "AcceptedContext": ".ul.negotiation",
    "AssociationAborted": ".errors",
    "AssociationAccepted": ".aio.server_events",
    "AssociationEnded": ".aio.server_events",
    "AssociationError": ".errors",
    "AssociationInfo": ".aio.server",
    "AssociationRejected": ".errors",
    "AssociationRequestHook": ".aio.server",
    "CertificateInfo": ".security.certificates",
    "ClientAssociation": ".aio.client",
    "ConfigurationError": ".errors",
    "ConnectError": ".errors",
    "ConnectionEvent": ".aio.server_events",
    "ConnectionObserver": ".aio.server_events",
    "ConnectionRefused": ".aio.server_events",
    "ContextRequest": ".ul.negotiation",
    "DEFAULT_PLAIN_PORT": ".config",
    "DEFAULT_TLS_PORT": ".config",
    "DevPKI": ".security.certificates",
    "DicomNetError": ".errors",
    "DimseError": ".errors",
    "DimseTimeout": ".errors",
    "DrainOutcome": ".aio.server",
    "DuplicatePolicy": ".storage.files",
    "EchoHook": ".services.verification",
    "FreeSpace": ".config",
    "HookAnswer": ".services.store_answers",
    "Layout": ".storage.files",
    "Limits": ".config",
    "LocalProtocolError": ".errors",
    "NoAcceptedContext": ".errors",
    "PROFILES": ".security.profiles",
    "PasswordCallback": ".security.config",
    "ProtocolError": ".errors",
    "Rejection": ".ul.pdu",
    "RemoteProtocolError": ".errors",
    "RetryEvent": ".services.storage",
    "SecureLinkEvent": ".aio.transport",
    "SecureLinkHook": ".aio.transport",
    "SecurityInfo": ".security.info",
    "SecurityWarning": ".security.profiles",
    "Server": ".aio.server",
    "ServiceProvider": ".aio.server_association",
    "Status": ".dimse.status",
    "StatusError": ".errors",
    "StorageError": ".errors",
    "StorageSCP": ".services.storage",
    "StoreHook": ".services.store_answers",
    "StoreResult": ".services.storage",
    "StoredInstance": ".services.storage",
    "StoredObserver": ".services.store_answers",
    "RefusedInstance": ".services.store_answers",
    "RefusedObserver": ".services.store_answers",
    "TLSConfig": ".security.config",
    "TLSError": ".errors",
    "TimeoutError": ".errors",
    "Timeouts": ".config",
    "TransportError": ".errors",
    "UserIdentityRQSubItem": ".ul.user_information",
    "VerificationSCP": ".services.verification",
    "VerifyCallback": ".security.config",
    "associate": ".aio.client",
    "blocking": ".blocking",
    "make_dev_pki": ".security.certificates",
    "serve": ".aio.server",
    "store_paths": ".services.storage",
}

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PLAIN_PORT",
    "DEFAULT_TLS_PORT",
    "PROFILES",
    "AcceptedContext",
    "AssociationAborted",
    "AssociationAccepted",
    "AssociationEnded",
    "AssociationError",
    "AssociationInfo",
    "AssociationRejected",
    "AssociationRequestHook",
    "CertificateInfo",
    "ClientAssociation",
    "ConfigurationError",
    "ConnectError",
    "ConnectionEvent",
    "ConnectionObserver",
    "ConnectionRefused",
    "ContextRequest",
    "DevPKI",
    "DicomNetError",
    "DimseError",
    "DimseTimeout",
    "DrainOutcome",
    "DuplicatePolicy",
    "EchoHook",
    "FreeSpace",
    "HookAnswer",
    "Layout",
    "Limits",
    "LocalProtocolError",
    "NoAcceptedContext",
    "PasswordCallback",
    "ProtocolError",
    "Rejection",
    "RefusedInstance",
    "RefusedObserver",
    "RemoteProtocolError",
    "RetryEvent",
    "SecureLinkEvent",
    "SecureLinkHook",
    "SecurityInfo",
    "SecurityWarning",
    "Server",
    "ServiceProvider",
    "Status",
    "StatusError",
    "StorageError",
    "StorageSCP",
    "StoreHook",
    "StoreResult",
    "StoredInstance",
    "StoredObserver",
    "TLSConfig",
    "TLSError",
    "TimeoutError",
    "Timeouts",
    "TransportError",
    "UserIdentityRQSubItem",
    "VerificationSCP",
    "VerifyCallback",
    "__version__",
    "associate",
    "blocking",
    "make_dev_pki",
    "serve",
    "store_paths",
]


# Hidden from type checkers: they read the names from the imports above, typed,
# and a module-level __getattr__ would make every other name (a misspelt
# ``dicomnet.asociate``) pass as Any.
if not TYPE_CHECKING:
    __getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
