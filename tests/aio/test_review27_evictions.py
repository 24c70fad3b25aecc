"""A flood of silent connections, once over: its summary line is logged when
the waiting connections fall back under the limit, not at the next connection
accepted (which may come hours later, or never: the operator then never learns
how many were closed). Found by review 27 (hostile peers against serve)."""

from __future__ import annotations

import asyncio

import pytest

from dicomnet.config import Limits
from tests.aio.helpers import LOOPBACK, log_lines, run, running_server, wait_until


def test_a_flood_is_summed_up_when_it_ends_without_another_connection(
    aio_log: pytest.LogCaptureFixture,
) -> None:
    """20 silent connections at a limit of 8: 12 closed; the peer then closes the
    8 left; the summary line comes with no further connection."""

    async def main() -> None:
        async with running_server(limits=Limits(max_pending_connections=8)) as server:
            peers = [await asyncio.open_connection(LOOPBACK, server.port) for _ in range(20)]
            await wait_until(lambda: server.pending_connections == 8, "eight waiting")
            await wait_until(lambda: len(log_lines(
                aio_log, contains="connections are waiting to associate")) == 1, "the warning")
            for _, writer in peers:
                writer.close()
            await wait_until(lambda: server.pending_connections == 0, "none waiting")
            await wait_until(lambda: bool(log_lines(
                aio_log, contains="no longer closing waiting connections")), "the summary")

    run(main(), timeout=30.0)
    assert log_lines(aio_log, contains="no longer closing waiting connections") == [
        "no longer closing waiting connections; closed 12 (from 127.0.0.1: 12)"]
