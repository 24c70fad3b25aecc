"""The TCP options of every DICOM connection (dicomnet.aio.sockets): Nagle off
everywhere; on TLS connections an unsent-bytes limit, and a fixed receive
buffer only where the round trip is short and the system allows its size."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomnet.aio import sockets
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
    sockets._receive_buffer_allowed.cache_clear()
    yield path
    sockets._receive_buffer_allowed.cache_clear()


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
        assert rtt is not None and 0 < rtt < sockets.SHORT_RTT_US  # loopback
        sockets.tune_socket(server, tls=True)
        nodelay, unsent, rcvbuf = _options(server)
        assert nodelay == 1
        assert unsent == sockets.UNSENT_MOST
        assert rcvbuf == 2 * sockets.RECEIVE_BUFFER  # the kernel doubles what was asked


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
    assert sockets._receive_buffer_allowed() is False


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
        assert options == (1, sockets.UNSENT_MOST, 2 * sockets.RECEIVE_BUFFER)
    for options in (plain_client, plain_server):
        assert options[0] == 1
        assert options[1] != sockets.UNSENT_MOST
        assert options[2] < sockets.RECEIVE_BUFFER
