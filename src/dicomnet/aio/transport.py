"""Opening connections, plain or TLS, with error translation (asyncio).

Every socket gets TCP_NODELAY, and TLS ones more (see :mod:`dicomnet.aio.sockets`).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigurationError, ConnectError, TimeoutError, TLSError
from ..security.config import TLSConfig
from ..security.detect import explain_first_bytes
from ..security.errors_map import translate_ssl_error
from ..security.info import SecurityInfo
from ..security.sessions import SessionSlot
from .sockets import tune_socket
from .tls_socket import HandshakeTrace, TLSSocketTransport, handshake

if TYPE_CHECKING:
    from ..security.certificates import CertificateInfo

__all__ = [
    "PeerSilent",
    "Receiver",
    "SecureLinkEvent",
    "describe_os_error",
    "SecureLinkHook",
    "Stream",
    "open_stream",
    "peek",
    "wrap_accepted",
]

log = logging.getLogger("dicomnet.aio")

#: Bytes asked of the socket per read, and the StreamReader's limit (it stops
#: reading past twice this). 256 KiB measured as fast as 1 MiB on loopback TLS and
#: keeps a receiving server a few MB smaller.
READ_SIZE = 1 << 18
#: How long a closing connection may take to hand its last bytes to a peer that
#: does not read them before it is cut (as the TLS transport's own grace).
CLOSE_GRACE = 10.0
#: The most reads of what a peer sent before resetting the connection (its
#: receive buffer, a few MB at most: READ_SIZE each).
_BEHIND_READS = 64


class PeerSilent(ConnectError):
    """A connection that sent nothing (a port scan, a health check, a stalled peer)."""


@dataclass(frozen=True, slots=True)
class SecureLinkEvent:
    """What ``on_secure_link_ready`` receives, once per TLS connection.

    On success ``info`` holds what was negotiated and ``error`` is None; on a
    failed handshake ``info`` is None and ``error`` says why. Either way it comes
    before any DICOM byte is exchanged.

    One limit of TLS 1.3 (RFC 8446 2, 4.4): a client's handshake is complete as
    soon as it has sent its certificate and Finished, and the server checks them
    after that. A client's event can therefore report success for a server that
    then refuses its certificate (or its ``verify_callback`` refuses it); the
    association attempt fails right after with a TLSError naming that cause.
    """

    peer: tuple[str, int]
    side: Literal["client", "server"]
    info: SecurityInfo | None
    error: TLSError | None = None


SecureLinkHook = Callable[[SecureLinkEvent], None | Awaitable[None]]


class Receiver(asyncio.streams.FlowControlMixin, asyncio.BufferedProtocol):
    """The protocol under every connection: received bytes go, straight from the
    transport's read buffer, to whoever ``attach``-ed (the association's Upper
    Layer, which copies them once into its framer); writes go through an
    ``asyncio.StreamWriter`` (this class provides its flow control).

    Bytes that arrive before anyone attached (between a TLS handshake and the
    association's creation) are kept and replayed.
    """

    def __init__(self) -> None:
        super().__init__()
        self._view = memoryview(bytearray(READ_SIZE))
        self._lent: memoryview | None = None
        #: Asked before each read (see ``attach``): where the next bytes go.
        self._target: Callable[[], memoryview | int | None] | None = None
        self._early: list[bytes] = []
        self._sink: Callable[[memoryview], None] | None = None
        self._on_end: Callable[[BaseException | None], bool | None] | None = None
        self._ended = False
        self.error: BaseException | None = None
        self.transport: asyncio.BaseTransport | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: The transport asked writers to wait (above its high-water mark: the peer
        #: is not reading).
        self.writing_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def pause_writing(self) -> None:
        self.writing_paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        self.writing_paused = False
        super().resume_writing()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._lent is not None:  # lent for a read that brought nothing
            with contextlib.suppress(BufferError):
                self._lent.release()
            self._lent = None
        if self._target is not None:
            target = self._target()
            if type(target) is memoryview:  # once per read: no isinstance call
                self._lent = target
                return target
            if target:
                return self._view[:target]
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        lent, self._lent = self._lent, None
        # Either way no view of the received bytes outlives this call (the sink
        # copies what it keeps): the transport's buffer is read into again next
        # time, and lent memory goes on to disk.
        data = self._view[:nbytes] if lent is None else lent[:nbytes]
        # Once or twice per read event: try/except, not contextlib.suppress (three
        # Python calls per view), and the sink called from here.
        try:
            if self._sink is None:
                self._early.append(bytes(data))
            else:
                self._sink(data)
        finally:
            try:  # noqa: SIM105
                data.release()
            except BufferError:  # exported: left to the GC
                pass
            if lent is not None:
                try:  # noqa: SIM105
                    lent.release()
                except BufferError:
                    pass

    def eof_received(self) -> bool:
        # Our side stays open only when the receiver of the end asks for it (a
        # half-close whose answer is still to be written, see ULConnection).
        return self._end(None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if isinstance(exc, ConnectionError) and not self._ended:
            self._read_behind()
        self._end(exc)
        if not self._closed.done():
            self._closed.set_result(None)

    def _read_behind(self) -> None:
        """Take what a plain connection's peer sent before it reset the connection,
        still unread because a write of ours failed first (ECONNRESET, EPIPE) and
        ended the transport. A peer that answers A-ASSOCIATE-RJ or A-ABORT (PS3.8
        9.3.4, 9.3.8) and closes with our bytes unread resets the connection
        (RFC 1122 4.2.2.13, or SO_LINGER 0); its PDU says why, and reaches the
        sink before the end does. Only on this error path: asyncio closes the
        socket after ``connection_lost``, so it is still open here. TLS reads its
        own alert behind a reset (``tls_socket``)."""
        transport = self.transport
        if transport is None or isinstance(transport, TLSSocketTransport):
            return
        raw = transport.get_extra_info("socket")
        if raw is None:
            return
        try:  # a socket of our own: asyncio's wrapper refuses recv
            fd = os.dup(raw.fileno())
        except OSError:
            return
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            return
        with sock:
            for _ in range(_BEHIND_READS):
                buffer = self.get_buffer(-1)
                try:
                    nbytes = sock.recv_into(buffer, len(buffer), socket.MSG_DONTWAIT)
                except OSError:  # the reset itself, or nothing more (EAGAIN)
                    nbytes = 0
                if not nbytes:
                    break
                self.buffer_updated(nbytes)
        if self._lent is not None:  # lent for a read that brought nothing
            with contextlib.suppress(BufferError):
                self._lent.release()
            self._lent = None

    def _end(self, exc: BaseException | None) -> bool:
        if self._ended:
            return False
        self._ended = True
        self.error = exc
        return self._on_end is not None and bool(self._on_end(exc))

    def attach(self, sink: Callable[[memoryview], None],
               on_end: Callable[[BaseException | None], bool | None],
               target: Callable[[], memoryview | int | None] | None = None) -> None:
        """Deliver received bytes to ``sink`` and the end of the stream (with its
        error, if any) to ``on_end``, starting with what already arrived. A clean
        end (no error) for which ``on_end`` returns True leaves our side of the
        connection open for writing (the peer half-closed it); otherwise the
        transport closes.

        ``target``, if given, is asked before each read where the next bytes go:
        a writable view (they are received into it, and ``sink`` then gets a view
        of that memory, valid during the call), a byte count (read at most that
        many, e.g. up to the next PDV's data), or None (as usual)."""
        self._sink, self._on_end, self._target = sink, on_end, target
        early, self._early = self._early, []
        for chunk in early:
            sink(memoryview(chunk))
        if self._ended:
            on_end(self.error)

    def pause(self) -> None:
        if isinstance(self.transport, asyncio.ReadTransport) and not self._ended:
            self.transport.pause_reading()

    def resume(self) -> None:
        if isinstance(self.transport, asyncio.ReadTransport) and not self._ended:
            self.transport.resume_reading()

    def renew_buffer(self) -> None:
        """Read into new memory from now on, so that views of the bytes read so far
        stay valid for whoever keeps them (the memory goes with the last one)."""
        self._view = memoryview(bytearray(READ_SIZE))

    def _get_close_waiter(self, stream: asyncio.StreamWriter) -> asyncio.Future[None]:
        return self._closed


@dataclass(slots=True)
class Stream:
    """An open connection: its receiving protocol, its writer, and what TLS negotiated."""

    receiver: Receiver
    writer: asyncio.StreamWriter
    peer: tuple[str, int]
    security: SecurityInfo | None = None
    #: A client's link to the TLS sessions of its configuration (None: no resumption).
    session_slot: SessionSlot | None = None

    def keep_session(self) -> None:
        """Keep this client connection's TLS session, to resume it on the next
        association to the same destination: call at the association's clean end
        (A-RELEASE done, or an A-ASSOCIATE-RJ read, before closing: the TLS link
        itself ended well), when a TLS 1.3 ticket has been read; never after an
        abort (RFC 5246 7.2.2)."""
        session = self.writer.get_extra_info("ssl_session")
        if (self.session_slot is not None and isinstance(session, ssl.SSLSession)
                and self.security is not None):
            self.session_slot.keep(session, self.security.protocol)

    def close_soon(self, *, grace: float = CLOSE_GRACE) -> None:
        """Start closing: what is queued goes first, but a peer whose receive
        window stays shut cannot hold the connection, its descriptor and its
        association slot: after ``grace`` seconds with bytes still unsent it is
        cut (a plain asyncio transport would wait for it forever); at once with
        ``grace`` 0, when the peer is known to read nothing (a timeout fired)."""
        transport = self.writer.transport
        if transport.is_closing():
            return
        if not transport.get_write_buffer_size():
            transport.close()
        elif grace <= 0:
            transport.abort()
        else:
            transport.close()
            asyncio.get_running_loop().call_later(grace, transport.abort)

    async def close(self) -> None:
        writer = self.writer
        if writer.is_closing():
            return
        self.close_soon()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await writer.wait_closed()


def describe_os_error(exc: BaseException) -> str:
    """A short human description of a socket error (no "[Errno N]" noise)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "the peer reset the connection"
    if isinstance(exc, BrokenPipeError):
        return "the peer closed the connection"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


async def call_hook(hook: Callable[..., object] | None, *args: object) -> None:
    """Call a user hook that may be a plain function or a coroutine function."""
    if hook is None:
        return
    result = hook(*args)
    if asyncio.iscoroutine(result):
        await result


async def open_stream(
    host: str,
    port: int,
    *,
    tls: TLSConfig | None,
    context: ssl.SSLContext | None,
    connect_timeout: float,
    handshake_timeout: float,
    on_secure_link_ready: SecureLinkHook | None = None,
) -> Stream:
    """Open a client connection; TLS when ``context`` is given (built from ``tls``).

    With ``tls.session_resumption`` and the configuration's shared context, a session
    kept for this destination is offered (RFC 8446 2.2). Should that handshake fail,
    the session is dropped and the connection made once more with a full handshake
    (and no session offered there again): resumption never costs an association."""
    peer = (host, port)
    loop = asyncio.get_running_loop()
    receiver = Receiver()
    if context is None or tls is None:
        # Our own connect, not create_connection(host, port): that one closes a
        # socket the peer reset as it opened, and the answer waiting behind it.
        sock = await _connect(host, port, connect_timeout, tls=False)
        try:
            transport, _ = await loop.create_connection(lambda: receiver, sock=sock)
        except OSError as exc:  # setsockopt on a reset socket (EINVAL on macOS)
            sock.close()
            raise ConnectError(
                f"cannot connect to {host}:{port}: {describe_os_error(exc)}") from exc
        except BaseException:
            sock.close()
            raise
        return Stream(receiver, asyncio.StreamWriter(transport, receiver, None, loop), peer)
    server_hostname = tls.server_hostname or host
    slot = (tls.client_cache.slot(context, (host, port, server_hostname))
            if tls.session_resumption else None)
    while True:
        sock = await _connect(host, port, connect_timeout, tls=True)
        session = slot.offer() if slot is not None else None
        trace = HandshakeTrace()
        try:
            secured = await handshake(sock, context, server_side=False,
                                      server_hostname=server_hostname,
                                      timeout=handshake_timeout, session=session, trace=trace)
            break
        except (ssl.SSLError, OSError, builtins.TimeoutError, EOFError) as exc:
            error = _handshake_error(exc, side="client", peer=f"{host}:{port}",
                                     timeout=handshake_timeout, profile=tls.profile,
                                     host=server_hostname,
                                     sent_certificate=tls.certfile is not None,
                                     server_hello=trace.server_hello,
                                     peer_certificate=trace.server_certificate,
                                     peer_chain_length=trace.server_chain_length)
            if slot is not None and session is not None:
                if not isinstance(exc, builtins.TimeoutError):
                    # Some servers fail a resumption outright (OpenSSL, verifying
                    # clients without a session ID context, SSL_R_SESSION_ID_CONTEXT_
                    # UNINITIALIZED): offering sessions would fail every other association.
                    slot.failed()
                    log.info("TLS handshake with %s:%s offering a session to resume failed "
                             "(%s): connecting again for a full handshake, and offering no "
                             "session there any more", host, port, error.reason)
                    continue
                slot.drop()
            await call_hook(on_secure_link_ready, SecureLinkEvent(peer, "client", None, error))
            raise error from exc
    transport = TLSSocketTransport(loop, secured, receiver)
    stream = Stream(receiver, asyncio.StreamWriter(transport, receiver, None, loop), peer,
                    session_slot=slot)
    try:
        await _check_established(tls, stream, "client", on_secure_link_ready)
    except BaseException:
        if slot is not None and session is not None:
            slot.drop()  # refused after offering it (verify_callback...): not offered again
        raise
    return stream


async def _connect(host: str, port: int, timeout: float, *, tls: bool) -> socket.socket:
    """A connected non-blocking TCP socket to ``host``, tuned (``tls``: as a TLS
    one), each address tried in turn as asyncio's ``create_connection`` does
    (without happy eyeballs), and its errors told as it does for plain TCP.

    A plain connection that the peer reset as it opened is kept when bytes wait
    behind the reset: a peer answering A-ASSOCIATE-RJ or A-ABORT at once and
    resetting (PS3.8 9.3.4, 9.3.8; SO_LINGER 0) may do so before our connect
    completes, and the kernel still holds its PDU. The transport reads it and
    the association reports the rejection or abort it is."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await _addresses(loop, host, port, numeric_first=not tls)
            errors: list[OSError] = []
            for family, kind, proto, _name, address in infos:
                sock: socket.socket | None = None
                try:
                    sock = socket.socket(family, kind, proto)
                    sock.setblocking(False)
                    await loop.sock_connect(sock, address)
                except OSError as exc:
                    if sock is not None and not tls and _answered(sock, exc):
                        log.debug("connection to %s:%s reset as it opened, with bytes "
                                  "behind the reset: read as the peer's answer", host, port)
                    else:
                        if sock is not None:
                            sock.close()
                        errors.append(exc)
                        continue
                except BaseException:
                    if sock is not None:
                        sock.close()
                    raise
                tune_socket(sock, tls=tls)
                return sock
            raise _connect_failure(errors, host, last=tls)
    except builtins.TimeoutError as exc:
        raise TimeoutError(
            f"connecting to {host}:{port} timed out after {timeout}s"
        ) from exc
    except OSError as exc:
        raise ConnectError(f"cannot connect to {host}:{port}: {describe_os_error(exc)}") from exc


async def _addresses(loop: asyncio.AbstractEventLoop, host: str, port: int, *,
                     numeric_first: bool) -> Sequence[tuple[int, int, int, str, Any]]:
    """``host``'s addresses through the loop's resolver (a thread); with
    ``numeric_first`` (the plain path, as ``create_connection`` did for it) an
    IP address at once. The TLS path resolves as it always did."""
    if numeric_first:
        with contextlib.suppress(socket.gaierror, UnicodeError):
            return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                      flags=socket.AI_NUMERICHOST)
    return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def _answered(sock: socket.socket, exc: OSError) -> bool:
    """Whether a connect that failed with ``exc`` left bytes from the peer."""
    if not isinstance(exc, ConnectionError):
        return False
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:
        return False


def _connect_failure(errors: list[OSError], host: str, *, last: bool) -> OSError:
    """The error of a connect for which every address failed: the last one
    (``last``), else as ``create_connection`` says it: the one error, or all of
    them if they differ."""
    if not errors:
        return OSError(f"no address for {host}")
    if last or all(str(error) == str(errors[0]) for error in errors):
        return errors[-1] if last else errors[0]
    return OSError("Multiple exceptions: " + ", ".join(str(error) for error in errors))


async def _check_established(
    tls: TLSConfig, stream: Stream, side: Literal["client", "server"],
    hook: SecureLinkHook | None, local_certificate: CertificateInfo | None = None,
) -> None:
    """Describe the finished handshake, apply the checks ssl cannot (profile key sizes,
    verify callback), then fire ``on_secure_link_ready``: before any DICOM byte."""
    ssl_object = stream.writer.get_extra_info("ssl_object")
    assert isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket)
    try:
        stream.security = tls.check_established(
            ssl_object, side=side, peer=f"{stream.peer[0]}:{stream.peer[1]}",
            local_certificate=local_certificate,
        )
    except ConfigurationError:
        # Ours (our certificate file unreadable since the context was built): a
        # ValueError too, but no sign of what the peer did.
        await stream.close()
        raise
    except ValueError as exc:
        # ssl: "handshake not done yet" when a TLS 1.3 server refused our certificate
        # between its Finished and our first read.
        await stream.close()
        error = TLSError(
            f"TLS with {stream.peer[0]}:{stream.peer[1]}: the peer closed the connection "
            "right after the handshake: it most likely refused our certificate",
            reason="certificate refused by the peer",
        )
        await call_hook(hook, SecureLinkEvent(stream.peer, side, None, error))
        raise error from exc
    except TLSError as exc:
        await stream.close()
        await call_hook(hook, SecureLinkEvent(stream.peer, side, None, exc))
        raise
    try:
        await call_hook(hook, SecureLinkEvent(stream.peer, side, stream.security))
    except BaseException:
        # Cancelled in the hook (an evicted connection, a server closing) or the
        # hook raised: the caller never gets the stream, so nobody else closes it.
        stream.writer.transport.abort()
        raise


def _handshake_error(
    exc: BaseException, *, side: str, peer: str, timeout: float, profile: str | None = None,
    host: str | None = None, sent_certificate: bool | None = None,
    server_hello: bool | None = None, peer_certificate: bytes | None = None,
    peer_chain_length: int | None = None,
) -> TLSError:
    if isinstance(exc, builtins.TimeoutError):
        return TLSError(
            f"TLS handshake with {peer} did not finish within {timeout}s",
            reason="handshake timed out", link_failed=True,
        )
    return translate_ssl_error(
        exc, side=side, peer=peer, profile=profile, host=host,  # type: ignore[arg-type]
        sent_certificate=sent_certificate, server_hello=server_hello,
        peer_certificate=peer_certificate, peer_chain_length=peer_chain_length,
    )


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def peek(sock: socket.socket, size: int, timeout: float) -> bytes:
    """The first bytes waiting on ``sock`` without consuming them (MSG_PEEK).

    Used before the TLS handshake to tell a plain DICOM client on a TLS port
    (and the reverse) in one line. Returns b"" on EOF; raises TimeoutError.
    """
    loop = asyncio.get_running_loop()
    fd = sock.fileno()
    deadline = loop.time() + timeout
    while True:
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _set_done, ready)
        try:
            async with asyncio.timeout_at(deadline):
                await ready
        except builtins.TimeoutError as exc:
            raise TimeoutError(f"nothing received within {timeout}s") from exc
        finally:
            loop.remove_reader(fd)
        try:
            return sock.recv(size, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        except OSError:
            return b""


async def wrap_accepted(
    sock: socket.socket,
    *,
    tls: TLSConfig | None,
    context: ssl.SSLContext | None,
    handshake_timeout: float,
    artim_timeout: float,
    on_secure_link_ready: SecureLinkHook | None,
    local_certificate: CertificateInfo | None = None,
    peer: tuple[str, int] | None = None,
) -> Stream:
    """Turn an accepted socket into a Stream, doing the server TLS handshake (with its
    own timeout, in the caller's task) and explaining a TLS/plain mismatch.
    ``local_certificate`` is the one ``context`` holds (for ``SecurityInfo``);
    ``peer`` the address ``accept()`` gave (asked of the socket otherwise: a
    connection reset before this runs no longer has one, and its reset is told
    as the handshake's or as a connection that sent nothing)."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    tune_socket(sock, tls=context is not None)
    if peer is None:
        peer_addr = sock.getpeername()
        peer = (str(peer_addr[0]), int(peer_addr[1]))
    expecting = "tls" if context is not None else "dicom"
    # A plain server waits for the first byte no longer than ARTIM would wait for
    # the A-ASSOCIATE-RQ (PS3.8 AE-5 starts ARTIM when the connection opens).
    wait = handshake_timeout if context is not None else min(handshake_timeout, artim_timeout)
    try:
        head = await peek(sock, 8, wait)
    except TimeoutError as exc:
        sock.close()
        if context is not None:
            error = TLSError(
                f"no TLS ClientHello from {peer[0]}:{peer[1]} within {wait}s",
                reason="handshake timed out", link_failed=True,
            )
            await call_hook(on_secure_link_ready, SecureLinkEvent(peer, "server", None, error))
            raise error from exc
        raise PeerSilent(
            f"{peer[0]}:{peer[1]}: ARTIM expired in Sta2: no A-ASSOCIATE-RQ within {wait}s; closed"
        ) from exc
    if not head:
        sock.close()
        raise PeerSilent(f"{peer[0]}:{peer[1]} closed the connection before sending anything")
    explanation = explain_first_bytes(head, expecting=expecting)  # type: ignore[arg-type]
    if explanation is not None:
        sock.close()
        error = TLSError(f"{peer[0]}:{peer[1]}: {explanation}", reason=explanation)
        if context is not None:
            await call_hook(on_secure_link_ready, SecureLinkEvent(peer, "server", None, error))
        raise error
    receiver = Receiver()
    transport: asyncio.Transport
    try:
        if context is None:
            transport, _ = await loop.connect_accepted_socket(lambda: receiver, sock)
        else:
            secured = await handshake(sock, context, server_side=True, server_hostname=None,
                                      timeout=handshake_timeout)
            transport = TLSSocketTransport(loop, secured, receiver)
    except (ssl.SSLError, OSError, builtins.TimeoutError, EOFError) as exc:
        sock.close()
        if context is None:
            # No TLS to blame: asyncio's setsockopt on a socket the peer reset
            # meanwhile (EINVAL on macOS). The caller says the connection failed.
            raise
        error = _handshake_error(exc, side="server", peer=f"{peer[0]}:{peer[1]}",
                                 timeout=handshake_timeout, profile=tls.profile if tls else None)
        await call_hook(on_secure_link_ready, SecureLinkEvent(peer, "server", None, error))
        raise error from exc
    stream = Stream(receiver, asyncio.StreamWriter(transport, receiver, None, loop), peer)
    if context is not None and tls is not None:
        await _check_established(tls, stream, "server", on_secure_link_ready,
                                 local_certificate)
    return stream
