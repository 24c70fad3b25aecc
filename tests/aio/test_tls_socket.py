"""TLSSocketTransport: bytes arrive whole and in order through back-pressure on
both sides, OpenSSL's buffered records are not forgotten, and closing sends
close_notify (the peer sees a clean end, not an error)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import socket

import pytest

from dicomnet.aio.tls_socket import TLSSocketTransport, handshake
from tests.aio.helpers import Pki

LOOPBACK = "127.0.0.1"


class Collector(asyncio.BufferedProtocol):
    """Keeps what arrives; pauses reading after each ``pause_every`` bytes for a moment."""

    def __init__(self, buffer_size: int = 1 << 16, pause_every: int = 0) -> None:
        self.buffer = bytearray(buffer_size)
        self.data = bytearray()
        self.pause_every = pause_every
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.lost: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future())
        self.paused_writing = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        before = len(self.data)
        self.data += self.buffer[:nbytes]
        if self.pause_every and len(self.data) // self.pause_every > before // self.pause_every:
            assert self.transport is not None
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(0.001, self.transport.resume_reading)

    def eof_received(self) -> bool:
        self.eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self) -> None:
        self.paused_writing += 1

    def resume_writing(self) -> None:
        pass


async def pair(pki: Pki, server: Collector, client: Collector
               ) -> tuple[TLSSocketTransport, TLSSocketTransport]:
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    raw_client = socket.socket()
    raw_client.setblocking(False)

    async def accept() -> TLSSocketTransport:
        raw, _ = await loop.sock_accept(listener)
        tls = await handshake(raw, await pki.server_tls().server_context(), server_side=True,
                              server_hostname=None, timeout=10)
        return TLSSocketTransport(loop, tls, server)

    async def connect() -> TLSSocketTransport:
        await loop.sock_connect(raw_client, (LOOPBACK, port))
        tls = await handshake(raw_client, await pki.client_tls().client_context(),
                              server_side=False, server_hostname="localhost", timeout=10)
        return TLSSocketTransport(loop, tls, client)

    try:
        return await asyncio.gather(accept(), connect())
    finally:
        listener.close()


def run(coro: object) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(30):
            await coro  # type: ignore[misc]

    asyncio.run(bounded())


def test_bytes_arrive_whole_through_back_pressure(pki: Pki) -> None:
    """20 MiB each way in odd-sized writes, the receiver pausing every 256 KiB and
    reading into a buffer smaller than a TLS record (OpenSSL keeps the rest)."""
    payload = os.urandom(20 << 20)

    async def main() -> None:
        server = Collector(buffer_size=5000, pause_every=256 << 10)
        client = Collector(buffer_size=1 << 16)
        server_side, client_side = await pair(pki, server, client)
        offsets = [*range(0, len(payload), 777_777), len(payload)]
        for start, end in itertools.pairwise(offsets):
            client_side.write(payload[start:end])
            server_side.write(payload[start:end])
        while len(server.data) < len(payload) or len(client.data) < len(payload):
            await asyncio.sleep(0.01)
        assert hashlib.sha256(server.data).digest() == hashlib.sha256(payload).digest()
        assert hashlib.sha256(client.data).digest() == hashlib.sha256(payload).digest()
        assert client.paused_writing > 0  # flow control engaged
        client_side.close()
        assert await server.lost is None  # close_notify: a clean end
        assert server.eof
        assert await client.lost is None

    run(main())


def test_extras_describe_the_tls_session(pki: Pki) -> None:
    async def main() -> None:
        server, client = Collector(), Collector()
        server_side, client_side = await pair(pki, server, client)
        tls = client_side.get_extra_info("ssl_object")
        assert tls.version() in ("TLSv1.3", "TLSv1.2")
        assert client_side.get_extra_info("peercert") is not None
        assert client_side.get_extra_info("peername")[0] == LOOPBACK
        assert client_side.get_extra_info("cipher")[0]
        client_side.abort()
        assert await client.lost is None
        await server.lost  # the server notices the abort one way or another
        server_side.abort()

    run(main())


def test_write_after_close_is_ignored(pki: Pki) -> None:
    async def main() -> None:
        server, client = Collector(), Collector()
        server_side, client_side = await pair(pki, server, client)
        client_side.write(b"before")
        client_side.close()
        client_side.write(b"after")
        assert client_side.is_closing()
        await server.lost
        assert bytes(server.data) == b"before"
        server_side.close()

    run(main())


def test_a_handshake_that_never_starts_times_out(pki: Pki) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        listener = socket.socket()
        listener.bind((LOOPBACK, 0))
        listener.listen(1)
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, listener.getsockname())
        with pytest.raises(TimeoutError):
            await handshake(sock, await pki.client_tls().client_context(), server_side=False,
                            server_hostname="localhost", timeout=0.2)
        assert sock.fileno() == -1  # closed on failure
        listener.close()

    run(main())


class _CountingLoop:
    """The transport's loop, counting the reads it schedules through call_soon."""

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: TLSSocketTransport) -> None:
        self._inner, self._transport, self.rescheduled = loop, transport, 0

    def call_soon(self, callback: object, *args: object) -> asyncio.Handle:
        if callback == self._transport._read_ready:
            self.rescheduled += 1
        return self._inner.call_soon(callback, *args)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_a_full_buffer_with_a_record_left_in_openssl_is_read_again_at_once(pki: Pki) -> None:
    """A read that fills the protocol's buffer while decrypted bytes wait inside
    OpenSSL (epoll will not say so) reads on in the same readable event, not in a
    callback scheduled for the next round of the loop (six Python calls and a
    round: once per 512 KB image, whose first read fills 256 KB)."""

    async def main() -> None:
        server = Collector(buffer_size=5000)
        client = Collector()
        server_side, client_side = await pair(pki, server, client)
        counting = _CountingLoop(asyncio.get_running_loop(), server_side)
        server_side._loop = counting  # type: ignore[assignment]
        updates: list[int] = []
        real = server.buffer_updated

        def counted(nbytes: int) -> None:
            updates.append(nbytes)
            real(nbytes)

        server.buffer_updated = counted  # type: ignore[method-assign]
        payload = os.urandom(9000)  # one TLS record
        client_side.write(payload)
        while len(server.data) < len(payload):
            await asyncio.sleep(0.01)
        assert bytes(server.data) == payload
        assert updates == [5000, 4000] and counting.rescheduled == 0
        client_side.close()
        await server.lost

    run(main())


def test_a_write_the_socket_takes_is_two_python_calls(pki: Pki) -> None:
    """Per write of a sender (a C-STORE's command and data set, ~2.6 per 512 KiB
    image): ``write`` and ``_write_ready``, which hands the bytes to OpenSSL's C
    object itself (not through ``SSLSocket.send`` and its ``_checkClosed``) and
    looks at the flow control only when it can act (paused, or past the high
    mark): 6 calls before. The bytes arrive whole, and back-pressure still
    pauses and resumes the writer."""
    from tests.aio.test_receive_path_calls import python_calls

    async def main() -> None:
        server, client = Collector(), Collector()
        server_side, client_side = await pair(pki, server, client)
        payload = os.urandom(100_000)
        assert python_calls(lambda: client_side.write(payload)) == [
            "TLSSocketTransport.write", "TLSSocketTransport._write_ready"]
        server_side.pause_reading()  # the socket fills: the writer is paused, then resumed
        big = os.urandom(16 << 20)
        client_side.write(big)
        assert client.paused_writing == 1
        server_side.resume_reading()
        while len(server.data) < len(payload) + len(big):
            await asyncio.sleep(0.01)
        assert bytes(server.data) == payload + big
        assert client_side.get_write_buffer_size() == 0
        assert not client_side._write_paused  # resumed once drained
        client_side.close()
        await server.lost
        server_side.close()

    run(main())
