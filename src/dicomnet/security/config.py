"""TLS configuration of a DICOM endpoint, turned into an ``ssl.SSLContext``.

One :class:`TLSConfig` serves both roles. Passing one when an endpoint is built
selects secure transport (PS3.15 Annex B); passing None selects plain TCP.
Defaults are the safe ones: the BCP 195 RFC 8996/9325 profile (PS3.15 B.12),
peer verification on, host name checking on, client certificates required by
servers (mutual authentication). Turning a check off warns (SecurityWarning).

Building a context is ``await config.server_context()`` or
``await config.client_context()`` (async because the private-key password
callback may be async); ``server_context_sync()``/``client_context_sync()``
do the same for synchronous callers. A server builds its context when it
starts and again, for the connections that follow, when its files change
(:mod:`dicomnet.security.rotation`); a client's associations share one per
configuration object (``await config.shared_client_context()``, rebuilt when a
file changes), with the TLS sessions they resume
(:mod:`dicomnet.security.sessions`). After each
handshake, the driver calls :meth:`TLSConfig.check_established`, which builds
the :class:`SecurityInfo`, applies the profile's key-size rules to the peer's
certificate and runs the ``verify_callback``. The certificate, key, CA and CRL
files are loaded and checked by :mod:`dicomnet.security.context_files`.
"""

from __future__ import annotations

import inspect
import logging
import os
import ssl
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dicomnet.errors import ConfigurationError, TLSError
from dicomnet.security.context_files import (
    certificate_info,
    check_own_certificate,
    check_suites_fit,
    load_own_certificate,
    load_trust,
)
from dicomnet.security.dhgroups import client_suites, load_dhe_group, offers_dhe
from dicomnet.security.info import SecurityInfo, record_sni, security_info_from_ssl
from dicomnet.security.key_password import ask, ask_async, password_bytes
from dicomnet.security.peer_checks import ca_leaf_problem, key_size_problem
from dicomnet.security.pem import key_is_encrypted
from dicomnet.security.profiles import (
    DEFAULT_PROFILE,
    Profile,
    SecurityWarning,
    check_available,
    cipher_string,
    get_profile,
    suite_by_openssl,
    to_openssl_names,
)
from dicomnet.security.sessions import ClientCache

# Certificates are read with `cryptography` (~30 ms to import), imported where a
# certificate is: a plain association, which imports this module, needs none.
if TYPE_CHECKING:
    from dicomnet.security.certificates import CertificateInfo, DevPKI

__all__ = [
    "PasswordCallback",
    "PeerCertificatePolicy",
    "TLSConfig",
    "VerifyCallback",
    "dev_pki_configs",
]

logger = logging.getLogger("dicomnet.security")

PeerCertificatePolicy = Literal["required", "optional", "none"]
PasswordCallback = Callable[[], str | bytes | Awaitable[str | bytes]]
VerifyCallback = Callable[["CertificateInfo", int], bool]
Side = Literal["client", "server"]

_POLICIES: dict[str, ssl.VerifyMode] = {
    "required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """TLS settings of a DICOM client or server (PS3.15 Annex B secure transport)."""

    certfile: str | Path | None = None
    """Our certificate (PEM), followed by its intermediate CAs; a server must have one."""
    keyfile: str | Path | None = None
    """Its private key (PEM); None when the key is in ``certfile``."""
    cafile: str | Path | None = None
    """PEM file of the CA certificates we trust to sign the peer's certificate."""
    capath: str | Path | None = None
    """Directory of hashed CA certificates (``openssl rehash``), as an alternative to cafile.
    A directory with no hashed names is read whole: its ``*.pem``, ``*.crt``, ``*.cer`` and
    ``*.der`` files (PEM, or DER as Windows exports them) are loaded as one cafile."""
    peer_certificate: PeerCertificatePolicy = "required"
    """Server side: must the client present a certificate (``required``), may it
    (``optional``, verified when sent), or is none asked (``none``)."""
    verify_peer: bool = True
    """Client side: verify the server's certificate. False only for tests; warns loudly
    (SecurityWarning, at the first context built from this object)."""
    check_hostname: bool = True
    """Client side: the server certificate must name the host (RFC 9525). False warns
    (SecurityWarning): any certificate a trusted CA issued is then taken."""
    hostname_from_common_name: bool = False
    """Client side: also take a server certificate that names the host only in its
    subject CN, with no subjectAltName, as RFC 6125 6.4.4 allowed and RFC 9525 6.3
    no longer does; for an old device. Warns (SecurityWarning)."""
    allow_ca_peer_certificate: bool = False
    """Take a peer whose own certificate is a CA's (basicConstraints CA:TRUE, RFC 5280
    4.2.1.9) and not one of our trust anchors, for an old device issued one so by
    mistake (:func:`~dicomnet.security.peer_checks.ca_leaf_problem`). Warns
    (SecurityWarning). A CA:TRUE certificate pinned in cafile/capath (self-signed,
    ``openssl req -x509``) is taken without it."""
    server_hostname: str | None = None
    """Client side: the name expected in the server's certificate and sent as SNI;
    None means the host connected to."""
    profile: str = DEFAULT_PROFILE
    """PS3.15 Annex B profile name (see ``dicomnet.security.profiles.PROFILES``)."""
    ciphers: tuple[str, ...] | None = None
    """TLS 1.2 cipher suites (IANA or OpenSSL names) replacing the profile's, in order of
    preference. As a server our order decides (server preference); as a client it
    is the order offered. TLS 1.3 suites are OpenSSL's defaults."""
    alpn: tuple[str, ...] = ("dicom",)
    """ALPN protocol names offered (client) or accepted (server), RFC 7301."""
    crlfiles: tuple[str | Path, ...] = ()
    """PEM CRLs to check the peer's certificate against (leaf only). Each CA that
    issues peer certificates then needs a current CRL here."""
    on_private_key_password: PasswordCallback | None = None
    """Asked for the private key's password, once per context build, only when the key
    is encrypted and ``key_password`` is not set. May be sync or async; it runs on
    the event loop. A server builds its context at start, and again when its
    certificate, key, CA or CRL files change (a rotated key is opened with the
    password this gives then: on a server it must answer without anyone at a
    terminal; when it raises or its password does not fit, the server keeps its
    previous context and logs why). A client builds one per TLSConfig object, at
    its first association, and again only when the certificate, key, CA or CRL files
    change (a rotated certificate) or our certificate has expired: keep one
    TLSConfig for many associations and the password is asked once, not at each
    association, retry or batch. An exception it raises reaches the caller of that
    build (``serve``, ``associate``, the context methods) as a ConfigurationError
    naming the key and the exception, which is its ``__cause__``
    (:mod:`~dicomnet.security.key_password`); a password that is not a str or
    bytes is one too."""
    key_password: str | bytes | None = None
    """The private key's password, when known in advance; when set,
    ``on_private_key_password`` is never asked."""
    keylog_file: str | Path | None = None
    """Append TLS secrets here (NSS key log format) so Wireshark can decrypt a capture.
    None honours the SSLKEYLOGFILE environment variable. Debugging only."""
    check_own_certificate: bool = True
    """Refuse to build a context around our own certificate (the first in ``certfile``)
    when it has expired, is not yet valid, or has an extended key usage without our
    role's purpose (serverAuth for a server, clientAuth for a client, RFC 5280
    4.2.1.12): every peer that checks it would refuse it. False only to see how
    peers react to such a certificate (tests); the problem then warns
    (SecurityWarning). Either way a certificate that expires within 14 days is
    logged as a warning."""
    verify_callback: VerifyCallback | None = None
    """Extra check of the peer's certificate: called as ``(info, depth)`` after OpenSSL
    verified the chain, and may refuse it by returning False (TLSError); one that
    raises refuses it too (a TLSError, that exception its cause). Python's ssl
    cannot hook OpenSSL's per-certificate verify callback: it runs once, after the
    handshake, on the leaf (depth 0), the only certificate Python 3.11 exposes. It runs
    on resumed sessions too (their peer certificate is kept in the session)."""
    session_resumption: bool = True
    """Resume TLS sessions (RFC 8446 2.2, RFC 5077) so that re-associating skips the
    certificate exchange. Client side: the session of an association that ended
    with A-RELEASE, or was rejected (A-ASSOCIATE-RJ: a busy peer's retry resumes),
    is offered on the next one made with this same TLSConfig object
    to the same host, port and server name, only when ``verify_peer`` is on
    (:mod:`dicomnet.security.sessions`). Server side: False issues no session
    tickets, so no TLS 1.3 client resumes; under TLS 1.2 OpenSSL's session-ID cache,
    which Python cannot turn off, still resumes a client offering its session ID.
    A resumed session's chain is not verified again: the peer's certificate (kept in
    the session) is still reported and given to ``verify_callback``, a client's new CA
    or CRL file drops its sessions, and a server's rebuilt context (new CA, CRL or
    certificate) resumes no session of the previous one (new ticket keys, an empty
    session-ID cache: a full handshake, the client's certificate checked again); only
    the peer certificate expiring meanwhile goes unnoticed, for at most the ticket's
    lifetime (2 hours by OpenSSL's default). ``SecurityInfo.session_resumed`` tells
    whether an association resumed one."""
    files_check_interval: float | None = 1.0
    """Server side: seconds between two looks at the certificate, key, CA and CRL files
    (inode, size and modification time), made before a TLS handshake; when they
    changed, a new context is built for the connections that follow, open ones keep
    theirs (:mod:`dicomnet.security.rotation`). 0 looks before every handshake;
    None never (``Server.reload_tls()`` alone rebuilds). A look costs a few stat
    calls (microseconds; a ``capath`` directory of hundreds of files, milliseconds)."""
    _client_cache: ClientCache = field(init=False, repr=False, compare=False, hash=False)
    #: The SecurityWarnings about this configuration's choices already given.
    _warned: set[str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Per object, not per value: two equal configurations share no session or password.
        object.__setattr__(self, "_client_cache", ClientCache())
        object.__setattr__(self, "_warned", set())
        profile = get_profile(self.profile)
        if self.peer_certificate not in _POLICIES:
            raise ConfigurationError(
                f"peer_certificate must be 'required', 'optional' or 'none', "
                f"not {self.peer_certificate!r}"
            )
        if isinstance(self.ciphers, str):
            # A string is a sequence too: each letter would be taken for a suite name.
            raise ConfigurationError(
                f"ciphers must be a sequence of suite names, not one string: ({self.ciphers!r},)")
        if self.ciphers is not None:
            if not self.ciphers:
                raise ConfigurationError("ciphers is empty: give at least one suite, or None")
            names = to_openssl_names(self.ciphers)
            if not profile.allows_extra_suites:
                allowed = set(to_openssl_names(profile.tls12_suites))
                extra = [n for n in names if n not in allowed]
                if extra:
                    suite = suite_by_openssl(extra[0])
                    raise ConfigurationError(
                        f"profile {profile.name!r} ({profile.section}) permits no cipher suite "
                        f"beyond its own; {suite.iana if suite else extra[0]} is not one of them"
                    )
        if self.files_check_interval is not None and not self.files_check_interval >= 0:
            raise ConfigurationError(
                f"files_check_interval must be 0 or more seconds, or None; got "
                f"{self.files_check_interval!r}")
        if self.keyfile is not None and self.certfile is None:
            # Else ignored without a word: a client meant to authenticate would not.
            raise ConfigurationError(
                f"keyfile {self.keyfile} given without certfile: set certfile to the "
                "certificate of that key")
        if self.alpn and any(not p or len(p.encode()) > 255 for p in self.alpn):
            raise ConfigurationError("ALPN protocol names must be 1 to 255 bytes (RFC 7301 3.1)")

    # -- public API ---------------------------------------------------------

    @property
    def profile_object(self) -> Profile:
        """The :class:`Profile` named by ``profile``."""
        return get_profile(self.profile)

    async def server_context(self, *, off_loop: bool = False) -> ssl.SSLContext:
        """Build the server-side context (awaits an async password callback). With
        ``off_loop``, the files are loaded in a worker thread, the password still
        asked on the loop: a CA bundle or a CRL of thousands of entries takes tens
        of milliseconds to load, which a running server's loop must not wait."""
        password = await self._password_async()
        if not off_loop:
            return self._build("server", password)
        import asyncio  # here: importing dicomnet.security loads no asyncio

        return await asyncio.to_thread(self._build, "server", password)

    async def client_context(self) -> ssl.SSLContext:
        """Build a client-side context, a new one at each call (awaits an async password
        callback); associations use :meth:`shared_client_context`."""
        return self._build("client", await self._password_async())

    async def shared_client_context(self) -> ssl.SSLContext:
        """The client context shared by the associations made with this object: built
        (and the password asked) on first use, built again when a certificate, key,
        CA or CRL file changes or our certificate expires. Not to be modified: use
        :meth:`client_context` for a context of one's own."""
        return await self._client_cache.context(self)

    @property
    def client_cache(self) -> ClientCache:
        """The shared client context and the TLS sessions kept for resumption."""
        return self._client_cache

    def server_context_sync(self) -> ssl.SSLContext:
        """Build the server-side context; ConfigurationError if the callback is async."""
        return self._build("server", self._password_sync())

    def client_context_sync(self) -> ssl.SSLContext:
        """Build the client-side context; ConfigurationError if the callback is async."""
        return self._build("client", self._password_sync())

    def hostname_for(self, host: str) -> str | None:
        """The name to pass as ``server_hostname`` when connecting to ``host``."""
        return self.server_hostname or host

    def local_certificate_info(self) -> CertificateInfo | None:
        """Our own certificate described (the first one in ``certfile``), or None."""
        if self.certfile is None:
            return None
        try:
            stat = os.stat(self.certfile)
            return certificate_info(str(self.certfile), stat.st_mtime_ns, stat.st_size)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read certificate {self.certfile}: {exc}") from exc

    def check_established(
        self, obj: ssl.SSLObject | ssl.SSLSocket, *, side: Side, peer: str = "peer",
        local_certificate: CertificateInfo | None = None,
    ) -> SecurityInfo:
        """Describe a finished handshake and apply the checks ``ssl`` cannot do itself.

        ``local_certificate`` is the certificate the connection's context was built
        with (None: read ``certfile``); a server whose files changed since its
        context was built says the one it showed, not the one now on disk.

        Raises TLSError when the peer's certificate key is smaller than the
        profile allows (PS3.15 B.11, B.13), when it is a CA's and not one of our
        trust anchors (RFC 5280 4.2.1.9), when a TLS 1.3 suite outside the
        profile was negotiated, or when ``verify_callback`` refuses the peer (or
        raises: the peer refused all the same, its exception the cause).
        Returns the :class:`SecurityInfo` for ``on_secure_link_ready``.
        """
        profile = self.profile_object
        info = security_info_from_ssl(
            obj, side=side, local_cert=local_certificate or self.local_certificate_info())

        def refuse(reason: str) -> TLSError:
            return TLSError(f"TLS handshake with {peer} failed: {reason}", reason=reason)

        if (
            self.ciphers is None
            and info.cipher_suite is not None
            and not profile.allows_suite(info.cipher_suite)
        ):
            raise refuse(f"negotiated {info.cipher_suite}, which profile {profile.name!r} "
                         "does not allow")
        cert = info.peer_certificate
        if cert is not None:
            problem = key_size_problem(cert, profile)
            if problem:
                raise refuse(f"the peer's certificate {problem}")
            who = "the server" if side == "client" else "the client"
            problem = None if self.allow_ca_peer_certificate else ca_leaf_problem(obj, cert, who)
            if problem:
                raise refuse(problem)
            if self.verify_callback is not None:
                try:
                    accepted = self.verify_callback(cert, 0)
                except Exception as exc:
                    # Fail closed, as a refusal: the connection is closed and the
                    # caller told why, where a bare exception left it open.
                    raise refuse(f"verify_callback raised {type(exc).__name__}: {exc}"
                                 ) from exc
                if not accepted:
                    raise refuse(f"verify_callback refused the peer's certificate "
                                 f"({cert.subject})")
        return info

    # -- password -----------------------------------------------------------

    def _key_path(self) -> Path | None:
        if self.certfile is None:
            return None
        return Path(self.keyfile if self.keyfile is not None else self.certfile)

    def _key_is_encrypted(self) -> bool:
        path = self._key_path()
        if path is None:
            return False
        try:
            return key_is_encrypted(path.read_bytes())
        except FileNotFoundError:
            raise ConfigurationError(f"private key file not found: {path}") from None
        except OSError as exc:
            raise ConfigurationError(f"cannot read private key {path}: {exc}") from exc

    def _password_sync(self) -> bytes | None:
        if not self._key_is_encrypted():
            return None
        if self.key_password is not None:
            return password_bytes(self.key_password)
        result = ask(self._require_callback(), self._key_path())
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: close it so no "never awaited" warning
            raise ConfigurationError(
                "on_private_key_password is async: build the context with "
                "'await config.server_context()' / 'await config.client_context()'"
            )
        return password_bytes(result)

    async def _password_async(self) -> bytes | None:
        if not self._key_is_encrypted():
            return None
        if self.key_password is not None:
            return password_bytes(self.key_password)
        return password_bytes(await ask_async(self._require_callback(), self._key_path()))

    def _require_callback(self) -> PasswordCallback:
        if self.on_private_key_password is None:
            raise ConfigurationError(
                f"private key {self._key_path()} is encrypted: set key_password or "
                "on_private_key_password"
            )
        return self.on_private_key_password

    # -- context ------------------------------------------------------------

    def _build(self, side: Side, password: bytes | None) -> ssl.SSLContext:
        profile = self.profile_object
        check_available(profile)
        if profile.legacy:
            self._warn_once(
                f"TLS profile {profile.name!r} ({profile.title}, {profile.section}) is retired "
                "and weak; use it only to reach old peers")
        if side == "server" and self.certfile is None:
            raise ConfigurationError("a TLS server must have a certificate (set certfile)")

        protocol = ssl.PROTOCOL_TLS_SERVER if side == "server" else ssl.PROTOCOL_TLS_CLIENT
        ctx = ssl.SSLContext(protocol)
        if profile.minimum_version >= ssl.TLSVersion.TLSv1_2:
            ctx.minimum_version = profile.minimum_version
            ctx.maximum_version = profile.maximum_version
        else:
            # Python deprecates TLS 1.0/1.1; the retired profiles ask for them on purpose
            # (and have already warned with SecurityWarning). Only here: catch_warnings
            # swaps process-wide state, and a server rebuilds its context in a thread.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = profile.minimum_version
                ctx.maximum_version = profile.maximum_version
        names = to_openssl_names(self.ciphers or profile.tls12_suites)
        if self.ciphers is not None and profile.maximum_version >= ssl.TLSVersion.TLSv1_3:
            _warn_tls13_suites(self.ciphers, profile)
        if side == "client":
            names = client_suites(names, profile, chosen=self.ciphers is not None)
        if side == "client" and self.ciphers is None:
            names = _client_first(names)
        try:
            ctx.set_ciphers(cipher_string(names, profile.security_level))
        except ssl.SSLError:
            raise ConfigurationError(
                "none of the cipher suites "
                + ", ".join(s.iana for n in names if (s := suite_by_openssl(n)) is not None)
                + f" is available in {ssl.OPENSSL_VERSION}"
            ) from None
        # RFC 9325 3.5 / 3.3: no renegotiation, no compression (Python's default).
        ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION

        if self.certfile is not None:
            self._load_own_certificate(ctx, password, profile, side)
            info = self.local_certificate_info()
            if side == "server" and info is not None:
                check_suites_fit(info, Path(self.certfile), names, profile,
                                 chosen=self.ciphers is not None)
        self._load_trust(ctx, side)

        if side == "client":
            if self.verify_peer:
                ctx.check_hostname = self.check_hostname
                ctx.verify_mode = ssl.CERT_REQUIRED
                # RFC 9525 6.3: the subjectAltName alone names the server (Python's
                # ssl would fall back to the subject CN without one).
                ctx.hostname_checks_common_name = self.hostname_from_common_name
                if not self.check_hostname:
                    self._warn_once(
                        "TLS host name verification is OFF (check_hostname=False): any "
                        "certificate a trusted CA issued is taken for this server")
                if self.hostname_from_common_name and self.check_hostname:
                    self._warn_once(
                        "a server certificate that names the host only in its subject CN "
                        "(no subjectAltName) is taken (hostname_from_common_name=True): "
                        "RFC 9525 6.3 no longer allows it; for old devices only")
                if self.cafile is None and self.capath is None:
                    ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
            else:
                self._warn_once(
                    "TLS server certificate verification is OFF (verify_peer=False): anyone "
                    "can impersonate the server")
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        else:
            mode = _POLICIES[self.peer_certificate]
            if mode != ssl.CERT_NONE and self.cafile is None and self.capath is None:
                raise ConfigurationError(
                    f"peer_certificate={self.peer_certificate!r} needs cafile or capath: the "
                    "CAs whose client certificates this server accepts (or peer_certificate='none')"
                )
            ctx.verify_mode = mode
            ctx.sni_callback = _record_sni_callback
            if offers_dhe(names):
                load_dhe_group(ctx)
            if not self.session_resumption:
                # No tickets: TLS 1.3 then has nothing to resume (RFC 8446 4.6.1), and
                # TLS 1.2 only OpenSSL's session-ID cache (Python cannot turn it off).
                ctx.num_tickets = 0
                ctx.options |= ssl.OP_NO_TICKET

        if self.allow_ca_peer_certificate:
            self._warn_once(
                "a peer whose own certificate is a CA's (CA:TRUE) is taken "
                "(allow_ca_peer_certificate=True): its key can sign more identities")
        if self.alpn:
            ctx.set_alpn_protocols(list(self.alpn))
        keylog = self.keylog_file or os.environ.get("SSLKEYLOGFILE")
        if keylog:
            logger.warning("TLS key log enabled: secrets are written to %s", keylog)
            try:
                ctx.keylog_filename = str(keylog)
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot open the TLS key log {keylog}: {exc.strerror or exc}") from exc
        return ctx

    def _warn_once(self, message: str) -> None:
        """A SecurityWarning about a choice of this configuration, at its first
        context only: a server's rotation and a client's changed files build it
        again, and the choice has not changed."""
        if message not in self._warned:
            # Counted once given: one turned into an error (-W error) refused this
            # context, and must refuse the next one too.
            warnings.warn(message, SecurityWarning, stacklevel=4)
            self._warned.add(message)

    def _load_own_certificate(
        self, ctx: ssl.SSLContext, password: bytes | None, profile: Profile, side: Side
    ) -> None:
        assert self.certfile is not None
        certfile = Path(self.certfile)
        keyfile = Path(self.keyfile) if self.keyfile is not None else None
        load_own_certificate(ctx, certfile, keyfile, password, profile,
                             key_is_encrypted=self._key_is_encrypted)
        info = self.local_certificate_info()
        if info is not None:
            check_own_certificate(info, certfile, profile, side, refuse=self.check_own_certificate)

    def _load_trust(self, ctx: ssl.SSLContext, side: Side) -> None:
        # Weak CAs fail handshakes only where peers are verified against them.
        verifies = self.verify_peer if side == "client" else self.peer_certificate != "none"
        load_trust(ctx, cafile=self.cafile, capath=self.capath, crlfiles=self.crlfiles,
                   checked=self.profile if verifies else None)


#: Cipher lists already warned about (one warning per list and profile, not per build).
_TLS13_WARNED: set[tuple[tuple[str, ...], str]] = set()


def _warn_tls13_suites(ciphers: tuple[str, ...], profile: Profile) -> None:
    """Say once that ``ciphers`` cannot restrict TLS 1.3: Python 3.11 has no way to
    choose TLS 1.3 suites (SSL_CTX_set_ciphersuites), so a user who listed suites
    to allow only those would otherwise believe TLS 1.3 links use them too."""
    key = (tuple(ciphers), profile.name)
    if key in _TLS13_WARNED:
        return
    _TLS13_WARNED.add(key)
    logger.warning(
        "ciphers choose TLS 1.2 suites only: TLS 1.3 links (profile %r allows TLS 1.3) "
        "use OpenSSL's TLS 1.3 suites (%s), which Python cannot restrict; for these "
        "suites alone, use a TLS 1.2-only profile (bcp195-extended)", profile.name,
        ", ".join(_OPENSSL_TLS13_DEFAULTS))


#: The TLS 1.3 suites OpenSSL enables by default (what Python 3.11 negotiates).
_OPENSSL_TLS13_DEFAULTS = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
                           "TLS_AES_128_GCM_SHA256")


# RFC 9325 4.2.1 (as RFC 7525 4.2.1 before it): "Clients SHOULD include
# TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 as the first proposal to any server." Servers
# keep the profile's strongest-first order, which decides under server preference.
_CLIENT_FIRST_SUITE = "ECDHE-RSA-AES128-GCM-SHA256"


def _client_first(names: list[str]) -> list[str]:
    if _CLIENT_FIRST_SUITE not in names:
        return names
    return [_CLIENT_FIRST_SUITE, *(n for n in names if n != _CLIENT_FIRST_SUITE)]


def _record_sni_callback(
    obj: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext
) -> None:
    # Only records the name for SecurityInfo; returning None accepts the handshake.
    record_sni(obj, server_name)


def dev_pki_configs(pki: DevPKI, **overrides: Any) -> tuple[TLSConfig, TLSConfig]:
    """(server, client) configurations using a :func:`make_dev_pki` PKI, for tests.

    Both trust the PKI's CA and present their certificates (mutual
    authentication); ``overrides`` apply to both (e.g. ``profile=...``).
    """
    common: dict[str, Any] = {"cafile": pki.ca_cert, "key_password": pki.password, **overrides}
    server = TLSConfig(certfile=pki.server_cert, keyfile=pki.server_key, **common)
    client = TLSConfig(certfile=pki.client_cert, keyfile=pki.client_key, **common)
    return server, client
