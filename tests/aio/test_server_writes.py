"""When the server writes its responses: at once for a lone operation, at the end
of the loop's round when several answer together (one write for them all)."""

from __future__ import annotations

import asyncio

import pytest

from dicomnet.aio.client import associate
from dicomnet.aio.server import ServerAssociation
from dicomnet.dimse.status import Status
from tests.aio.helpers import LOOPBACK, run, running_server


def test_a_lone_response_is_written_at_once_and_concurrent_ones_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deferred: list[int] = []
    original = ServerAssociation._queue_out_soon

    def spy(self: ServerAssociation) -> None:
        deferred.append(len(self.running))
        original(self)

    monkeypatch.setattr(ServerAssociation, "_queue_out_soon", spy)

    async def main() -> tuple[list[Status], list[int], list[Status]]:
        async with running_server() as server:
            async with associate(LOOPBACK, server.port) as sync:  # no window proposed
                one_by_one = [await sync.echo() for _ in range(3)]
            lone = list(deferred)
            async with associate(LOOPBACK, server.port, max_async_operations=4) as assoc:
                assert assoc.async_window == 4
                together = list(await asyncio.gather(*(assoc.echo() for _ in range(4))))
            return one_by_one, lone, together

    one_by_one, lone, together = run(main())
    assert one_by_one == [Status(0)] * 3 and together == [Status(0)] * 4
    assert lone == []  # a synchronous peer's responses never wait for the round's end
    assert deferred and all(running > 1 for running in deferred)
