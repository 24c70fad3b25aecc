"""Peers that stop reading what the server sends them, or stay after the end.

A peer whose receive window stays shut leaves the server's answers in its
socket buffer: the server stops reading in turn, its idle or PDU deadline
ends the association, and then the connection must close for good, its
descriptor and association slot freed, although the A-ABORT can never be
delivered (closing a transport with unsent data waits for the peer to read
it, which this one never does)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import associate
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CEchoRQ, encode_message
from dicomnet.errors import DicomNetError
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import AcceptorPolicy, ContextRequest, build_associate_rq, negotiate
from dicomnet.ul.pdu import ReleaseRP, ReleaseRQ, decode_pdu, encode_pdata
from tests.aio.helpers import (
    LOOPBACK,
    Pki,
    association_lines,
    log_lines,
    run,
    running_server,
    wait_until,
)
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
A_ASSOCIATE_AC = 0x02
#: What the flooding peer leaves unsent in its own buffer before it stops
#: (its kernel's buffers and the server's are full long before).
STUCK = 4 << 20


async def raw_associate(port: int, tls: ssl.SSLContext | None = None
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw peer (calling AE title DEAF, a 4 KiB receive buffer) that opened an
    association on ``port``: its A-ASSOCIATE-AC was read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (LOOPBACK, port))
    reader, writer = await asyncio.open_connection(
        sock=sock, ssl=tls, server_hostname="localhost" if tls else None)
    writer.write(build_associate_rq(
        calling_ae_title="DEAF", called_ae_title="DICOMNET-SCP",
        contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))], max_pdu_length=16384,
    ).encode())
    assert (await read_pdu(reader))[0] == A_ASSOCIATE_AC
    return reader, writer


async def read_pdu(reader: asyncio.StreamReader) -> bytes:
    header = await asyncio.wait_for(reader.readexactly(6), 10)
    return header + await asyncio.wait_for(
        reader.readexactly(int.from_bytes(header[2:], "big")), 10)


async def flood_without_reading(port: int, tls: ssl.SSLContext | None) -> asyncio.StreamWriter:
    """Associate, then send C-ECHO-RQs and never read their answers, until the
    server stops taking them (``STUCK`` bytes wait in this side's buffer)."""
    _, writer = await raw_associate(port, tls)
    echoes = encode_pdata(1, True, True, encode_message(CEchoRQ(message_id=1))) * 1000
    # (Or until the server ended the connection: over TLS, it may well do so first.)
    while writer.transport.get_write_buffer_size() < STUCK and not writer.transport.is_closing():
        writer.write(echoes)
        await asyncio.sleep(0.01)
    return writer


@pytest.mark.parametrize("transport", ["plain", "tls"])
def test_a_peer_that_stops_reading_is_disconnected(
        pki: Pki, aio_log: pytest.LogCaptureFixture, transport: str) -> None:
    """Its association ends (logged) and no task or slot of it is left: over TLS
    the transport cut such a peer already; a plain one waited for it forever. The
    DIMSE deadline ends it (the peer reads nothing of our answers); the idle and
    PDU ones wait while our reading is paused (test_timers: we are behind then,
    here because the peer does not read)."""
    client_tls = None
    if transport == "tls":
        client_tls = ssl.create_default_context(cafile=pki.ca_file)
        client_tls.load_cert_chain(pki.client_cert, pki.client_key)

    async def main() -> None:
        async with running_server(providers=[VerificationSCP()],
                                  timeouts=Timeouts(idle=0.5, pdu=0.5, dimse=0.5),
                                  tls=pki.server_tls() if client_tls else None) as server:
            writer = await flood_without_reading(server.port, client_tls)
            try:
                await wait_until(lambda: server.active_associations == 0 and not server._tasks,
                                 "the server to end the association", timeout=20.0)
            finally:
                writer.transport.abort()

    run(main())
    [line] = association_lines(aio_log)
    assert line.startswith("association DEAF@127.0.0.1:")
    assert ": aborted (" in line


def test_a_peer_that_stays_after_its_release_was_answered(
        aio_log: pytest.LogCaptureFixture) -> None:
    """PS3.8 has the requestor close once it has the A-RELEASE-RP; when it does
    not, ARTIM closes the connection (AA-2), and the association was released
    all the same: it is logged so, not as aborted."""

    async def main() -> bytes:
        async with running_server(providers=[VerificationSCP()],
                                  timeouts=Timeouts(artim=0.5)) as server:
            reader, writer = await raw_associate(server.port)
            try:
                writer.write(ReleaseRQ().encode())
                answer = await read_pdu(reader)
                await wait_until(lambda: server.active_associations == 0 and not server._tasks,
                                 "the server to close the connection", timeout=20.0)
                return answer
            finally:
                writer.close()

    assert run(main()) == ReleaseRP().encode()
    assert log_lines(aio_log, contains="ARTIM expired in Sta13")
    [line] = association_lines(aio_log)
    assert line.startswith("association DEAF@127.0.0.1:")
    assert re.search(r"-> DICOMNET-SCP: released, 0 message\(s\), \d+\.\d\d s$", line), line


@contextlib.asynccontextmanager
async def _deaf_peer() -> AsyncIterator[int]:
    """A peer on loopback (its port) that accepts the association, then reads
    nothing, with a receive buffer of 4 KiB: a sender's writes soon block."""
    accepted: list[asyncio.StreamWriter] = []

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        accepted.append(writer)
        writer.write(negotiate(decode_pdu(await read_pdu(reader)),  # type: ignore[arg-type]
                               AcceptorPolicy(contexts={SECONDARY_CAPTURE: None})).encode())

    server = await asyncio.start_server(deaf, LOOPBACK, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in accepted:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


def test_a_client_whose_peer_stops_reading_ends_in_its_abort() -> None:
    """The client's side: a C-STORE of 8 MiB to a peer that accepted the
    association and then reads nothing. Its idle deadline aborts the association
    and the transport is cut under the blocked write: the store fails with that
    abort, not with the Upper Layer refusing the next PDU in Sta1."""
    dataset = make_image(1, rows=4096, columns=2048)

    async def main() -> str:
        async with _deaf_peer() as port, associate(
                LOOPBACK, port, contexts=[ContextRequest(SECONDARY_CAPTURE,
                                                         (ExplicitVRLittleEndian,))],
                timeouts=Timeouts(idle=0.5)) as assoc:
            with pytest.raises(DicomNetError) as caught:
                await assoc.store(dataset)
        return f"{type(caught.value).__name__}: {caught.value}"

    assert run(main()) == ("AssociationAborted: association aborted by us (A-ABORT sent: "
                           "service-user) - "
                           "nothing received or sent for 0.5s (idle timeout)")


def test_store_timeout_bounds_a_send_the_peer_stopped_reading(tmp_path: Path) -> None:
    """``dicomnet store --timeout 1`` to a peer that accepted the association and
    then reads nothing: the send blocked until the idle deadline's default (300
    s); --timeout (the DIMSE timeout) bounds it too (exit 3, the reason in the
    error line)."""
    source = write_part10(tmp_path / "big.dcm", make_image(1, rows=4096, columns=2048),
                          ExplicitVRLittleEndian)

    async def main() -> tuple[int | None, str]:
        async with _deaf_peer() as port:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dicomnet.cli.main", "store", "--timeout", "1",
                LOOPBACK, str(port), str(source),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            return proc.returncode, err.decode()

    code, err = run(main(), timeout=90)
    assert code == 3, err
    assert "the peer read nothing of what was sent for 1.0s" in err, err
