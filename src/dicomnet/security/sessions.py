"""What a TLS client keeps between associations: its context, and sessions to resume.

Every :class:`~dicomnet.security.config.TLSConfig` owns one :class:`ClientCache`.
The first association made with the configuration builds the client
``ssl.SSLContext`` (reading the certificate, key and CA files, asking
``on_private_key_password`` once); later ones reuse it. It is built again only
when one of those files changes (its inode, size or modification time: a
rotated certificate is picked up), when ``SSLKEYLOGFILE`` changes, or once our
own certificate has expired (so that the build refuses it, as it would have).

Session resumption (RFC 8446 2.2, RFC 5077): when an association ends with a
clean A-RELEASE or is rejected (A-ASSOCIATE-RJ, an orderly answer after a
verified handshake: a busy peer's retry resumes), the connection's
``ssl.SSLSession`` is kept for its destination (host, port and the name sent as
SNI and verified in the server's certificate) and offered on the next
connection there, which then skips the certificate exchange and its public-key
operations. Under TLS 1.3 the ticket comes after the handshake
(NewSessionTicket, RFC 8446 4.6.1), read with the first application data,
which is why the session is taken at the end of the association (or with the
A-ASSOCIATE-RJ, which comes after it) and not right after the handshake. An
aborted association leaves none: a link cut mid-way may be a TLS failure, after
which RFC 5246 7.2.2 forbids resuming. Sessions are kept only:

- for a context that verifies the server (``verify_peer``): resuming skips
  verification, so a session must come from a handshake that did it;
- for the same destination: never offered to another host, port or server name;
- for the current context: a rebuilt context (new certificate, new trust) drops
  them all, and one the server refused to resume is replaced by the new one;
- while the server said it would take them (the session's lifetime).

A peer whose handshake fails while a session is offered gets no more offers
from this configuration (:meth:`SessionSlot.failed`).

A resumed session still names the peer's certificate (OpenSSL keeps it in the
session, and a TLS 1.3 server in its ticket), so ``SecurityInfo``, the
profile's key-size checks and ``verify_callback`` see it on every association.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from dicomnet.security.config import TLSConfig

__all__ = ["ClientCache", "Destination", "SessionSlot", "files_fingerprint"]

#: (host connected to, port, server name sent as SNI and checked in the certificate).
Destination = tuple[str, int, str | None]

#: Destinations whose session is kept (the least recently used go first).
MAX_SESSIONS = 64

FileState = tuple[int, int, int, int] | None


def _file_state(path: str | Path) -> FileState:
    try:
        st = os.stat(path)
    except OSError:
        return None  # missing: the build says so, as it did before caching
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _directory_state(path: str | Path) -> tuple[object, ...]:
    """A capath: the directory and every entry in it (OpenSSL reads hashed
    certificates from it at verification time, and unhashed ones are loaded)."""
    try:
        with os.scandir(path) as entries:
            names = sorted(entry.name for entry in entries)
    except OSError:
        return (None,)
    return (_file_state(path), *((name, _file_state(Path(path, name))) for name in names))


def files_fingerprint(config: TLSConfig) -> tuple[object, ...]:
    """What a client context built from ``config`` was read from: the state of each
    of its files, and the key log destination. Equal fingerprints, same context."""
    files = (config.certfile, config.keyfile, config.cafile, *config.crlfiles)
    return (
        tuple(None if f is None else _file_state(f) for f in files),
        None if config.capath is None else _directory_state(config.capath),
        None if config.keylog_file is not None else os.environ.get("SSLKEYLOGFILE"),
    )


@dataclass(frozen=True, slots=True)
class _Built:
    context: ssl.SSLContext
    fingerprint: tuple[object, ...]
    #: When our certificate expires (then rebuilt, which refuses it); None: never.
    valid_until: dt.datetime | None


def _resumable(session: ssl.SSLSession, protocol: str | None) -> bool:
    """Whether offering ``session`` can resume it: TLS 1.3 needs a ticket (RFC 8446
    4.6.1); TLS 1.2 a ticket (RFC 5077) or a session ID the server may cache."""
    if protocol == "TLSv1.3":
        return session.has_ticket
    return session.has_ticket or bool(session.id)


def _expired(session: ssl.SSLSession) -> bool:
    # ``time`` is when it was made; ``timeout`` the lifetime the server gave its ticket.
    return time.time() >= session.time + session.timeout


class ClientCache:
    """One TLSConfig's client context and the sessions to resume, shared by every
    association made with that configuration, in any thread or event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: _Built | None = None
        self._sessions: OrderedDict[Destination, ssl.SSLSession] = OrderedDict()
        #: Destinations whose handshake failed with a session offered: no more offers.
        self._no_offer: set[Destination] = set()
        #: A build in progress, per event loop: concurrent first associations wait
        #: for it instead of asking for the password again.
        self._building: dict[asyncio.AbstractEventLoop, asyncio.Future[None]] = {}

    async def context(self, config: TLSConfig) -> ssl.SSLContext:
        """The client context for ``config``: the one built before when its files
        have not changed, else a new one (and no session of the old one is kept)."""
        import asyncio  # here: importing dicomnet.security loads no asyncio

        loop = asyncio.get_running_loop()
        while True:
            fingerprint = files_fingerprint(config)
            current = self._current(fingerprint)
            if current is not None:
                return current
            with self._lock:
                waiting = self._building.get(loop)
                if waiting is None:
                    building: asyncio.Future[None] = loop.create_future()
                    self._building[loop] = building
                    break
            # Only our own cancellation raises here; the builder's outcome is read below.
            await asyncio.wait([waiting])
            error = None if waiting.cancelled() else waiting.exception()
            if error is not None:
                raise error  # the password or a file was wrong: asked once, said to all
            # Built, or the builder was cancelled: look again.
        try:
            context = await config.client_context()
            own = config.local_certificate_info()
        except BaseException as exc:
            if isinstance(exc, Exception):
                building.set_exception(exc)
                building.exception()  # retrieved: no "never retrieved" log without waiters
            else:
                building.cancel()
            raise
        finally:
            with self._lock:
                if self._building.get(loop) is building:
                    del self._building[loop]
        now = dt.datetime.now(dt.UTC)
        valid_until = own.not_after if own is not None and own.not_after > now else None
        with self._lock:
            self._built = _Built(context, fingerprint, valid_until)
            self._sessions.clear()
            self._no_offer.clear()
        building.set_result(None)
        return context

    def _current(self, fingerprint: tuple[object, ...]) -> ssl.SSLContext | None:
        with self._lock:
            built = self._built
        if built is None or built.fingerprint != fingerprint:
            return None
        if built.valid_until is not None and dt.datetime.now(dt.UTC) >= built.valid_until:
            return None
        return built.context

    def slot(self, context: ssl.SSLContext, destination: Destination) -> SessionSlot:
        """Where the session of a connection to ``destination`` comes from and goes."""
        return SessionSlot(self, context, destination)

    # -- sessions (through SessionSlot) ------------------------------------------------

    def _is_current(self, context: ssl.SSLContext) -> bool:
        return self._built is not None and self._built.context is context

    def _session_for(self, context: ssl.SSLContext,
                     destination: Destination) -> ssl.SSLSession | None:
        with self._lock:
            if not self._is_current(context) or destination in self._no_offer:
                return None
            session = self._sessions.get(destination)
            if session is not None and _expired(session):
                del self._sessions[destination]
                return None
            return session

    def _keep(self, context: ssl.SSLContext, destination: Destination,
              session: ssl.SSLSession) -> None:
        with self._lock:
            if not self._is_current(context) or destination in self._no_offer:
                return  # rebuilt meanwhile: the session belongs to the old context
            self._sessions[destination] = session
            self._sessions.move_to_end(destination)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)

    def _forget(self, context: ssl.SSLContext, destination: Destination, *,
                no_more_offers: bool) -> None:
        with self._lock:
            if not self._is_current(context):
                return  # rebuilt meanwhile: the new context's sessions are not concerned
            self._sessions.pop(destination, None)
            if no_more_offers:
                self._no_offer.add(destination)


@dataclass(slots=True)
class SessionSlot:
    """One client connection's link to its configuration's sessions."""

    cache: ClientCache
    context: ssl.SSLContext
    destination: Destination
    #: The session offered in the handshake, if one was.
    offered: ssl.SSLSession | None = None

    def offer(self) -> ssl.SSLSession | None:
        """The session to offer in the next handshake to this destination, if any."""
        self.offered = self.cache._session_for(self.context, self.destination)
        return self.offered

    def keep(self, session: ssl.SSLSession, protocol: str | None) -> None:
        """Remember the connection's ``session`` (negotiated with ``protocol``) for the
        next association, at the clean end of this one (a TLS 1.3 ticket has been
        read by then). Only sessions of a verified server (``CERT_REQUIRED``) that
        can be resumed are kept."""
        if self.context.verify_mode != ssl.CERT_REQUIRED:
            return
        if _resumable(session, protocol) and not _expired(session):
            self.cache._keep(self.context, self.destination, session)

    def failed(self) -> None:
        """The handshake offering :attr:`offered` failed: drop the session, and offer
        this destination none again (a peer that cannot resume would fail every
        other association)."""
        self.cache._forget(self.context, self.destination, no_more_offers=True)
        self.offered = None

    def drop(self) -> None:
        """Forget this destination's session (the resumed link was refused after
        the handshake); a later association makes a new one."""
        self.cache._forget(self.context, self.destination, no_more_offers=False)
