"""Opening connections, plain or TLS, with error translation (asyncio).

Every socket gets TCP_NODELAY: DIMSE is request/response with small commands,
and Nagle's algorithm delays them (DCMTK and pynetdicom leave it on, which
costs them 3x to 30x on small objects).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import ConnectError, TimeoutError, TLSError
from ..security.config import TLSConfig
from ..security.detect import explain_first_bytes
from ..security.errors_map import translate_ssl_error
from ..security.info import SecurityInfo

__all__ = [
    "PeerSilent",
    "SecureLinkEvent",
    "describe_os_error",
    "SecureLinkHook",
    "Stream",
    "open_stream",
    "peek",
    "set_nodelay",
    "wrap_accepted",
]

log = logging.getLogger("dicomnet.aio")

#: Bytes asked of the socket per read, and the StreamReader's limit (it stops
#: reading past twice this). 256 KiB measured as fast as 1 MiB on loopback TLS and
#: keeps a receiving server a few MB smaller.
READ_SIZE = 1 << 18


class PeerSilent(ConnectError):
    """A connection that sent nothing (a port scan, a health check, a stalled peer)."""


@dataclass(frozen=True, slots=True)
class SecureLinkEvent:
    """What ``on_secure_link_ready`` receives, once per TLS connection.

    On success ``info`` holds what was negotiated and ``error`` is None; on a
    failed handshake ``info`` is None and ``error`` says why. Either way it comes
    before any DICOM byte is exchanged.
    """

    peer: tuple[str, int]
    side: str
    info: SecurityInfo | None
    error: TLSError | None = None


SecureLinkHook = Callable[[SecureLinkEvent], None | Awaitable[None]]


@dataclass(slots=True)
class Stream:
    """An open connection: the asyncio streams plus what TLS negotiated."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: tuple[str, int]
    security: SecurityInfo | None = None

    async def close(self) -> None:
        writer = self.writer
        if writer.is_closing():
            return
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 5.0)


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


def set_nodelay(sock: socket.socket | None) -> None:
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


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
    """Open a client connection; TLS when ``context`` is given (built from ``tls``)."""
    peer = (host, port)
    try:
        raw = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=READ_SIZE), connect_timeout
        )
    except builtins.TimeoutError as exc:
        raise TimeoutError(
            f"connecting to {host}:{port} timed out after {connect_timeout}s"
        ) from exc
    except OSError as exc:
        raise ConnectError(f"cannot connect to {host}:{port}: {describe_os_error(exc)}") from exc
    reader, writer = raw
    set_nodelay(writer.get_extra_info("socket"))
    stream = Stream(reader, writer, peer)
    if context is None or tls is None:
        return stream
    server_hostname = tls.server_hostname or host
    try:
        await asyncio.wait_for(
            writer.start_tls(context, server_hostname=server_hostname,
                             ssl_handshake_timeout=handshake_timeout),
            handshake_timeout + 1,
        )
    except (ssl.SSLError, OSError, builtins.TimeoutError, EOFError) as exc:
        await stream.close()
        error = _handshake_error(exc, side="client", peer=f"{host}:{port}",
                                 timeout=handshake_timeout, profile=tls.profile,
                                 host=server_hostname)
        await call_hook(on_secure_link_ready, SecureLinkEvent(peer, "client", None, error))
        raise error from exc
    await _check_established(tls, stream, "client", on_secure_link_ready)
    return stream


async def _check_established(
    tls: TLSConfig, stream: Stream, side: str, hook: SecureLinkHook | None
) -> None:
    """Describe the finished handshake, apply the checks ssl cannot (profile key sizes,
    verify callback), then fire ``on_secure_link_ready``: before any DICOM byte."""
    ssl_object = stream.writer.get_extra_info("ssl_object")
    assert isinstance(ssl_object, ssl.SSLObject)
    try:
        stream.security = tls.check_established(
            ssl_object, side=side, peer=f"{stream.peer[0]}:{stream.peer[1]}"  # type: ignore[arg-type]
        )
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
    await call_hook(hook, SecureLinkEvent(stream.peer, side, stream.security))


def _handshake_error(
    exc: BaseException, *, side: str, peer: str, timeout: float, profile: str | None = None,
    host: str | None = None,
) -> TLSError:
    if isinstance(exc, builtins.TimeoutError):
        return TLSError(
            f"TLS handshake with {peer} did not finish within {timeout}s",
            reason="handshake timed out",
        )
    return translate_ssl_error(
        exc, side=side, peer=peer, profile=profile, host=host  # type: ignore[arg-type]
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
            await asyncio.wait_for(ready, max(0.0, deadline - loop.time()))
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
) -> Stream:
    """Turn an accepted socket into a Stream, doing the server TLS handshake (with its
    own timeout, in the caller's task) and explaining a TLS/plain mismatch."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    set_nodelay(sock)
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
                reason="handshake timed out",
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
    reader = asyncio.StreamReader(limit=READ_SIZE)
    protocol = asyncio.StreamReaderProtocol(reader)
    try:
        transport, _ = await loop.connect_accepted_socket(
            lambda: protocol, sock, ssl=context,
            ssl_handshake_timeout=handshake_timeout if context is not None else None,
        )
    except (ssl.SSLError, OSError, builtins.TimeoutError, EOFError) as exc:
        sock.close()
        error = _handshake_error(exc, side="server", peer=f"{peer[0]}:{peer[1]}",
                                 timeout=handshake_timeout, profile=tls.profile if tls else None)
        await call_hook(on_secure_link_ready, SecureLinkEvent(peer, "server", None, error))
        raise error from exc
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    stream = Stream(reader, writer, peer)
    if context is not None and tls is not None:
        await _check_established(tls, stream, "server", on_secure_link_ready)
    return stream
