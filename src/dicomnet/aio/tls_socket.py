"""TLS over a non-blocking ``ssl.SSLSocket``, as an asyncio transport.

asyncio's own TLS layer (``loop.start_tls``) runs OpenSSL over memory BIOs:
every byte is copied from the socket into a BIO and out again. Here OpenSSL
reads and writes the socket itself, as DCMTK's does. Two things follow: one
copy fewer per byte (alone, within the noise on loopback; with the Upper Layer
streaming P-DATA on top, 256 MB objects went from ~450 to ~500 MB/s, see
docs/benchmarks.md), and OpenSSL sends its alert when a handshake fails, which
asyncio's layer did not (CPython gh-98078), so both sides can say why.
The handshake runs in the caller's task (``handshake``); the transport then
serves a ``BufferedProtocol`` (our ``Receiver``) and a ``StreamWriter``.

Only what dicomnet uses of the transport interface is provided: buffered
reading with pause/resume, writing with flow control (pause_writing /
resume_writing around the high and low water marks), close (after pending
writes, with a close_notify alert, waiting a moment for room in the socket for
it, never for the peer's), abort, and the ``ssl_object``, ``socket``,
``peername``, ``sockname``, ``peercert`` and ``cipher`` extras, plus
``ssl_session``: the connection's TLS session, still there after it closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .sockets import lift_unsent_limit

__all__ = ["HandshakeTrace", "TLSSocketTransport", "handshake", "presented_certificate"]

log = logging.getLogger("dicomnet.aio")

_HIGH_WATER = 1 << 20
_LOW_WATER = 256 << 10
#: Records decrypted per read before the protocol hears of them. 64 would be
#: 1 MiB, but a PDV of a 1 MiB PDU (Limits' default) received in place starts
#: inside a record (its 12 header bytes are read alone), so spans 65: with 64,
#: its last bytes were left to the next read, under the association's 64 KiB
#: in-place threshold, which read them into the transport's buffer with up to
#: 256 KiB of the next PDV, all copied: once per MiB of a large data set.
_READ_CALLS = 65
#: Reads per readable event while a full buffer leaves decrypted bytes inside
#: OpenSSL (a 512 KB image: 256 KB, then the rest in place); then the next round
#: of the loop, after the other connections' events.
_READ_ROUNDS = 2
#: Bytes read per call when looking for an alert behind a failed write.
_ALERT_READ = 16384
#: The most such reads: what waits in the receive buffer (a few MB at most).
_BEHIND_READS = 1024
#: Seconds a closing transport waits for its pending writes before aborting.
_CLOSE_GRACE = 10.0
#: Seconds a closing transport waits for room in the socket for its close_notify.
_NOTIFY_WAIT = 1.0


@dataclass(slots=True)
class HandshakeTrace:
    """What a failed client handshake had received, for its error message."""

    #: The server answered our ClientHello with its ServerHello (RFC 8446 4.1.3);
    #: None when not known (a session was offered: its cipher is there before).
    server_hello: bool | None = None
    #: DER of the certificate the server presented, when our verification of it
    #: failed (``presented_certificate``); None otherwise, or when not known.
    server_certificate: bytes | None = None
    #: How many certificates the server sent (leaf and CAs), known with
    #: ``server_certificate``: 1 is a leaf without its intermediates.
    server_chain_length: int | None = None


async def handshake(sock: socket.socket, context: ssl.SSLContext, *, server_side: bool,
                    server_hostname: str | None, timeout: float,
                    session: ssl.SSLSession | None = None,
                    trace: HandshakeTrace | None = None) -> ssl.SSLSocket:
    """Wrap ``sock`` (connected) and complete the TLS handshake without blocking the
    loop; a client may offer a ``session`` of ``context`` to resume (RFC 8446 2.2).
    Raises ``ssl.SSLError``/``OSError`` as ``ssl`` reports them, and
    ``TimeoutError`` after ``timeout`` seconds; the socket is closed on failure,
    and ``trace`` (a client's) filled in."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    tls = context.wrap_socket(sock, server_side=server_side, server_hostname=server_hostname,
                              do_handshake_on_connect=False, session=session)
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    tls.do_handshake()
                    return tls
                except ssl.SSLWantReadError:
                    await _ready(loop, tls.fileno(), write=False)
                except ssl.SSLWantWriteError:
                    await _ready(loop, tls.fileno(), write=True)
    except ssl.SSLError as exc:
        _trace_failure(tls, trace, session)
        if trace is not None and isinstance(exc, ssl.SSLCertVerificationError):
            chain = _unverified_chain(tls)
            trace.server_certificate = chain[0] if chain else None
            trace.server_chain_length = len(chain) if chain else None
        _close_after_alert(tls)
        raise
    except BaseException:
        _trace_failure(tls, trace, session)
        tls.close()
        raise


def _trace_failure(tls: ssl.SSLSocket, trace: HandshakeTrace | None,
                   session: ssl.SSLSession | None) -> None:
    if trace is not None and session is None:
        # A new session has no cipher until the ServerHello chose one.
        trace.server_hello = tls.cipher() is not None


def presented_certificate(tls: ssl.SSLSocket) -> bytes | None:
    """DER of the certificate the peer presented, once a client's handshake has failed
    verifying it (Python then gives no peer certificate), or None. OpenSSL keeps the
    chain it received (SSL_get_peer_cert_chain): ``SSLSocket.get_unverified_chain()``
    from Python 3.13, its private ``_sslobj`` method before (3.10 to 3.12)."""
    chain = _unverified_chain(tls)
    return chain[0] if chain else None


def _unverified_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """DER of each certificate the peer sent, its own first (see
    :func:`presented_certificate`); empty when not known."""
    try:
        getter = getattr(tls, "get_unverified_chain", None)
        if getter is None:
            getter = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
        chain = getter() if getter is not None else None
        # 3.13's public method gives DER; the private one, _ssl.Certificate objects.
        return [cert if isinstance(cert, bytes) else ssl.PEM_cert_to_DER_cert(
            cert.public_bytes()) for cert in chain or ()]
    except Exception:  # a private API, for a message only: it must never fail one
        return []


def _close_after_alert(tls: ssl.SSLSocket) -> None:
    """Close a socket whose handshake failed without destroying the alert OpenSSL
    just sent: closing with unread input (a TLS 1.3 client may already have sent
    its first data) makes the kernel answer with a reset, which can overtake the
    alert. So: end our direction, discard what has arrived, then close."""
    try:
        tls.shutdown(socket.SHUT_WR)  # drops the TLS layer: plain recv from here on
        while tls.recv(65536):
            pass
    except OSError:  # BlockingIOError included: nothing more is waiting
        pass
    finally:
        tls.close()


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, write: bool) -> None:
    future: asyncio.Future[None] = loop.create_future()
    add, remove = (loop.add_writer, loop.remove_writer) if write else (
        loop.add_reader, loop.remove_reader)
    add(fd, _set_done, future)
    try:
        await future
    finally:
        remove(fd)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class TLSSocketTransport(asyncio.Transport):
    """An asyncio transport over a connected, handshaken, non-blocking SSLSocket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tls: ssl.SSLSocket,
                 protocol: asyncio.BufferedProtocol) -> None:
        super().__init__()
        self._loop = loop
        self._tls = tls
        self._fd = tls.fileno()
        self._protocol = protocol
        # One call per TLS record (16 KiB): 70,000 per GB. ssl.SSLSocket.recv_into
        # reaches OpenSSL through two Python frames; its C object directly, one
        # fewer layer (~0.2 s of CPU per GB received). Where the private attribute
        # is missing, the public method.
        sslobj = getattr(tls, "_sslobj", None)
        self._read_into: Callable[[int, memoryview], int] = getattr(
            sslobj, "read", None) or (lambda size, view: tls.recv_into(view, size))
        self._pending: Callable[[], int] = getattr(sslobj, "pending", None) or tls.pending
        # So is each write (SSLSocket.send, then its _checkClosed, which does nothing).
        self._send: Callable[[bytes | bytearray | memoryview], int] = getattr(
            sslobj, "write", None) or tls.send
        self._backlog: collections.deque[bytes | bytearray | memoryview] = collections.deque()
        self._backlog_size = 0
        self._writing = False  # a writer callback is registered
        self._write_after_read = False
        self._reading = False
        self._read_paused = False
        self._write_paused = False  # protocol told to pause writing
        self._closing = False
        self._lost = False
        # While a close_notify waits for room in the socket (_finish): its deadline.
        self._notify_deadline: asyncio.TimerHandle | None = None
        self._socket_closed = False
        self._extra: dict[str, Any] = {
            "ssl_object": tls, "socket": tls, "sslcontext": tls.context,
            "peercert": tls.getpeercert(), "cipher": tls.cipher(),
            "compression": tls.compression(),
        }
        with contextlib.suppress(OSError):
            self._extra["peername"] = tls.getpeername()
            self._extra["sockname"] = tls.getsockname()
        protocol.connection_made(self)
        self._start_reading()

    # -- transport interface -----------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_session" and not self._lost:
            # The latest: TLS 1.3 tickets arrive after the handshake (RFC 8446 4.6.1).
            return self._tls.session
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.BufferedProtocol)
        self._protocol = protocol

    def is_reading(self) -> bool:
        return self._reading and not self._read_paused

    def pause_reading(self) -> None:
        if self._read_paused or self._closing:
            return
        self._read_paused = True
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def resume_reading(self) -> None:
        if not self._read_paused or self._closing:
            return
        self._read_paused = False
        self._start_reading()
        # Records OpenSSL decrypted already raise no readable event: go on now.
        self._loop.call_soon(self._read_ready)

    def get_write_buffer_size(self) -> int:
        return self._backlog_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return _LOW_WATER, _HIGH_WATER

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # fixed marks: what we write is whole PDUs of up to a MiB

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS has no half-close; use close()")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._lost:
            return
        if not data:
            return
        self._backlog.append(data)
        self._backlog_size += len(data)
        if not self._writing:
            self._write_ready()
        if self._write_paused or self._backlog_size > _HIGH_WATER:  # else it does nothing
            self._check_write_pressure()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        # What is left goes to the kernel at its own pace again, and close_notify
        # after it (sockets.py limits what waits unsent while streaming).
        lift_unsent_limit(self._tls)
        if not self._backlog:
            self._loop.call_soon(self._finish, None)
        else:  # pending writes go first, but a peer that never reads cannot hold us
            self._loop.call_later(_CLOSE_GRACE, self.abort)

    def abort(self) -> None:
        if self._notify_deadline is not None:  # cut the wait for room short
            self._close_socket(None)
            return
        self._closing = True
        self._stop_reading()
        self._backlog.clear()
        self._backlog_size = 0
        self._finish(None, notify=False)

    # -- internals -------------------------------------------------------------------

    def _start_reading(self) -> None:
        if not self._reading and not self._read_paused and not self._closing:
            self._loop.add_reader(self._fd, self._read_ready)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _read_ready(self) -> None:
        # Up to _READ_ROUNDS reads while a full buffer leaves decrypted bytes inside
        # OpenSSL (epoll will not say so), written out here rather than a method
        # per read: this runs once per readable event of every TLS connection.
        rounds = _READ_ROUNDS
        while True:
            if self._read_paused or self._lost or (self._closing and not self._backlog):
                return
            protocol = self._protocol
            try:
                buffer = protocol.get_buffer(-1)
                view = memoryview(buffer).cast("B")
                size = len(view)
                filled = 0
                got = -1  # 0 once the peer ended the stream
                read_into = self._read_into
                # One call per record (35 per 512 KB): the loop body stays minimal.
                try:
                    for _ in range(_READ_CALLS):
                        got = read_into(size - filled, view[filled:])
                        filled += got
                        if not got or filled == size:
                            break
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLEOFError:  # closed without close_notify: an end all the same
                    got = 0
                except ssl.SSLWantWriteError:
                    # OpenSSL must write first (a key update): wait for the socket.
                    self._want_write_for_read()
                eof = got == 0
                view.release()
                if filled:
                    protocol.buffer_updated(filled)
                if self._write_after_read and self._backlog:
                    self._write_after_read = False
                    self._write_ready()
                if eof:
                    self._eof()
                elif filled and not self._read_paused and self._pending():
                    rounds -= 1
                    if rounds:
                        continue  # read on now: the protocol may lend memory for it
                    self._loop.call_soon(self._read_ready)  # the others' turn first
            except (ssl.SSLError, OSError) as exc:
                self._fatal(exc)
            return

    def _want_write_for_read(self) -> None:
        if not self._writing:
            self._loop.add_writer(self._fd, self._write_ready)
            self._writing = True

    def _eof(self) -> None:
        self._stop_reading()
        keep_open = False
        try:
            keep_open = bool(self._protocol.eof_received())
        except Exception as exc:  # the protocol's own bug: report and close
            self._fatal(exc)
            return
        if not keep_open:
            self.close()

    def _write_ready(self) -> None:
        backlog = self._backlog
        try:
            while backlog:
                data = backlog[0]
                try:
                    # Without partial-write mode, SSL_write takes all of it or asks
                    # to be called again with the same bytes: keep them at the head.
                    self._send(data)
                except (ssl.SSLWantWriteError, BlockingIOError):
                    if not self._writing:
                        self._loop.add_writer(self._fd, self._write_ready)
                        self._writing = True
                    return
                except ssl.SSLWantReadError:
                    # OpenSSL must read first (TLS 1.2 renegotiation): the next
                    # readable event retries (_read_ready), no busy writer callback.
                    self._write_after_read = True
                    return
                backlog.popleft()
                self._backlog_size -= len(data)
        except (ssl.SSLError, OSError) as exc:
            self._fatal(self._alert_behind(exc))
            return
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        if self._write_paused:  # all written: nothing to pause for
            self._check_write_pressure()
        if self._closing:
            self._finish(None)

    def _alert_behind(self, exc: Exception) -> Exception:
        """The peer's alert waiting unread behind a write that failed as the peer
        reset the connection, else ``exc``; what it sent before, as application
        data, goes to the protocol ahead of the end.

        A TLS 1.3 server refusing our certificate (RFC 8446 4.4.2) sends its alert
        and closes with our Finished unread (DCMTK, pynetdicom): the reset that
        follows fails our first write, the A-ASSOCIATE-RQ, while the alert that
        says why is still in our receive buffer. So may a peer's A-ASSOCIATE-RJ
        or A-ABORT (PS3.8 9.3.4, 9.3.8), sent as it closed with our bytes unread:
        it is read here and handed on (``_hand_over``, scheduled before
        ``connection_lost``) as the plain transport does (``Receiver._read_behind``)."""
        if not isinstance(exc, ssl.SSLEOFError | ConnectionError):
            return exc
        try:
            for _ in range(_BEHIND_READS):
                data = self._tls.recv(_ALERT_READ)
                if not data:
                    break
                self._loop.call_soon(self._hand_over, data)
        except ssl.SSLError as alert:
            if type(alert) is ssl.SSLError and alert.reason:
                return alert
        except OSError:  # the reset itself: no alert came before it
            pass
        return exc

    def _hand_over(self, data: bytes) -> None:
        """Give ``data``, read behind a failed write, to the protocol as if just read."""
        protocol = self._protocol
        left = memoryview(data)
        while left:
            buffer = memoryview(protocol.get_buffer(len(left))).cast("B")
            size = min(len(buffer), len(left))
            buffer[:size] = left[:size]
            buffer.release()
            if not size:
                break
            protocol.buffer_updated(size)
            left = left[size:]

    def _check_write_pressure(self) -> None:
        size = self._backlog_size
        if not self._write_paused and size > _HIGH_WATER:
            self._write_paused = True
            self._protocol.pause_writing()
        elif self._write_paused and size <= _LOW_WATER:
            self._write_paused = False
            self._protocol.resume_writing()

    def _fatal(self, exc: Exception) -> None:
        if not isinstance(exc, ConnectionError | ssl.SSLError):
            log.debug("TLS transport error: %r", exc)
        self._closing = True
        self._stop_reading()
        self._backlog.clear()
        self._backlog_size = 0
        self._finish(exc, notify=False)

    def _finish(self, exc: Exception | None, *, notify: bool = True) -> None:
        if self._lost:
            return
        self._lost = True
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        self._stop_reading()
        # unwrap() and close() let go of the SSL object: its session is kept for
        # whoever resumes it once the association is over (a peer that closes right
        # after its A-RELEASE-RP ends the connection before the requestor looks).
        self._extra["ssl_session"] = self._tls.session
        if notify and exc is None and not self._send_close_notify():
            # The socket is full (the last writes, an A-ABORT say, just filled it):
            # the alert goes once there is room; closed without it, the peer's TLS
            # reads an end without close_notify ("unexpected eof"). A peer reading
            # nothing cannot hold the close longer than _NOTIFY_WAIT.
            self._loop.add_writer(self._fd, self._notify_when_writable)
            self._notify_deadline = self._loop.call_later(_NOTIFY_WAIT, self._close_socket, exc)
            return
        self._close_socket(exc)

    def _send_close_notify(self) -> bool:
        """Send close_notify (RFC 8446 6.1, RFC 5246 7.2.1) without blocking; False
        when the socket has no room for it yet. The peer's own close_notify is
        never awaited (a non-blocking unwrap says "want read" then: ours is out),
        nor is one sent that cannot go (a TLS error, the socket gone)."""
        try:
            self._tls.unwrap()
        except ssl.SSLWantWriteError:
            return False
        except (ssl.SSLError, OSError, ValueError):
            pass
        return True

    def _notify_when_writable(self) -> None:
        if self._send_close_notify():
            self._close_socket(None)

    def _close_socket(self, exc: Exception | None) -> None:
        if self._notify_deadline is not None:
            self._notify_deadline.cancel()
            self._notify_deadline = None
            self._loop.remove_writer(self._fd)
        elif self._socket_closed:
            return
        self._socket_closed = True
        with contextlib.suppress(OSError):
            self._tls.close()
        self._loop.call_soon(self._protocol.connection_lost, exc)
