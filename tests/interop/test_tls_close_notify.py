"""An interrupted send over TLS ends with our A-ABORT then a close_notify (RFC 8446
6.1), and the close never waits long for either.

What DCMTK 3.6.7's ``storescp +tls`` logs (seen while writing these tests): our
A-ABORT read, "Store SCP Failed: 0006:0317 Peer aborted Association (or never
connected)"; a connection cut without it, "0006:0310 DUL network closed" (with
"0006:020c DIMSE Read PDV failed" when cut inside a PDU). Its "Receiving
Association failed: 000b:0926 TLS error: unexpected eof while reading" is for a
connection that ends before its handshake: here the test's own port probe
(``wait_port``), not dicomnet. The close_notify itself is seen by a Python
``ssl`` peer: its read ends with b"" after one, with ``SSLEOFError`` without.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.tls_socket import TLSSocketTransport, handshake
from dicomnet.services.storage import StoreResult, store_paths
from dicomnet.services.store_scu import PART_WAY
from dicomnet.ul.negotiation import AcceptorPolicy, negotiate
from dicomnet.ul.pdu import AssociateRQ, decode_pdu
from tests.aio.helpers import (
    LOOPBACK,
    Pki,
    PkiFactory,
    background_process,
    free_port,
    run,
    wait_output,
)
from tests.interop.conftest import Dcmtk
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10


class _Lost(asyncio.BufferedProtocol):
    """Reads nothing of interest; says when the connection is gone."""

    def __init__(self) -> None:
        self.buffer = bytearray(1 << 16)
        self.lost: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future())

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


@pytest.fixture
def pki(pkis: PkiFactory) -> Pki:
    return pkis("ecdsa")


class _PythonPeer:
    """A TLS server on a thread with a blocking ``ssl`` socket: once ``go`` is
    set it reads to the end, and ``ending`` says how it ended: "close_notify"
    (a read of b"") or "eof" (``SSLEOFError``: closed without one). With
    ``go`` never set it reads nothing at all; with ``associate``, nothing once
    it answered the A-ASSOCIATE-RQ (accepting Secondary Capture)."""

    def __init__(self, context: ssl.SSLContext, *, associate: bool = False) -> None:
        self.context = context
        self.associate = associate
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        self.go = threading.Event()
        self.accepted = threading.Event()
        self.stop = threading.Event()
        self.ending = ""
        self.received = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        raw, _ = self.listener.accept()
        with self.context.wrap_socket(raw, server_side=True,
                                       suppress_ragged_eofs=False) as tls:
            if self.associate:
                self._accept(tls)
            while not self.go.wait(0.05):
                if self.stop.is_set():
                    return
            try:
                while data := tls.recv(1 << 16):
                    self.received += len(data)
                self.ending = "close_notify"
            except ssl.SSLEOFError:
                self.ending = "eof"
            except OSError as exc:
                self.ending = f"error: {exc!r}"

    def _accept(self, tls: ssl.SSLSocket) -> None:
        def exactly(size: int) -> bytes:
            data = b""
            while len(data) < size:
                chunk = tls.recv(size - len(data))
                assert chunk, "closed before its A-ASSOCIATE-RQ"
                data += chunk
            return data

        head = exactly(6)
        rq = decode_pdu(head + exactly(int.from_bytes(head[2:], "big")))
        assert isinstance(rq, AssociateRQ)
        policy = AcceptorPolicy(contexts={SECONDARY_CAPTURE: [str(ExplicitVRLittleEndian)]})
        tls.sendall(negotiate(rq, policy).encode())
        self.accepted.set()

    def close(self) -> None:
        self.stop.set()
        self.go.set()
        self.thread.join(10)
        self.listener.close()


async def _client(pki: Pki, peer: _PythonPeer) -> tuple[TLSSocketTransport, _Lost]:
    loop = asyncio.get_running_loop()
    raw = socket.socket()
    raw.setblocking(False)
    await loop.sock_connect(raw, (LOOPBACK, peer.port))
    tls = await handshake(raw, await pki.client_tls().client_context(), server_side=False,
                          server_hostname="localhost", timeout=10)
    protocol = _Lost()
    return TLSSocketTransport(loop, tls, protocol), protocol


def _full_socket_once(transport: TLSSocketTransport) -> list[int]:
    """Make the transport's first close_notify attempt find the socket full, as
    OpenSSL says when the last writes just filled it (SSLWantWriteError); later
    attempts are OpenSSL's own. Returns the count of attempts, filled in."""
    tls = transport.get_extra_info("ssl_object")
    real = tls.unwrap
    attempts: list[int] = []

    def unwrap() -> socket.socket:
        attempts.append(1)
        if len(attempts) == 1:
            raise ssl.SSLWantWriteError(3, "The operation did not complete (write)")
        return real()  # type: ignore[no-any-return]

    tls.unwrap = unwrap
    return attempts


def test_close_notify_waits_for_room_in_the_socket(pki: Pki) -> None:
    """The socket full at the close (the backlog had just gone into it): the
    close_notify was dropped, and the peer read an end without one ("eof");
    it is sent once there is room."""

    async def main() -> tuple[str, int]:
        peer = _PythonPeer(await pki.server_tls().server_context())
        try:
            transport, protocol = await _client(pki, peer)
            attempts = _full_socket_once(transport)
            transport.write(b"\x07" * 100_000)
            transport.close()
            peer.go.set()
            assert await protocol.lost is None
            await asyncio.to_thread(peer.thread.join, 10)
            return peer.ending, len(attempts)
        finally:
            peer.close()

    ending, attempts = run(main(), timeout=30)
    assert ending == "close_notify"
    assert attempts == 2


def _never_room(transport: TLSSocketTransport) -> ssl.SSLSocket:
    """The transport's TLS socket, its close_notify never finding room (unwrap
    says "want write" every time)."""
    tls: ssl.SSLSocket = transport.get_extra_info("ssl_object")

    def unwrap() -> socket.socket:
        raise ssl.SSLWantWriteError(3, "The operation did not complete (write)")

    tls.unwrap = unwrap  # type: ignore[method-assign]
    return tls


def test_a_peer_that_never_reads_cannot_hold_the_close(pki: Pki) -> None:
    """A peer that reads nothing: no room ever comes for the close_notify; the
    close still ends (its wait is bounded), and the connection is gone."""

    async def main() -> None:
        peer = _PythonPeer(await pki.server_tls().server_context())
        try:
            transport, protocol = await _client(pki, peer)
            tls = _never_room(transport)
            transport.write(b"\x07" * 100_000)
            transport.close()
            assert await protocol.lost is None
            assert tls.fileno() == -1  # closed
        finally:
            peer.close()

    run(main(), timeout=30)


def test_an_abort_while_waiting_for_room_closes_at_once(pki: Pki) -> None:
    """``abort()`` during the wait for room cuts it short (once: one end told)."""

    async def main() -> None:
        peer = _PythonPeer(await pki.server_tls().server_context())
        try:
            transport, protocol = await _client(pki, peer)
            tls = _never_room(transport)
            transport.close()
            await asyncio.sleep(0)
            transport.abort()
            transport.abort()
            assert await protocol.lost is None
            assert tls.fileno() == -1
        finally:
            peer.close()

    run(main(), timeout=30)


@pytest.mark.interop
def test_storescp_hears_our_abort_after_an_interrupted_tls_send(
        dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path) -> None:
    """store_paths cancelled inside a 32 MB data set sent to ``storescp +tls``:
    storescp reads our A-ABORT ("Peer aborted Association"), not a connection
    cut under it ("DUL network closed") nor a TLS end without close_notify."""
    pki = pkis("rsa")
    big = write_part10(tmp_path / "big.dcm", make_image(99, rows=4096, columns=8192),
                       str(ExplicitVRLittleEndian))
    out = tmp_path / "out"
    out.mkdir()
    port = free_port()
    results: list[StoreResult] = []
    with background_process(
        dcmtk.storescp, "-v", "+tls", pki.server_key, pki.server_cert, "+cf", pki.ca_file,
        "-aet", "STORESCP", "+xa", "-od", out, str(port),
        log_path=tmp_path / "storescp.log", port=port,
    ) as peer:
        async def main() -> None:
            task = asyncio.create_task(store_paths(
                LOOPBACK, port, [big], tls=pki.client_tls(), called_ae_title="STORESCP",
                results=results))
            try:
                await asyncio.to_thread(wait_output, peer, "Received Store Request", 30)
            finally:
                task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        run(main(), timeout=60)
        log = wait_output(peer, "Association Aborted")
    (result,) = results
    assert (result.sent, result.error) == (False, f"not sent ({PART_WAY}): cancelled")
    # From our association on: the port probe's own line comes before it.
    ours = log[log.index("Association Received"):]
    assert "Peer aborted Association" in ours, log
    for failure in ("unexpected eof", "DUL network closed", "TLS error", "Read PDV failed"):
        assert failure not in ours, log


def test_an_interrupted_send_to_a_tls_peer_that_never_reads_ends(
        pki: Pki, tmp_path: Path) -> None:
    """The peer accepts the association, then reads nothing: the C-STORE of 32 MB
    fills every buffer on the way; cancelled, store_paths still returns (its
    A-ABORT and close_notify cannot go: the close does not wait for them), and
    the object is not sent, part-way."""
    big = write_part10(tmp_path / "big.dcm", make_image(98, rows=4096, columns=8192),
                       str(ExplicitVRLittleEndian))
    results: list[StoreResult] = []

    async def main() -> None:
        peer = _PythonPeer(await pki.server_tls().server_context(), associate=True)
        try:
            task = asyncio.create_task(store_paths(
                LOOPBACK, peer.port, [big], tls=pki.client_tls(), results=results))
            await asyncio.to_thread(peer.accepted.wait, 10)
            await asyncio.sleep(0.5)  # its C-STORE goes out, until the buffers are full
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert task.cancelled()
        finally:
            peer.close()

    run(main(), timeout=60)
    (result,) = results
    assert (result.sent, result.error) == (False, f"not sent ({PART_WAY}): cancelled")
