"""A connection ARTIM ends before its A-ASSOCIATE-RQ is whole (PS3.8 9.1.5, Sta2:
a peer dripping its request, or silent after the TLS handshake) is one WARNING
line, not that line plus an INFO "ARTIM expired in Sta2": a flood of them must
not double the log. Found by review 27 (hostile peers against serve)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from dicomnet.config import Timeouts
from tests.aio.helpers import LOOPBACK, log_lines, read_until_eof, run, running_server


def test_a_request_cut_short_by_artim_is_one_line(aio_log: pytest.LogCaptureFixture) -> None:
    async def main() -> bytes:
        async with running_server(timeouts=Timeouts(artim=0.5)) as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            # The first 6 bytes of an A-ASSOCIATE-RQ (PS3.8 9.3.2): type 01, reserved,
            # a length of 68 bytes, none of which follows.
            writer.write(bytes.fromhex("01 00 00000044"))
            try:
                return await read_until_eof(reader, 5.0)
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

    assert run(main()) == b""  # PS3.8 AA-2 in Sta2: closed, nothing sent
    lines = log_lines(aio_log, contains="ARTIM")
    assert len(lines) == 1, lines
    assert "aborted before it associated: ARTIM timer expired" in lines[0]
