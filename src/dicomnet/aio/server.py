"""The asyncio server (association acceptor): ``server = await serve(...)``.

One accept loop; each connection runs in its own task from its first byte:
the TLS/plain check, the TLS handshake (with its own timeout), association
negotiation and DIMSE. A client that connects and sends nothing therefore
delays nobody. Services (Verification, Storage...) plug in as
``ServiceProvider`` objects keyed by DIMSE command.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..config import DEFAULT_PLAIN_PORT, DEFAULT_TLS_PORT, Limits, Timeouts, check_ae_title
from ..errors import (
    AssociationRejected,
    DicomNetError,
    RemoteProtocolError,
    TLSError,
    TransportError,
)
from ..security.config import TLSConfig
from ..security.info import SecurityInfo
from ..security.rotation import ServerContext
from ..ul.connection import ULConnection
from ..ul.events import Aborted, AssociateRequested, ReleaseConfirmed, ReleaseRequested
from ..ul.fsm import State
from ..ul.negotiation import AcceptorPolicy, accepted_contexts, async_window, negotiate
from ..ul.pdu import AssociateRJ, AssociateRQ
from ..ul.pdu_codes import Rejection
from .acceptor import (
    HOOK_FAILED,
    GuardedLinkHook,
    MergedContexts,
    checked_rejection,
    link_words,
    log_end,
    refused_contexts,
    unanswered_identity,
)
from .indications import MessagesRouted
from .operations import OperationsWindow
from .server_association import ServerAssociation, ServiceProvider
from .server_dispatch import RequestDispatch
from .server_events import (
    AssociationAccepted,
    ConnectionObserver,
    ConnectionRefused,
    ending_event,
    tell,
    with_abort_reason,
)
from .server_hooks import contained
from .transport import PeerSilent, SecureLinkHook, describe_os_error, wrap_accepted

__all__ = ["HOOK_FAILED", "AssociationInfo", "AssociationRequestHook", "DrainOutcome", "Server",
           "ServerAssociation", "ServiceProvider", "serve"]

log = logging.getLogger("dicomnet.aio")

#: Addresses counted one by one in an eviction episode's summary (the rest in sum).
_EVICTION_ADDRESSES = 100


@dataclass(frozen=True, slots=True)
class AssociationInfo:
    """What ``on_association_request`` sees to decide on an incoming association:
    the A-ASSOCIATE-RQ's AE titles and the request itself (``rq``, PS3.8 9.3.2),
    the peer's (host, port), and its TLS link (None on a plain connection)."""

    calling_ae_title: str
    called_ae_title: str
    peer: tuple[str, int]
    rq: AssociateRQ
    security: SecurityInfo | None


@dataclass(frozen=True, slots=True)
class DrainOutcome:
    """What ``Server.drain()`` did with the associations open when it began:
    ``drained`` ended by themselves (released by their peers, or ended by them)
    before the deadline; ``aborted`` were still open then, and aborted."""

    drained: int
    aborted: int


#: Returns None to go on, or the A-ASSOCIATE-RJ to send: a ``Rejection``
#: (``dicomnet.ul.pdu``; ``Rejection.CALLING_AE_TITLE_NOT_RECOGNIZED``...) or a plain
#: (result, source, reason) tuple (PS3.8 Table 9-21). One that raises rejects the
#: association with ``HOOK_FAILED`` (and is logged).
AssociationRequestHook = Callable[
    [AssociationInfo], tuple[int, int, int] | None | Awaitable[tuple[int, int, int] | None]
]


async def _transport_end(assoc: ServerAssociation) -> None:
    """Let the Upper Layer hear why the transport ended, when a write of ours
    failed first (the A-ASSOCIATE-AC's, to a peer that reset the connection
    before it was answered): asyncio tells the end a turn later (Evt17, AA-4),
    with its error, which then names the association's end."""
    writer = assoc.stream.writer
    if assoc.ul.state is State.Sta1 or not writer.is_closing():
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()


@dataclass(eq=False)
class Server(RequestDispatch):
    """A running DICOM server, as ``serve()`` returns it (started; use it rather
    than this constructor). ``close()`` stops accepting and aborts open
    associations; ``drain()`` stops accepting and lets them end first, within
    a deadline; ``async with`` closes it at the end of the block."""

    ae_title: str
    host: str
    port: int
    tls: TLSConfig | None
    timeouts: Timeouts
    limits: Limits
    providers: Sequence[ServiceProvider]
    on_secure_link_ready: SecureLinkHook | None = None
    on_association_request: AssociationRequestHook | None = None
    require_called_ae_title: bool = False
    on_connection_event: ConnectionObserver | None = None

    def __post_init__(self) -> None:
        # The server's own state: no constructor arguments (they were), not in repr.
        self._sock: socket.socket | None = None
        self._tls_context: ServerContext | None = None  # rebuilt as its files change
        self._accept_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        #: Accepted associations by peer address (Limits.max_associations_per_host).
        self._per_host: collections.Counter[str] = collections.Counter()
        #: Connections not yet associated, oldest first, with their peer's address
        #: and socket (closed here should the task be cancelled before it ever ran).
        self._pending: dict[asyncio.Task[None], tuple[str, socket.socket]] = {}
        self._evicted: set[asyncio.Task[None]] = set()
        #: Connections closed since the limit was last reached, by address (the
        #: first _EVICTION_ADDRESSES addresses; the others only counted).
        self._evictions: collections.Counter[str] = collections.Counter()
        self._evicted_total = 0
        self._providers: dict[int, ServiceProvider] = {}
        self._closed = asyncio.Event()
        #: The providers' close(), run once in a thread for every wait_closed().
        self._providers_closing: asyncio.Future[object] | None = None
        #: Tasks of the associations accepted and not ended yet (drain() waits for them).
        self._associations: set[asyncio.Task[None]] = set()
        #: drain() began: association requests are rejected (transient).
        self._draining = False
        #: Associations close() found open (and aborted), counted when it first ran.
        self._aborted_at_close = 0

    @property
    def active_associations(self) -> int:
        """Associations accepted and not ended yet."""
        return self._active

    @property
    def pending_connections(self) -> int:
        """Connections in the TLS handshake or awaiting their A-ASSOCIATE-RQ."""
        return len(self._pending)

    def _policy(self) -> AcceptorPolicy:
        # A view, not a copy: a provider's contexts may answer for abstract syntaxes
        # it does not list (a storage SCP taking unknown SOP classes). The last
        # provider naming a syntax decides, as when the mappings were merged.
        contexts = MergedContexts([p.contexts for p in reversed(self.providers)])
        return AcceptorPolicy(contexts=contexts, max_pdu_length=self.limits.max_pdu_length,
                              max_async_operations=self.limits.max_async_operations)

    async def _start(self) -> None:
        for provider in self.providers:
            for command in provider.command_fields:
                self._providers[command] = provider
        if self.tls is not None:
            self._tls_context = ServerContext(self.tls)
            await self._tls_context.start()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            # The listening socket is the server's transport: a script's
            # ``except TransportError`` catches it with the other network failures.
            raise TransportError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror}"
            ) from exc
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._accept_task = asyncio.get_running_loop().create_task(self._accept_loop())
        log.info("%s listening on %s:%s (%s)", self.ae_title, self.host, self.port,
                 f"TLS, profile {self.tls.profile}" if self.tls else "plain DICOM")

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        failing_since: float | None = None  # accept() failing (e.g. EMFILE) since
        while True:
            try:
                conn, address = await loop.sock_accept(self._sock)
            except asyncio.CancelledError:
                raise
            except OSError as exc:  # e.g. EMFILE: do not spin, do not die
                # Said once, not ten times a second: a flood of connections that
                # exhausts the descriptors must not flood the log as well.
                if failing_since is None:
                    failing_since = loop.time()
                    log.warning("cannot accept connections: %s (%d open); retrying every "
                                "0.1 s", describe_os_error(exc), len(self._tasks))
                await asyncio.sleep(0.1)
                continue
            if failing_since is not None:
                log.warning("accepting connections again, after %.1f s",
                            loop.time() - failing_since)
                failing_since = None
            limit = self.limits.max_pending_connections
            try:
                if len(self._pending) >= limit:
                    # Its descriptor is free only once its task has run: a burst of
                    # connections is accepted without yielding to the loop otherwise.
                    oldest = self._evict_oldest()
                    if oldest is not None:
                        evicted, evicted_sock = oldest
                        await asyncio.wait({evicted}, timeout=1.0)
                        if evicted.done():
                            # Cancelled before its first step, it never ran its close.
                            evicted_sock.close()
                elif self._evicted_total and len(self._pending) < limit - limit // 4:
                    self._end_evictions()
            except BaseException:  # the server closing meanwhile
                conn.close()
                raise
            task = loop.create_task(self._serve_connection(conn, address))
            self._tasks.add(task)
            self._pending[task] = (str(address[0]), conn)
            task.add_done_callback(self._connection_done)

    def _connection_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._pending.pop(task, None)
        self._evicted.discard(task)
        limit = self.limits.max_pending_connections
        if self._evicted_total and len(self._pending) < limit - limit // 4:
            # The flood is over as its connections end (closed by their peer, ARTIM,
            # the handshake timeout): said now, not at the next connection accepted,
            # which may come hours later or never.
            self._end_evictions()

    def _evict_oldest(self) -> tuple[asyncio.Task[None], socket.socket] | None:
        """Close the oldest connection that has not associated yet, to make room
        (``Limits.max_pending_connections``); return its task and socket (None if
        it had just ended). Logged once per episode, not per connection: a flood
        must not flood the log as well."""
        task, (address, sock) = next(iter(self._pending.items()))
        del self._pending[task]
        if task.done():  # ended, its done-callback not run yet: room made, none closed
            return None
        self._evicted.add(task)
        task.cancel()
        if not self._evicted_total:
            log.warning("%d connections are waiting to associate (the limit): closing the "
                        "oldest (from %s), and the oldest again as new ones come",
                        len(self._pending) + 1, address)
        self._evicted_total += 1
        if address in self._evictions or len(self._evictions) < _EVICTION_ADDRESSES:
            self._evictions[address] += 1
        return task, sock

    def _end_evictions(self) -> None:
        shown = self._evictions.most_common(5)
        sources = ", ".join(f"{address}: {count}" for address, count in shown)
        others = self._evicted_total - sum(count for _, count in shown)
        log.warning("no longer closing waiting connections; closed %d (from %s%s)",
                    self._evicted_total, sources,
                    f"; {others} from other addresses" if others else "")
        self._evictions.clear()
        self._evicted_total = 0

    async def _serve_connection(self, sock: socket.socket, address: tuple[str, int]) -> None:
        started = asyncio.get_running_loop().time()
        link_hook = GuardedLinkHook(self.on_secure_link_ready)
        try:
            built = (await self._tls_context.current(self.timeouts.tls_handshake)
                     if self._tls_context else None)
            stream = await wrap_accepted(
                sock, tls=self.tls, context=built.context if built else None,
                handshake_timeout=self.timeouts.tls_handshake, artim_timeout=self.timeouts.artim,
                on_secure_link_ready=link_hook if self.on_secure_link_ready else None,
                local_certificate=built.certificate if built else None,
                peer=(str(address[0]), int(address[1])),
            )
        except PeerSilent as exc:
            log.info("%s", exc)
            return
        except TLSError as exc:
            log.warning("connection refused: %s", exc)
            tell(self.on_connection_event, ConnectionRefused(
                (str(address[0]), int(address[1])), "tls", exc.reason or str(exc),
                asyncio.get_running_loop().time() - started))
            return
        except (OSError, DicomNetError) as exc:
            log.info("connection from %s:%s failed before DICOM: %s", *address[:2],
                     describe_os_error(exc))
            sock.close()
            return
        except asyncio.CancelledError:  # evicted, or the server closing
            sock.close()  # a no-op once the TLS layer took the socket (and closed it)
            if asyncio.current_task() in self._evicted:
                tell(self.on_connection_event, ConnectionRefused(
                    (str(address[0]), int(address[1])), "limit", "too many connections "
                    "waiting to associate: the oldest closed",
                    asyncio.get_running_loop().time() - started))
            raise
        except Exception:  # our bug: this connection only
            log.exception("connection from %s:%s failed before DICOM", *address[:2])
            sock.close()
            return
        ul = ULConnection("acceptor", artim_timeout=self.timeouts.artim,
                          max_associate_length=self.limits.max_associate_length)
        assoc = ServerAssociation(self, stream, ul)
        assoc.connected_at = started
        ul.transport_connected(asyncio.get_running_loop().time())
        assoc.start_receiving()
        assoc._rearm()
        counted = False
        outcome = "closed"
        try:
            while ul.state.name != "Sta1" and not stream.writer.is_closing():
                for event in await assoc._read_events():
                    if isinstance(event, AssociateRequested):
                        counted = await self._on_request(assoc, event.pdu,
                                                         link_hook_failed=link_hook.failed)
                        if counted:  # until accepted (rejected ones linger for ARTIM)
                            task = asyncio.current_task()
                            self._pending.pop(task, None)  # type: ignore[arg-type]
                            self._associations.add(task)  # type: ignore[arg-type]
                    elif isinstance(event, MessagesRouted):
                        # P-DATA was routed as it was read (borrow_pdata, above).
                        await self._on_messages(assoc, event.messages)
                        if event.error is not None:
                            raise event.error
                    elif isinstance(event, ReleaseRequested):
                        unfinished = assoc.drop_unfinished()
                        if unfinished is not None:
                            log.warning("%s@%s:%s asked to release before %s had arrived "
                                        "whole: not performed, nothing stored",
                                        assoc.calling_ae_title, *stream.peer, unfinished)
                        # Every response goes out before the A-RELEASE-RP (PS3.7 D.3.3.3).
                        await assoc.finish_operations()
                        # Unless the association ended meanwhile (an A-ABORT, a PDU
                        # that Sta8 does not allow, a closed connection: PS3.8
                        # Table 9-10): then there is no release to answer.
                        if ul.state is State.Sta8:
                            ul.release_response(asyncio.get_running_loop().time())
                            outcome = "released" + (
                                f" ({unfinished} left unfinished)" if unfinished else "")
                    elif isinstance(event, ReleaseConfirmed):
                        outcome = "released"
                    elif isinstance(event, Aborted):
                        outcome = f"aborted ({event.detail})"
                await assoc._flush()
        except RemoteProtocolError as exc:
            outcome = f"aborted (invalid DIMSE data: {exc})"
            assoc._local_abort(str(exc))
            with contextlib.suppress(Exception):
                await assoc._flush()
        except asyncio.CancelledError:
            if not outcome.startswith("released"):
                # Released already, the server stopped in Sta13 (PS3.8 AR-4: waiting
                # for the peer to close): nothing of the association was cut.
                outcome = "aborted (server closing)"
            if asyncio.current_task() not in self._evicted:  # evicted: just closed
                with contextlib.suppress(Exception):
                    await asyncio.shield(assoc.abort())
            raise
        except Exception as exc:
            if exc is assoc.failure:
                # The association ended under an operation (the peer aborted or
                # went away before its response): an outcome, not our fault.
                outcome = f"aborted ({assoc.failure.detail or assoc.failure})"
            else:
                log.exception("association with %s:%s failed", *stream.peer)
                outcome = "aborted (internal error)"
                with contextlib.suppress(Exception):
                    await assoc.abort()
        finally:
            closing: asyncio.CancelledError | None = None
            try:
                await assoc.finish_operations()
            except asyncio.CancelledError as exc:
                # The server closing (it cancels each task once) while this one ended
                # otherwise: the end still runs whole, its connection closed, its
                # line logged, its slot given back; the cancellation after that.
                closing = exc
            except Exception:  # its operations' own errors: told by them
                pass
            assoc.abort_unclaimed_sinks()
            assoc.stop_timers()
            if counted:
                self._associations.discard(asyncio.current_task())
                self._active -= 1
                self._per_host[assoc.peer[0]] -= 1
                if not self._per_host[assoc.peer[0]]:
                    del self._per_host[assoc.peer[0]]
            if outcome == "closed" and counted and assoc.failure is None:
                await _transport_end(assoc)
            # Released, then ARTIM closed a connection the peer kept (PS3.8 AA-2): released.
            if assoc.failure is not None and outcome == "closed":
                outcome = f"aborted ({assoc.failure.detail or assoc.failure})"
            elif outcome == "closed" and counted:
                # Accepted, then the connection went without a release: an
                # A-P-ABORT (PS3.8 AA-4), in the log as in the event.
                outcome = "aborted (the connection closed)"
            elif outcome == "closed" and assoc.tls_error is not None:
                # The TLS link failed before the A-ASSOCIATE-RQ (a bad record, an
                # alert): no indication in the Upper Layer (PS3.8 AA-5 in Sta2), but
                # no health check's close either; why, as a handshake's failure says.
                outcome = f"aborted ({assoc.tls_error.reason})"
            outcome = with_abort_reason(outcome, assoc.failure)
            await stream.close()
            seconds = asyncio.get_running_loop().time() - started
            evicted = asyncio.current_task() in self._evicted
            log_end(assoc, outcome, seconds, evicted=evicted, accepted=counted,
                    rejected=assoc.rejected)
            tell(self.on_connection_event, ending_event(assoc, outcome, seconds,
                                                        accepted=counted, evicted=evicted))
            if closing is not None:
                raise closing

    async def _on_request(self, assoc: ServerAssociation, rq: AssociateRQ, *,
                          link_hook_failed: bool = False) -> bool:
        """Answer an A-ASSOCIATE-RQ (PS3.8 9.3.2): accepted (True), or rejected
        (9.3.4). A user hook that raised (``on_secure_link_ready`` on this
        connection, or ``on_association_request`` now) rejects it as transient
        with no reason given (2, 1, 1), logged with its traceback; a hook's bug
        must neither admit a peer it did not check nor abort the association."""
        ul = assoc.ul
        now = asyncio.get_running_loop().time()
        assoc.calling_ae_title = rq.calling_ae_title
        assoc.called_ae_title = rq.called_ae_title
        rejection: tuple[int, int, int] | None = None
        limit = ""  # which local limit, for the log
        if link_hook_failed:
            rejection = HOOK_FAILED
        elif limit := self._limit_reached(assoc.peer[0]):
            rejection = Rejection.LOCAL_LIMIT_EXCEEDED
        elif self.require_called_ae_title and rq.called_ae_title != self.ae_title:
            rejection = Rejection.CALLED_AE_TITLE_NOT_RECOGNIZED
            limit = f": this server is {self.ae_title} (require_called_ae_title)"
        elif self.on_association_request is not None:
            info = AssociationInfo(rq.calling_ae_title, rq.called_ae_title, assoc.peer, rq,
                                   assoc.security)
            try:
                with contained("on_association_request hook"):  # its SystemExit too
                    result = self.on_association_request(info)
                    if asyncio.iscoroutine(result):
                        result = await result
            except Exception:
                log.exception("the on_association_request hook raised for %s@%s:%s: "
                              "rejected (transient)", rq.calling_ae_title, *assoc.peer)
                rejection = HOOK_FAILED
            else:
                rejection = checked_rejection(result)
                # Others may have been accepted while an async hook waited.
                if rejection is None and (limit := self._limit_reached(assoc.peer[0])):
                    rejection = Rejection.LOCAL_LIMIT_EXCEEDED
        if rejection is None and self._draining:  # also once a hook said yes
            rejection, limit = Rejection.TEMPORARY_CONGESTION, ": the server is stopping"
        if ul.state is not State.Sta3:
            # Nothing left to answer: the bytes read with the request (or while the
            # hook ran) ended the association, e.g. an A-ABORT (Evt16, AA-3) or a
            # P-DATA-TF sent before our answer (Evt10 in Sta3, AA-8: A-ABORT sent).
            log.info("association request from %s@%s:%s ended before it was answered",
                     rq.calling_ae_title, *assoc.peer)
            return False
        if rejection is not None:
            # In the words the peer will read (AssociationRejected), then the codes;
            # who asked, as an accepted association's line says it (its TLS link).
            log.info("association from %s@%s:%s -> %s %s %s%s, %.2f s%s", rq.calling_ae_title,
                     *assoc.peer, rq.called_ae_title,
                     str(AssociationRejected(*rejection)).removeprefix("association "),
                     tuple(rejection), limit,  # the codes as (1, 1, 7), a Rejection too
                     now - assoc.connected_at, link_words(assoc.security))
            ul.reject(AssociateRJ(*rejection), now)
            assoc.rejected = True
            tell(self.on_connection_event, ConnectionRefused(
                assoc.peer, "association", str(AssociationRejected(*rejection)),
                now - assoc.connected_at, rq.calling_ae_title, rq.called_ae_title,
                assoc.security))
            return False
        ac = negotiate(rq, self._policy())
        for remark in filter(None, (refused_contexts(rq, ac), unanswered_identity(rq, ac))):
            log.info("association from %s@%s:%s: %s", rq.calling_ae_title, *assoc.peer, remark)
        ul.accept(ac)
        assoc.contexts = accepted_contexts(rq, ac)
        assoc.async_window = async_window(rq, ac)
        assoc.operations = OperationsWindow(assoc.async_window)
        if rq.user_information.async_ops_window is not None:
            assoc.message_ids.window = assoc.async_window
        self._active += 1
        self._per_host[assoc.peer[0]] += 1
        tell(self.on_connection_event, AssociationAccepted(
            assoc.peer, rq.calling_ae_title, rq.called_ae_title, len(assoc.contexts),
            assoc.security, assoc.async_window))
        return True

    def _limit_reached(self, host: str) -> str:
        """Which association limit one more from ``host`` would pass, in words for
        the log ("" for none): ``Limits.max_associations``, then
        ``max_associations_per_host``."""
        if self._active >= self.limits.max_associations:
            return f": {self._active} associations at once (max_associations)"
        if self._per_host[host] >= self.limits.max_associations_per_host:
            return (f": {self._per_host[host]} associations at once from {host} "
                    "(max_associations_per_host)")
        return ""

    async def reload_tls(self) -> bool:
        """Build the TLS context again from the configuration's files now, changed or
        not (``dicomnet serve`` does on SIGHUP), for the connections that follow;
        open ones keep theirs. False when it cannot be built (logged; the previous
        one stays in use) or the server has no TLS. Changed files are otherwise
        picked up by themselves (``TLSConfig.files_check_interval``)."""
        return self._tls_context is not None and await self._tls_context.reload()

    async def drain(self, timeout: float | None) -> DrainOutcome:
        """Stop gracefully, as an operator stopping a node for maintenance expects:
        stop accepting (the listening socket closed: new connections are
        refused; an association requested on one accepted before is rejected,
        transient, temporary congestion: PS3.8 Table 9-21), let the associations
        under way end by themselves (their peers release them, each store
        answered) for up to ``timeout`` seconds (None: no deadline), then
        ``close()``: those still open are aborted. Then ``wait_closed()``, as
        after ``close()``. A ``close()`` meanwhile ends the wait at once."""
        self._draining = True
        self._stop_accepting()
        open_at_start = len(self._associations)
        if self._associations and not self._closed.is_set() and (timeout is None or timeout > 0):
            log.info("%s stopping: no longer accepting; waiting%s for %d association(s) "
                     "to end", self.ae_title, "" if timeout is None else f" up to {timeout:g} s",
                     open_at_start)
            loop = asyncio.get_running_loop()
            deadline = None if timeout is None else loop.time() + timeout
            closed = loop.create_task(self._closed.wait())
            try:
                # None are accepted from now on: the set only shrinks, each task
                # leaving it as its association ends.
                while self._associations and not closed.done():
                    left = None if deadline is None else deadline - loop.time()
                    if left is not None and left <= 0:
                        break
                    await asyncio.wait({*self._associations, closed}, timeout=left,
                                       return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
        self.close()
        aborted = min(self._aborted_at_close, open_at_start)
        return DrainOutcome(open_at_start - aborted, aborted)

    def _stop_accepting(self) -> None:
        if self._evicted_total:
            self._end_evictions()
        if self._accept_task is not None:
            self._accept_task.cancel()
        if self._sock is not None:
            # A connection may have made the socket readable in this very turn: its
            # accept callback, queued already, would run on the closed socket (an
            # "Exception in callback ... _sock_accept" of Python 3.11). Removing
            # the reader cancels it.
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        """Stop accepting and abort every open association (``drain()`` lets them
        end first)."""
        if self._tls_context is not None:
            self._tls_context.close()
        self._stop_accepting()
        if not self._closed.is_set():
            self._aborted_at_close = len(self._associations)
        for task in list(self._tasks):
            # Once each: a close() again (dicomnet serve's second signal closes it
            # from the drain and the stop as well) would cut short the wait of an
            # aborted association for its stores, and its end (logged, its slot
            # given back, its connection closed) with it.
            if not task.cancelling():
                task.cancel()
        if not self._closed.is_set():
            from ..services.workers import handlers_running  # the handlers' layer, above

            if running := handlers_running():
                # The pool is the process's: its count is every server's.
                log.warning("server closed while %d plain handler(s) of this process still "
                            "run in worker threads (this server's or another's): not waited "
                            "for, answers to this server's peers dropped", running)
        self._closed.set()

    async def wait_closed(self) -> None:
        """Wait until ``close()`` was called and every association and provider
        (e.g. a storage SCP's last index rows) has finished."""
        await self._closed.wait()
        try:
            tasks = [t for t in self._tasks if not t.done()]
            if self._accept_task is not None:
                tasks.append(self._accept_task)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await self._close_providers()  # also when this wait is cancelled

    async def _close_providers(self) -> None:
        """Each provider's ``close()`` (e.g. the storage SCP writing its last index
        rows), once, in one thread off the loop; shielded, so that cancelling a
        waiter never leaves a provider half closed."""
        if self._providers_closing is None:
            closers = [close for provider in self.providers
                       if (close := getattr(provider, "close", None)) is not None]
            if not closers:
                return
            self._providers_closing = asyncio.get_running_loop().run_in_executor(
                None, lambda: [close() for close in closers])
        await asyncio.shield(self._providers_closing)

    async def serve_forever(self) -> None:
        """Serve until ``close()`` (from a signal handler, another task)."""
        await self.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


async def serve(
    *,
    ae_title: str = "DICOMNET",
    host: str = "127.0.0.1",
    port: int | None = None,
    tls: TLSConfig | None = None,
    providers: Sequence[ServiceProvider] | None = None,
    timeouts: Timeouts | None = None,
    limits: Limits | None = None,
    on_secure_link_ready: SecureLinkHook | None = None,
    on_association_request: AssociationRequestHook | None = None,
    require_called_ae_title: bool = False,
    on_connection_event: ConnectionObserver | None = None,
) -> Server:
    """Start a server. ``port=None`` picks 2762 with TLS, 11112 without; 0 any free port.

    ``providers`` defaults to Verification only. ``tls`` selects the security
    mode: None is plain DICOM, a ``TLSConfig`` (which must hold the server's
    certificate) makes every connection TLS (PS3.15 Annex B, the profile
    ``tls.profile`` names: BCP 195 RFC 8996/9325, B.12, by default). Its
    certificate, key, CA and CRL files are watched: new connections get a context
    built from them once they change, open ones keep theirs
    (``dicomnet.security.rotation``).

    ``on_association_request`` may reject an association (see
    ``AssociationRequestHook``). A hook that raises, that one or
    ``on_secure_link_ready`` after a handshake, costs only that association:
    the exception is logged with its traceback and the request answered with
    A-ASSOCIATE-RJ rejected-transient, no reason given (``HOOK_FAILED``,
    PS3.8 9.3.4); the server goes on serving. So does one that raises
    ``SystemExit`` (``aio.server_hooks``).

    ``on_connection_event`` observes connections (``aio.server_events``): each
    association accepted and ended (with its answers by status), and each
    connection refused before it associated, with why.

    Raises ``ConfigurationError`` for unusable settings or TLS files, and
    ``TransportError`` ("cannot listen on HOST:PORT: ...") when the address is
    in use, not ours, or the host unknown.
    """
    from ..services.verification import VerificationSCP

    if port is None:
        port = DEFAULT_TLS_PORT if tls is not None else DEFAULT_PLAIN_PORT
    server = Server(
        ae_title=check_ae_title(ae_title), host=host, port=port, tls=tls,
        timeouts=timeouts or Timeouts(), limits=limits or Limits(),
        providers=list(providers) if providers is not None else [VerificationSCP()],
        on_secure_link_ready=on_secure_link_ready,
        on_association_request=on_association_request,
        require_called_ae_title=require_called_ae_title,
        on_connection_event=on_connection_event,
    )
    await server._start()
    return server



