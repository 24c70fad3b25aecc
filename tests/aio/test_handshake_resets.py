"""A client that resets its connection (RST: SO_LINGER 0) during the TLS handshake,
or before the server took the connection from its listening queue, is told as
``connection_refused`` (stage "tls") with why, in one WARNING line, as a
handshake that failed otherwise is. One whose reset the server met first in
its peer's address (``getpeername``: ENOTCONN) was told nothing, its line
"connection failed before DICOM: [Errno 107] Transport endpoint is not
connected", without the peer's address; one met by Python's ``ssl`` before
the handshake began was told as "TLS error: Closed before TLS handshake with
data in recv buffer.", and one met during the handshake as a close ("peer
closed the connection")."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct

import pytest

from dicomnet.aio.server_events import ConnectionEvent, ConnectionRefused

from .helpers import AIO_LOGGER, LOOPBACK, Pki, log_lines, run, running_server, wait_until

RESET = "the client reset the connection during the TLS handshake"


def _client_hello() -> bytes:
    """A real ClientHello, as the first flight of a TLS client (RFC 8446 4.1.2)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_side=False)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def _peer(port: int, how: str) -> tuple[str, int]:
    """Connect, send per ``how``, reset; the address we connected from."""
    if how.startswith("queued"):
        # Without yielding to the loop: the server takes the connection after the
        # reset (the kernel keeps it, dead, in the listening queue).
        sock = socket.create_connection((LOOPBACK, port), timeout=10)
        host, local_port = sock.getsockname()[:2]
        if how == "queued, with its ClientHello":
            sock.sendall(_client_hello())
        _reset(sock)
        return str(host), int(local_port)
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, (LOOPBACK, port))
    host, local_port = sock.getsockname()[:2]
    await loop.sock_sendall(sock, _client_hello())
    if how == "after the server's flight":
        assert await loop.sock_recv(sock, 65536)  # ServerHello... (the handshake began)
    _reset(sock)
    return str(host), int(local_port)


@pytest.mark.parametrize("how", ["queued, with its ClientHello", "with its ClientHello",
                                 "after the server's flight"])
def test_a_reset_during_the_handshake_is_told_as_refused(
        pki: Pki, how: str, aio_log: pytest.LogCaptureFixture) -> None:
    events: list[ConnectionEvent] = []

    async def main() -> tuple[str, int]:
        async with running_server(tls=pki.server_tls(), on_connection_event=events.append) as s:
            address = await _peer(s.port, how)
            await wait_until(lambda: bool(events), "the connection to be told refused")
            return address

    address = run(main())
    (refused,) = events
    assert isinstance(refused, ConnectionRefused)
    assert (refused.stage, refused.reason) == ("tls", RESET)
    assert refused.peer == (address[0], address[1])
    (line,) = log_lines(aio_log, contains=str(address[1]))
    assert line == (f"connection refused: TLS handshake with {address[0]}:{address[1]} "
                    f"failed: {RESET}")
    assert [r for r in aio_log.records if r.name == AIO_LOGGER and r.exc_info] == []


def test_a_reset_before_sending_anything_is_a_connection_that_sent_nothing(
        pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    """Nothing was received, no handshake began: as a connection closed before its
    first byte (a health check), one INFO line and no event."""
    events: list[ConnectionEvent] = []

    async def main() -> tuple[str, int]:
        async with running_server(tls=pki.server_tls(), on_connection_event=events.append) as s:
            address = await _peer(s.port, "queued")
            await wait_until(lambda: bool(log_lines(aio_log, contains=str(address[1]))),
                             "the connection's line")
            return address

    address = run(main())
    assert events == []
    assert log_lines(aio_log, contains=str(address[1])) == [
        f"{address[0]}:{address[1]} closed the connection before sending anything"]
    assert [r.levelno for r in aio_log.records
            if r.name == AIO_LOGGER and str(address[1]) in r.getMessage()] == [logging.INFO]
