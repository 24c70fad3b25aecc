"""A plain (non-TLS) server's connections that fail early, as its log and its
observer (``serve(on_connection_event=...)``) tell them: the same words in
both, and no TLS blamed where there is none."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from typing import Any

import pytest

from dicomnet.aio.server import AssociationInfo, Server
from dicomnet.aio.server_events import AssociationAccepted, AssociationEnded, ConnectionEvent
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from tests.aio.helpers import (
    LOOPBACK,
    association_lines,
    log_lines,
    read_until_eof,
    run,
    running_server,
    wait_reset,
    wait_until,
)

RQ = build_associate_rq(
    calling_ae_title="RAW", called_ae_title="DICOMNET-SCP",
    contexts=[ContextRequest("1.2.840.10008.1.1", ("1.2.840.10008.1.2",))],
    max_pdu_length=16384).encode()


def test_a_plain_connection_failing_before_its_transport_is_not_a_tls_refusal(
        aio_log: pytest.LogCaptureFixture) -> None:
    """Wrapping an accepted plain socket can fail with an OSError (on macOS,
    asyncio's setsockopt(TCP_NODELAY) on a connection the peer reset meanwhile
    raises EINVAL): that is said as a connection failed before DICOM, not as a
    failed TLS handshake ("connection refused: ...", stage "tls")."""
    events: list[ConnectionEvent] = []

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EINVAL, "Invalid argument")

    async def main() -> None:
        async with running_server(on_connection_event=events.append) as server:
            loop = asyncio.get_running_loop()
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(loop, "connect_accepted_socket", failing)
                reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
                writer.write(RQ)
                try:
                    assert await read_until_eof(reader, 10) == b""
                finally:
                    writer.close()

    run(main())
    assert events == []
    assert log_lines(aio_log, level=logging.WARNING) == []
    failed = log_lines(aio_log, contains="failed before DICOM")
    assert len(failed) == 1 and failed[0].endswith(": invalid argument")


def test_a_request_whose_connection_was_reset_before_its_answer_ends_alike_in_log_and_event(
        aio_log: pytest.LogCaptureFixture) -> None:
    """The peer sends its A-ASSOCIATE-RQ and resets the connection before the
    server answers: the request is read (it was in the receive buffer) and
    accepted, and the A-ASSOCIATE-AC's write fails. PS3.8 AA-4 (Evt17 in Sta6):
    an A-P-ABORT; the log line and the event both say so, with the same reason
    (the log said 'closed', the event 'aborted', 'the connection closed')."""
    events: list[ConnectionEvent] = []

    async def main() -> None:
        server_holder: list[Server] = []

        def hold(info: AssociationInfo) -> None:
            # Synchronous: the server's loop reads nothing until the reset is in.
            (_, sock), = server_holder[0]._pending.values()
            wait_reset(sock.fileno())

        async with running_server(on_connection_event=events.append,
                                  on_association_request=hold) as server:
            server_holder.append(server)
            client = socket.create_connection((LOOPBACK, server.port))
            client.sendall(RQ)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            await wait_until(lambda: len(events) == 2, "the association's end")

    run(main())
    accepted, ended = events
    assert isinstance(accepted, AssociationAccepted) and isinstance(ended, AssociationEnded)
    assert (ended.how, ended.reason) == ("aborted", "the peer reset the connection")
    lines = association_lines(aio_log)
    assert len(lines) == 1 and (
        ": aborted (the peer reset the connection), 0 message(s)" in lines[0]), lines
