"""A running server's TLS context, built again when its files change.

A server builds its ``ssl.SSLContext`` when it starts. Before a TLS handshake,
at most once per ``TLSConfig.files_check_interval`` seconds, it compares the
state of its certificate, key, CA and CRL files (inode, size, modification
time: :func:`~dicomnet.security.sessions.files_fingerprint`) with that of the
files its context was read from. When they differ it builds a new context, off
the event loop (a CA bundle or a big CRL takes tens of milliseconds to load),
and the connections that follow use it; a connection arriving during the build
waits for it, so that a new CRL applies to the very next client. Connections
already made keep their TLS session and its context (an ``ssl.SSLSocket``
holds its context), and end as they would have.

A build that fails (a file half copied, a key that does not match the
certificate, a password that does not open the new key, a callback that
raises, an expired certificate refused by ``check_own_certificate``) leaves the
server on its previous context: an ERROR says what is wrong and which
certificate stays in use, once for that state of the files. It is tried again
when they change again, or when asked (:meth:`ServerContext.reload`, which
``dicomnet serve`` does on SIGHUP).

The private key's password is asked as at start: ``key_password``, else
``on_private_key_password`` again (on the loop; it must answer without anyone
at a terminal).

Session resumption (RFC 8446 2.2, RFC 5077): OpenSSL gives every context its
own random session-ticket keys and its own session-ID cache, so no session of
the previous context resumes on a new one: a client offering one makes a full
handshake, in which its certificate is verified against the new CA and CRL
(one that is now revoked is refused).
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from dicomnet.errors import DicomNetError
from dicomnet.security.sessions import files_fingerprint

if TYPE_CHECKING:
    import asyncio

    from dicomnet.security.certificates import CertificateInfo
    from dicomnet.security.config import TLSConfig

__all__ = ["BuiltContext", "ServerContext"]

logger = logging.getLogger("dicomnet.security")


@dataclass(frozen=True, slots=True)
class BuiltContext:
    """A server context and what it was built from."""

    context: ssl.SSLContext
    """The context new connections are handshaken with."""
    fingerprint: tuple[object, ...]
    """The state of the files it was read from (``files_fingerprint``)."""
    certificate: CertificateInfo | None
    """Our certificate in it (the first one of ``certfile`` then)."""


def describe(cert: CertificateInfo | None) -> str:
    """A certificate in a log line: subject, serial number, end of validity."""
    if cert is None:
        return "(unreadable)"
    return (f"{cert.subject} (serial {cert.serial_hex}, valid until "
            f"{cert.not_after.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC)")


def changed_files(config: TLSConfig, before: tuple[object, ...],
                  after: tuple[object, ...]) -> list[str]:
    """What differs between two ``files_fingerprint`` of ``config``, in words."""
    labels = [f"certificate {config.certfile}", f"key {config.keyfile}",
              f"CA file {config.cafile}", *(f"CRL {crl}" for crl in config.crlfiles)]
    files_before = cast("tuple[object, ...]", before[0])
    files_after = cast("tuple[object, ...]", after[0])
    changes = [label for label, old, new in zip(labels, files_before, files_after, strict=True)
               if old != new]
    if before[1] != after[1]:
        changes.append(f"CA directory {config.capath}")
    if before[2] != after[2]:
        changes.append("SSLKEYLOGFILE")
    return changes


class ServerContext:
    """The context of a running server's new connections, rebuilt from its files
    when they change (see the module's docstring)."""

    def __init__(self, config: TLSConfig) -> None:
        self.config = config
        self._built: BuiltContext | None = None
        #: The state of the files whose build failed: not tried again until they change.
        self._failed: tuple[object, ...] | None = None
        self._next_check = 0.0
        self._building: asyncio.Task[bool] | None = None
        #: The certificate whose expiry was already logged (once, not per connection).
        self._expiry_logged: CertificateInfo | None = None
        #: A build that outlasted a connection's wait: the others do not wait for it.
        self._slow: asyncio.Task[bool] | None = None

    async def start(self) -> BuiltContext:
        """Build the first context, on the loop as before the server listens; raises
        (ConfigurationError...) what the build raises."""
        fingerprint = files_fingerprint(self.config)
        context = await self.config.server_context()
        self._built = BuiltContext(context, fingerprint, self.config.local_certificate_info())
        self._schedule_check()
        return self._built

    @property
    def built(self) -> BuiltContext:
        """The context in use now."""
        assert self._built is not None, "start() first"
        return self._built

    async def current(self, wait_at_most: float | None = None) -> BuiltContext:
        """The context for a new connection: the one in use, unless the files changed
        since it was built (looked at no more than once per ``files_check_interval``),
        in which case a new one is built and, if that works, returned. Never raises
        for a failed build (logged); only cancellation.

        A build still going after ``wait_at_most`` seconds (a password callback that
        does not answer) leaves this connection on the context in use; the build
        goes on for the next ones, and its outcome is logged when it ends."""
        import asyncio  # here: importing dicomnet.security loads no asyncio

        self._check_expiry()
        building = self._building
        if building is None:
            now = time.monotonic()
            if now < self._next_check:
                return self.built
            self._schedule_check(now)
            fingerprint = files_fingerprint(self.config)
            if fingerprint in (self.built.fingerprint, self._failed):
                return self.built
            building = self._start_build(fingerprint, forced=False)
        if building is self._slow:
            return self.built  # known to be slow: waited for once, not by every connection
        # Shielded: a waiting connection that is cancelled (evicted) or gives up
        # leaves the build on.
        try:
            async with asyncio.timeout(wait_at_most):
                await asyncio.shield(building)
        except TimeoutError:
            self._slow = building
            logger.warning("TLS files changed, and the new context is still being built "
                           "after %gs: new connections get the certificate in use, %s, "
                           "until it is done", wait_at_most, describe(self.built.certificate))
        return self.built

    async def reload(self) -> bool:
        """Build a new context from the files now, changed or not (SIGHUP in
        ``dicomnet serve``). True when it is in use; False when the build failed
        (logged; the previous context stays)."""
        import asyncio

        if self._building is not None:
            # It read the files before this request: build again after it.
            await asyncio.shield(self._building)
        return await asyncio.shield(
            self._start_build(files_fingerprint(self.config), forced=True))

    def close(self) -> None:
        """Cancel a build in progress (the server is closing)."""
        if self._building is not None:
            self._building.cancel()

    def _check_expiry(self) -> None:
        """Our certificate expired while the server runs: every client that verifies
        it refuses the handshake from then on. Said once per certificate, as an
        ERROR naming the file to renew (picked up without a restart)."""
        cert = self.built.certificate
        if (cert is None or cert is self._expiry_logged
                or dt.datetime.now(dt.UTC) < cert.not_after):
            return
        self._expiry_logged = cert
        logger.error("our certificate %s has expired: clients that verify it refuse every "
                     "connection from now on; renew %s (new connections get the new one "
                     "without a restart)", describe(cert), self.config.certfile)

    def _schedule_check(self, now: float | None = None) -> None:
        interval = self.config.files_check_interval
        if interval is None:
            self._next_check = float("inf")
        else:
            self._next_check = (time.monotonic() if now is None else now) + interval

    def _start_build(self, fingerprint: tuple[object, ...], *, forced: bool) -> asyncio.Task[bool]:
        import asyncio

        task = asyncio.get_running_loop().create_task(self._rebuild(fingerprint, forced=forced))
        self._building = task
        task.add_done_callback(self._build_done)
        return task

    def _build_done(self, task: asyncio.Task[bool]) -> None:
        if self._building is task:
            self._building = None

    async def _rebuild(self, fingerprint: tuple[object, ...], *, forced: bool) -> bool:
        old = self.built
        changes = changed_files(self.config, old.fingerprint, fingerprint)
        if forced:
            why = "TLS reload asked (" + (
                "changed: " + ", ".join(changes) if changes else "no file changed") + ")"
        else:
            why = "TLS files changed (" + ", ".join(changes) + ")"
        try:
            context = await self.config.server_context(off_loop=True)
            certificate = self.config.local_certificate_info()
        except Exception as exc:
            self._failed = fingerprint
            # Ours say what is wrong (file, reason); anything else is a callback's
            # bug or ours: its traceback too.
            known = isinstance(exc, DicomNetError | ssl.SSLError | OSError)
            logger.error("%s: cannot use them: %s; still serving with the certificate "
                         "loaded before, %s, until they change again",
                         why, exc if known else f"{type(exc).__name__}: {exc}",
                         describe(old.certificate), exc_info=not known)
            return False
        self._built = BuiltContext(context, fingerprint, certificate)
        self._failed = None
        logger.info("%s: new connections now get certificate %s%s; open associations keep "
                    "their TLS session", why, describe(certificate),
                    "" if old.certificate == certificate else
                    f", in place of {describe(old.certificate)}")
        return True
