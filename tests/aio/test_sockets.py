"""The TCP options of every DICOM connection (dicomnet.aio.sockets): Nagle off
everywhere; on TLS connections an unsent-bytes limit, and a fixed receive
buffer only where the round trip is short and the system allows its size."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomnet.aio import sockets
from dicomnet.aio.tls_socket import TLSSocketTransport, handshake
from dicomnet.aio.transport import open_stream, wrap_accepted
from tests.aio.helpers import Pki, run

LOOPBACK = "127.0.0.1"

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="TCP_INFO and /proc/sys are Linux's")


@pytest.fixture
def rmem_max(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A stand-in for /proc/sys/net/core/rmem_max, large enough unless rewritten."""
    path = tmp_path / "rmem_max"
    path.write_text(f"{sockets.RECEIVE_BUFFER * 4}\n")
    monkeypatch.setattr(sockets, "_RMEM_MAX", str(path))
    sockets._rmem_max.cache_clear()
    yield path
    sockets._rmem_max.cache_clear()


def _granted() -> int:
    """SO_RCVBUF after asking for RECEIVE_BUFFER: the kernel caps the request at
    the real rmem_max (the fixture fakes only what the code reads) and doubles it."""
    with open("/proc/sys/net/core/rmem_max", encoding="ascii") as f:
        return 2 * min(sockets.RECEIVE_BUFFER, int(f.read()))


def _pair() -> tuple[socket.socket, socket.socket]:
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def _options(sock: socket.socket) -> tuple[int, int, int]:
    return (sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT),
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


@linux_only
def test_a_loopback_tls_socket_gets_all_three(rmem_max: Path) -> None:
    client, server = _pair()
    with client, server:
        rtt = sockets.round_trip_us(server)
        assert rtt is not None and 0 <= rtt < sockets.SHORT_RTT_US  # loopback
        sockets.tune_socket(server, tls=True)
        nodelay, unsent, rcvbuf = _options(server)
        assert nodelay == 1
        assert unsent == sockets.UNSENT_MOST
        assert rcvbuf == _granted()
        # The window may grow to it (older kernels kept the clamp of the set-up).
        assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP) == (
            sockets.RECEIVE_BUFFER)


@linux_only
def test_a_plain_socket_gets_only_nodelay(rmem_max: Path) -> None:
    client, server = _pair()
    with client, server:
        before = _options(server)
        sockets.tune_socket(server, tls=False)
        assert _options(server) == (1, before[1], before[2])
        assert before[2] < sockets.RECEIVE_BUFFER  # the kernel's own, autotuned size


@linux_only
def test_a_long_round_trip_keeps_the_kernels_buffer_sizing(
        rmem_max: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockets, "round_trip_us", lambda sock: 40_000)  # 40 ms: a WAN
    client, server = _pair()
    with client, server:
        before = _options(server)[2]
        sockets.tune_socket(server, tls=True)
        assert _options(server)[1:] == (sockets.UNSENT_MOST, before)


@linux_only
def test_an_unknown_round_trip_keeps_the_kernels_buffer_sizing(
        rmem_max: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockets, "round_trip_us", lambda sock: None)
    client, server = _pair()
    with client, server:
        before = _options(server)[2]
        sockets.tune_socket(server, tls=True)
        assert _options(server)[2] == before


@linux_only
@pytest.mark.parametrize("content", [f"{sockets.RECEIVE_BUFFER - 1}\n", "", "not a number"])
def test_a_low_or_unreadable_rmem_max_keeps_the_kernels_buffer_sizing(
        rmem_max: Path, content: str) -> None:
    """The kernel would cap the request at rmem_max and still stop sizing the
    buffer itself: worse than leaving it alone."""
    rmem_max.write_text(content)
    client, server = _pair()
    with client, server:
        before = _options(server)[2]
        sockets.tune_socket(server, tls=True)
        assert _options(server)[1:] == (sockets.UNSENT_MOST, before)


def test_a_missing_rmem_max_keeps_the_kernels_buffer_sizing(
        rmem_max: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockets, "_RMEM_MAX", str(rmem_max.parent / "absent"))
    assert sockets._rmem_max() is None
    assert sockets.receive_buffer_for(0, sockets._rmem_max(), 131072) is None


_WANTED = sockets.RECEIVE_BUFFER


_Case = tuple[int | None, int | None, int, int | None, str | None]


@pytest.mark.parametrize("case", [
    # A short round trip, a cap that allows the request, a buffer the kernel sized.
    (0, _WANTED, 131072, _WANTED, None),
    (999, 4 * _WANTED, 131072, _WANTED, None),
    # Already as large as the request would make it (the kernel doubles it).
    (0, 4 * _WANTED, 2 * _WANTED - 1, _WANTED, None),
    (0, 4 * _WANTED, 2 * _WANTED, None, "already"),
    # The cap below what we want: a capped request would be a smaller buffer,
    # with the kernel's sizing off (208 KiB is a common default).
    (0, _WANTED - 1, 131072, None, "net.core.rmem_max (2097151) is below"),
    (0, 212992, 131072, None, "net.core.rmem_max (212992) is below"),
    (0, None, 131072, None, "net.core.rmem_max (unknown) is below"),
    # A long or unknown round trip: the kernel's sizing may grow past the request.
    (1000, 4 * _WANTED, 131072, None, "round trip of 1000 us"),
    (None, 4 * _WANTED, 131072, None, "round trip unknown"),
])
def test_the_receive_buffer_decision_with_the_cap_given(
        caplog: pytest.LogCaptureFixture, case: _Case) -> None:
    """receive_buffer_for (round trip, rmem_max, current buffer) never trades the
    kernel's sizing for a smaller buffer than the one wanted, and says at DEBUG
    why it leaves the buffer alone."""
    rtt, cap, current, expected, why = case
    with caplog.at_level(logging.DEBUG, logger="dicomnet.aio"):
        assert sockets.receive_buffer_for(rtt, cap, current) == expected
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    if why is None:
        assert logged == []
    else:
        assert len(logged) == 1 and why in logged[0], logged


@linux_only
def test_a_socket_without_a_round_trip_sample_has_no_round_trip() -> None:
    with socket.socket() as fresh:  # never connected: rtt 0 with the initial variance
        assert sockets.round_trip_us(fresh) is None


def test_non_tcp_sockets_and_none_are_left_alone() -> None:
    sockets.tune_socket(None, tls=True)
    left, right = socket.socketpair()
    with left, right:
        sockets.tune_socket(left, tls=True)  # AF_UNIX: no TCP options to set, no error
        assert sockets.round_trip_us(left) is None


@linux_only
def test_both_ends_of_a_dicomnet_tls_connection_are_tuned(pki: Pki, rmem_max: Path) -> None:
    """Through open_stream and wrap_accepted, as the client and the server use
    them; and over plain TCP, Nagle off only."""

    async def main() -> list[tuple[int, int, int]]:
        loop = asyncio.get_running_loop()
        seen: list[tuple[int, int, int]] = []
        for server_tls, client_tls in ((pki.server_tls(), pki.client_tls()), (None, None)):
            with socket.socket() as listener:
                listener.bind((LOOPBACK, 0))
                listener.listen()
                listener.setblocking(False)
                connecting = asyncio.create_task(open_stream(
                    LOOPBACK, listener.getsockname()[1], tls=client_tls,
                    context=await client_tls.client_context() if client_tls else None,
                    connect_timeout=10, handshake_timeout=10))
                if client_tls is None:
                    # A plain server reads the start of an A-ASSOCIATE-RQ before anything
                    client = await connecting
                    client.writer.write(b"\x01\x00\x00\x00\x00\x44\x00\x01")
                raw, _ = await loop.sock_accept(listener)
                server = await wrap_accepted(
                    raw, tls=server_tls,
                    context=await server_tls.server_context() if server_tls else None,
                    handshake_timeout=10, artim_timeout=10, on_secure_link_ready=None)
                client = await connecting
            for stream in (client, server):
                seen.append(_options(stream.writer.get_extra_info("socket")))
            for stream in (client, server):
                await stream.close()
        return seen

    tls_client, tls_server, plain_client, plain_server = run(main())
    for options in (tls_client, tls_server):
        assert options == (1, sockets.UNSENT_MOST, _granted())
    for options in (plain_client, plain_server):
        assert options[0] == 1
        assert options[1] != sockets.UNSENT_MOST
        assert options[2] < sockets.RECEIVE_BUFFER


class _Quiet(asyncio.BufferedProtocol):
    """The sending side's protocol: nothing comes back but the end."""

    def __init__(self) -> None:
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> bytearray:
        return bytearray(1 << 16)

    def buffer_updated(self, nbytes: int) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


@linux_only
@pytest.mark.parametrize("extra", [0, 11_111, 47_000, 77_777])
def test_close_sends_close_notify_behind_a_backlog_the_peer_reads_late(
        pki: Pki, extra: int) -> None:
    """With the unsent limit the kernel refuses more once 64 KiB wait unsent;
    close() lifts it, so the rest of the backlog and close_notify behind it go
    to the kernel as they did without the limit: a slow reader sees every
    byte and then a clean TLS end, not an end without close_notify
    (SSLEOFError)."""
    payload = os.urandom((3 << 20) + extra)

    def read_all(listener: socket.socket, context: ssl.SSLContext) -> tuple[str, bool]:
        listener.settimeout(20)  # a sender that fails must not leave this thread stuck
        raw, _ = listener.accept()
        raw.settimeout(20)
        with context.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False) as tls:
            time.sleep(0.3)  # the sender's backlog builds up meanwhile
            digest = hashlib.sha256()
            while True:
                try:
                    data = tls.recv(1 << 16)
                except ssl.SSLEOFError:
                    return digest.hexdigest(), False
                if not data:
                    return digest.hexdigest(), True
                digest.update(data)
                time.sleep(0.0002)  # a slow reader: the window is mostly shut

    async def main() -> tuple[str, bool]:
        loop = asyncio.get_running_loop()
        server_context = await pki.server_tls().server_context()
        with socket.socket() as listener:
            listener.bind((LOOPBACK, 0))
            listener.listen()
            reading = asyncio.ensure_future(
                asyncio.to_thread(read_all, listener, server_context))
            raw = socket.socket()
            raw.setblocking(False)
            await loop.sock_connect(raw, listener.getsockname())
            sockets.tune_socket(raw, tls=True)
            tls = await handshake(raw, await pki.client_tls().client_context(),
                                  server_side=False, server_hostname="localhost", timeout=10)
            assert tls.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT) == (
                sockets.UNSENT_MOST)
            protocol = _Quiet()
            transport = TLSSocketTransport(loop, tls, protocol)
            # TLS 1.3 session tickets arrive after the handshake: read them as a
            # real connection would (closing over unread bytes resets the link).
            await asyncio.sleep(0.1)
            for start in range(0, len(payload), 1 << 20):
                transport.write(payload[start:start + (1 << 20)])
            transport.close()
            # The rest of the backlog goes to the kernel at once, as without the limit.
            assert tls.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT) == 0
            assert await asyncio.wait_for(protocol.lost, 20) is None
            return await asyncio.wait_for(reading, 20)

    digest, clean = run(main())
    assert digest == hashlib.sha256(payload).hexdigest()
    assert clean, "the TLS stream ended without close_notify"
