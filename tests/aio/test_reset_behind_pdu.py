"""A plain TCP peer that answers A-ASSOCIATE-RJ or A-ABORT (PS3.8 9.3.4, 9.3.8)
and then resets the connection (closing with SO_LINGER 0, or with our bytes
unread: RFC 1122 4.2.2.13) is heard: its PDU waits in our receive buffer, and a
write of ours failed by the reset must not hide it behind "the peer reset the
connection". The peer is a raw socket in a thread; the client's event loop is
kept from reading until the reset has arrived, so that the write comes first
(as when a script's blocking association sits between two calls), or, for a
reset during the connect itself, from looking at the connect's outcome."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from dicomnet import blocking
from dicomnet.aio import client as aio_client
from dicomnet.aio import transport
from dicomnet.dimse.messages import CEchoRQ, CEchoRSP, decode_message, encode_message
from dicomnet.errors import AssociationAborted, AssociationRejected, ConnectError
from dicomnet.ul.negotiation import AcceptorPolicy, negotiate
from dicomnet.ul.pdu import AssociateRQ, PDataTF, decode_pdu, encode_pdata
from tests.aio.helpers import LOOPBACK, Pki, run, wait_reset

VERIFICATION = "1.2.840.10008.1.1"
#: A-ASSOCIATE-RJ (PS3.8 9.3.4): type 03, reserved, length 4, reserved,
#: result 1 (permanent), source 1 (service-user), reason 7 (called AE title not
#: recognized).
REJECT = bytes.fromhex("03 00 00000004 00 01 01 07")
#: A-ABORT (PS3.8 9.3.8): type 07, reserved, length 4, two reserved bytes,
#: source 2 (service-provider), reason 1 (unrecognized PDU).
ABORT = bytes.fromhex("07 00 00000004 00 00 02 01")


def _read_pdu(conn: socket.socket) -> bytes:
    data = b""
    while len(data) < 6 or len(data) < 6 + struct.unpack(">I", data[2:6])[0]:
        chunk = conn.recv(65536)
        assert chunk, "the client closed"
        data += chunk
    return data


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


@contextmanager
def _peer(script: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-connection server on 127.0.0.1 running ``script`` in a thread."""
    listener = socket.create_server((LOOPBACK, 0))
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            # No Nagle: the PDU must leave before the reset, which drops what waits.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            script(conn)
        except BaseException as exc:  # reported by the test
            failures.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(10)
        listener.close()
    assert not failures, failures


def _delivered(conn: socket.socket) -> None:
    """Until all ``conn`` sent is acknowledged: a reset discards what it has not
    sent yet, and after a TLS handshake (its tickets just written) the kernel
    may hold back the next segments for a moment (TCP small queues)."""
    for _ in range(500):
        if not struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]:
            return
        time.sleep(0.01)
    raise AssertionError("what the peer sent was never acknowledged")


def _connect_then_wait_for_the_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client connects, then its loop blocks until the peer's reset has
    arrived: whatever it sends first then fails, with the peer's PDU unread."""
    real_open_stream = transport.open_stream

    async def open_stream(*args: Any, **kwargs: Any) -> Any:
        stream = await real_open_stream(*args, **kwargs)
        wait_reset(stream.writer.get_extra_info("socket").fileno())  # blocks the loop
        return stream

    monkeypatch.setattr(aio_client, "open_stream", open_stream)


def test_a_rejection_before_a_reset_is_reported_when_the_rq_write_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The peer rejects at once (before reading our A-ASSOCIATE-RQ) and resets:
    our RQ's write fails, and the rejection it sent is what we report, not
    'reset before answering the A-ASSOCIATE-RQ: the peer may expect TLS'."""
    def script(conn: socket.socket) -> None:
        conn.sendall(REJECT)
        _reset(conn)

    _connect_then_wait_for_the_reset(monkeypatch)

    async def main() -> None:
        async with aio_client.associate(LOOPBACK, port):
            pass

    with _peer(script) as port, pytest.raises(AssociationRejected) as caught:
        run(main())
    assert (caught.value.result, caught.value.source, caught.value.reason) == (1, 1, 7)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_an_abort_before_a_reset_is_reported_when_the_next_write_fails(
        tls: bool, pki: Pki) -> None:
    """A blocking association between two calls (its loop not running): the peer
    aborts and resets; the next call's write fails, and the A-ABORT read behind
    it (over TLS: decrypted where the transport looks for an alert) is what the
    call raises."""
    answered = threading.Event()  # the first call returned: its loop stopped
    server_context = pki.server_tls().server_context_sync() if tls else None

    def script(conn: socket.socket) -> None:
        if server_context is not None:
            conn = server_context.wrap_socket(conn, server_side=True)
        rq = decode_pdu(_read_pdu(conn))
        assert isinstance(rq, AssociateRQ)
        policy = AcceptorPolicy(contexts={VERIFICATION: ["1.2.840.10008.1.2"]})
        conn.sendall(negotiate(rq, policy).encode())
        request = decode_pdu(_read_pdu(conn))
        assert isinstance(request, PDataTF)
        pdv = request.pdvs[0]
        echo = decode_message(bytes(pdv.data))
        assert isinstance(echo, CEchoRQ)
        conn.sendall(encode_pdata(pdv.context_id, True, True, encode_message(CEchoRSP(
            message_id_being_responded_to=echo.message_id,
            status=0, affected_sop_class_uid=VERIFICATION))))
        assert answered.wait(10)
        conn.sendall(ABORT)
        _delivered(conn)
        _reset(conn)

    with (_peer(script) as port, pytest.raises(AssociationAborted) as caught,
          blocking.associate(LOOPBACK, port, tls=pki.client_tls() if tls else None) as assoc):
        assert int(assoc.echo()) == 0
        answered.set()
        wait_reset(assoc._assoc.stream.writer.get_extra_info("socket").fileno())
        assoc.echo()
    assert (caught.value.source, caught.value.reason) == (2, 1)
    assert str(caught.value).startswith(
        "association aborted by the peer (its A-ABORT: service-provider, unrecognized PDU)")


def _associate_with_the_reset_in_connect(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """Associate with ``port``, the event loop held in the connect call until the
    peer's reset has arrived (as when the loop is busy elsewhere); raises what
    the association raises."""
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        with contextlib.suppress(BlockingIOError):
            real_connect(sock, address)
        wait_reset(sock.fileno())  # blocks the loop
        raise BlockingIOError  # asyncio then reads the outcome from SO_ERROR

    monkeypatch.setattr(socket.socket, "connect", connect)

    async def main() -> None:
        async with aio_client.associate(LOOPBACK, port):
            pass

    run(main())


def test_a_rejection_before_a_reset_during_connect_is_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The peer accepts, rejects at once and resets before our connect has
    completed (its SO_ERROR then says ECONNRESET): the rejection waiting in our
    receive buffer is what we report, not 'cannot connect ...: the peer reset
    the connection'. The reset is made to arrive first by holding the event
    loop in the connect call (as when the loop is busy elsewhere)."""
    def script(conn: socket.socket) -> None:
        conn.sendall(REJECT)
        _reset(conn)

    with _peer(script) as port, pytest.raises(AssociationRejected) as caught:
        _associate_with_the_reset_in_connect(monkeypatch, port)
    assert (caught.value.result, caught.value.source, caught.value.reason) == (1, 1, 7)


def test_a_reset_during_connect_with_nothing_behind_it_still_cannot_connect(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that resets during our connect without sending anything is still
    told as before: 'cannot connect to HOST:PORT: the peer reset the connection'."""
    with _peer(_reset) as port, pytest.raises(ConnectError) as caught:
        _associate_with_the_reset_in_connect(monkeypatch, port)
    assert str(caught.value) == (
        f"cannot connect to {LOOPBACK}:{port}: the peer reset the connection")


# -- over TLS (PS3.15 B.1): the PDU arrives as application data before the reset --


def _tls_rejects(pki: Pki, *, read_rq: bool) -> Callable[[socket.socket], None]:
    """A TLS server's script: the handshake, then (the A-ASSOCIATE-RQ read, if
    ``read_rq``) an A-ASSOCIATE-RJ in a record of its own, then a reset."""
    context = pki.server_tls().server_context_sync()

    def script(conn: socket.socket) -> None:
        tls = context.wrap_socket(conn, server_side=True)
        if read_rq:
            assert isinstance(decode_pdu(_read_pdu(tls)), AssociateRQ)
        tls.sendall(REJECT)
        _delivered(tls)
        _reset(tls)

    return script


def test_tls_a_rejection_before_a_reset_is_reported_when_the_rq_write_fails(
        pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over TLS, the peer rejects as soon as the handshake is done and resets:
    our RQ's write fails, and the rejection decrypted behind it (where the
    transport looks for an alert) is what we report."""
    _connect_then_wait_for_the_reset(monkeypatch)

    async def main() -> None:
        async with aio_client.associate(LOOPBACK, port, tls=pki.client_tls()):
            pass

    with (_peer(_tls_rejects(pki, read_rq=False)) as port,
          pytest.raises(AssociationRejected) as caught):
        run(main())
    assert (caught.value.result, caught.value.source, caught.value.reason) == (1, 1, 7)


def test_tls_a_rejection_read_with_the_reset_behind_it_is_reported(
        pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over TLS, the peer reads our RQ, rejects it and resets; our loop reads
    only once the reset is there: the record holding the rejection and the
    reset come in one readable event, and the rejection is reported."""
    real_flush = aio_client.ClientAssociation._flush

    async def flush(self: aio_client.ClientAssociation) -> None:
        await real_flush(self)
        if not self.ul.pdus_received:  # the RQ was sent: hold the loop until the reset
            wait_reset(self.stream.writer.get_extra_info("socket").fileno())

    monkeypatch.setattr(aio_client.ClientAssociation, "_flush", flush)

    async def main() -> None:
        async with aio_client.associate(LOOPBACK, port, tls=pki.client_tls()):
            pass

    with (_peer(_tls_rejects(pki, read_rq=True)) as port,
          pytest.raises(AssociationRejected) as caught):
        run(main())
    assert (caught.value.result, caught.value.source, caught.value.reason) == (1, 1, 7)
