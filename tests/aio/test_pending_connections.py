"""Connections that never associate (``Limits.max_pending_connections``).

A peer can open TCP connections and send nothing, or never finish the TLS
handshake: each holds a descriptor until ARTIM or the handshake timeout (30 s
by default). Past the limit the server closes the oldest such connection for
each new one, so a flood of them neither exhausts the descriptors nor keeps a
real peer, which sends its request at once, from associating. Associated
connections never count. The log says so once per episode, not per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import struct
import warnings
from collections.abc import Iterator

import pytest

from dicomnet.aio.client import associate
from dicomnet.aio.server import Server
from dicomnet.aio.transport import SecureLinkEvent
from dicomnet.config import Limits
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from tests.aio.helpers import LOOPBACK, Pki, log_lines, run, running_server, wait_until

Peer = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _silent(port: int) -> Peer:
    return await asyncio.open_connection(LOOPBACK, port)


async def _closed_by_server(peer: Peer, bound: float = 10.0) -> bool:
    """True when the server ended the connection (EOF or reset) within ``bound`` s."""
    try:
        data = await asyncio.wait_for(peer[0].read(1), bound)
    except ConnectionError:  # a reset
        return True
    except TimeoutError:
        return False
    return data == b""


async def _still_open(peer: Peer) -> bool:
    """The server has not closed it: nothing to read, no EOF, for a short while."""
    try:
        await asyncio.wait_for(peer[0].read(1), 0.2)
    except TimeoutError:
        return True
    return False


async def _close_all(peers: list[Peer]) -> None:
    for _, writer in peers:
        writer.close()
    for _, writer in peers:
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _echo(server: Server, pki: Pki | None = None) -> int:
    async with associate(LOOPBACK, server.port, called_ae_title="DICOMNET-SCP",
                         tls=pki.client_tls() if pki else None) as assoc:
        return int(await assoc.echo())


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "tls"])
def test_the_oldest_waiting_connection_makes_room(
    aio_log: pytest.LogCaptureFixture, pki: Pki, secure: bool,
) -> None:
    """Four silent connections at a limit of four: a fifth closes the first, the
    others stay; a real association then still gets in (closing the second)."""

    async def main() -> None:
        tls = pki.server_tls() if secure else None
        async with running_server(tls=tls, limits=Limits(max_pending_connections=4)) as server:
            peers = [await _silent(server.port) for _ in range(4)]
            await wait_until(lambda: server.pending_connections == 4, "four waiting")
            fifth = await _silent(server.port)
            assert await _closed_by_server(peers[0])
            assert all([await _still_open(peer) for peer in peers[1:]])
            assert await _echo(server, pki if secure else None) == 0
            assert await _closed_by_server(peers[1])
            assert await _still_open(peers[2])
            await wait_until(lambda: server.pending_connections == 3, "three waiting")
            await _close_all([*peers, fifth])

    run(main())
    first = log_lines(aio_log, contains="connections are waiting to associate")
    assert len(first) == 1, first
    assert "4 connections are waiting to associate (the limit): closing the oldest " \
           "(from 127.0.0.1)" in first[0]
    # Nothing logged per closed connection (their handshake or ARTIM never ended).
    assert not log_lines(aio_log, contains="ARTIM expired")
    assert not log_lines(aio_log, contains="connection refused")


def test_a_flood_is_logged_once_and_its_end(aio_log: pytest.LogCaptureFixture) -> None:
    """100 silent connections at a limit of 8: 92 closed, 8 held, one warning; a
    real association meanwhile; after the flood, one line with the count."""

    async def main() -> None:
        async with running_server(limits=Limits(max_pending_connections=8)) as server:
            peers = [await _silent(server.port) for _ in range(100)]
            await wait_until(lambda: server.pending_connections == 8, "eight waiting")
            closed = [await _closed_by_server(peer, 5.0) for peer in peers[:92]]
            assert all(closed), closed.count(False)
            assert all([await _still_open(peer) for peer in peers[92:]])
            await _close_all(peers)
            await wait_until(lambda: server.pending_connections == 0, "none waiting")
            assert await _echo(server) == 0

    run(main(), timeout=60.0)
    assert len(log_lines(aio_log, contains="connections are waiting to associate")) == 1
    ends = log_lines(aio_log, contains="no longer closing waiting connections")
    assert ends == ["no longer closing waiting connections; closed 92 (from 127.0.0.1: 92)"]


def test_associations_are_never_counted_nor_closed(aio_log: pytest.LogCaptureFixture) -> None:
    """Three associations open at a limit of two waiting connections, then a
    flood of silent ones: every association still works."""

    async def main() -> list[int]:
        async with running_server(limits=Limits(max_pending_connections=2)) as server:
            async with contextlib.AsyncExitStack() as stack:
                assocs = [await stack.enter_async_context(associate(
                    LOOPBACK, server.port, called_ae_title="DICOMNET-SCP")) for _ in range(3)]
                assert server.pending_connections == 0
                peers = [await _silent(server.port) for _ in range(10)]
                await wait_until(lambda: server.pending_connections == 2, "two waiting")
                statuses = [int(await assoc.echo()) for assoc in assocs]
                await _close_all(peers)
            return statuses

    assert run(main()) == [0, 0, 0]
    assert not log_lines(aio_log, contains="aborted")


def test_the_limit_must_be_positive() -> None:
    from dicomnet.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="max_pending_connections"):
        Limits(max_pending_connections=0)


@contextlib.contextmanager
def _no_resource_warnings() -> Iterator[None]:
    """Fails if a socket or transport was left to the garbage collector to close."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == []


def test_evicted_while_its_secure_link_hook_runs(pki: Pki) -> None:
    """The TLS link is up and the async on_secure_link_ready hook is running when
    the connection is evicted: its transport is closed then, not by the GC."""
    events: list[SecureLinkEvent] = []

    async def hook(event: SecureLinkEvent) -> None:
        events.append(event)
        await asyncio.sleep(30)

    async def main() -> None:
        async with running_server(tls=pki.server_tls(), on_secure_link_ready=hook,
                                  limits=Limits(max_pending_connections=1)) as server:
            context = await pki.client_tls().client_context()
            with _no_resource_warnings():
                first = await asyncio.open_connection(LOOPBACK, server.port, ssl=context,
                                                      server_hostname="localhost")
                await wait_until(lambda: len(events) == 1, "the hook called")
                second = await _silent(server.port)
                assert await _closed_by_server(first)
                await _close_all([first, second])

    run(main())
    assert events[0].error is None  # it was the success event


def test_a_burst_closes_connections_evicted_before_they_ran() -> None:
    """Four connections queued at once at a limit of two: the accept loop takes
    them without yielding, so the oldest tasks are cancelled before their first
    step; their sockets are closed all the same."""

    async def main() -> None:
        async with running_server(limits=Limits(max_pending_connections=2)) as server:
            with _no_resource_warnings():
                clients = [socket.create_connection((LOOPBACK, server.port)) for _ in range(4)]
                await wait_until(lambda: server.pending_connections == 2, "two waiting")
                for client in clients[:2]:
                    client.settimeout(10)
                    assert client.recv(1) == b""
                for client in clients:
                    client.close()

    run(main())


def test_closing_the_server_while_it_evicts() -> None:
    """close() while the accept loop waits for an evicted task: the connection just
    accepted is closed too, not left open."""

    async def main() -> socket.socket:
        async with running_server(limits=Limits(max_pending_connections=1)) as server:
            first = socket.create_connection((LOOPBACK, server.port))
            await wait_until(lambda: server.pending_connections == 1, "one waiting")
            second = socket.create_connection((LOOPBACK, server.port))
            for _ in range(1000):  # until the accept loop evicts the first
                if server._evicted:
                    break
                await asyncio.sleep(0)
            assert server._evicted
        first.close()
        return second

    second = run(main())
    second.settimeout(10)
    try:
        assert second.recv(1) == b""
    except ConnectionResetError:
        pass
    finally:
        second.close()


def test_rejected_connections_count_until_they_close(aio_log: pytest.LogCaptureFixture) -> None:
    """A peer that holds its connection open after an A-ASSOCIATE-RJ (the server
    waits for it to close, up to ARTIM) still counts as not associated: five such
    at a limit of two, and the oldest three are closed."""
    rq = build_associate_rq(calling_ae_title="STRANGER", called_ae_title="DICOMNET-SCP",
                            contexts=[ContextRequest("1.2.840.10008.1.1",
                                                     ("1.2.840.10008.1.2",))]).encode()

    async def main() -> None:
        async with running_server(limits=Limits(max_pending_connections=2),
                                  on_association_request=lambda info: (1, 1, 3)) as server:
            peers = []
            for _ in range(5):
                peer = await _silent(server.port)
                peer[1].write(rq)
                header = await asyncio.wait_for(peer[0].readexactly(6), 10)
                assert header[0] == 0x03  # A-ASSOCIATE-RJ
                await peer[0].readexactly(struct.unpack(">L", header[2:])[0])
                peers.append(peer)
            await wait_until(lambda: server.pending_connections == 2, "two waiting")
            assert all([await _closed_by_server(peer) for peer in peers[:3]])
            assert all([await _still_open(peer) for peer in peers[3:]])
            await _close_all(peers)

    run(main())
