"""A plain (non-TLS) server's connections that fail early, as its log and its
observer (``serve(on_connection_event=...)``) tell them: the same words in
both, and no TLS blamed where there is none."""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import Any

import pytest

from dicomnet.aio.server_events import ConnectionEvent
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from tests.aio.helpers import LOOPBACK, log_lines, read_until_eof, run, running_server

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
