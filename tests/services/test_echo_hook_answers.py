"""What an ``on_c_echo`` handler may answer: None (Success), or a status a
C-ECHO-RSP can carry (PS3.7 9.1.5, 9.3.5.2). Anything else is the handler's bug,
answered Processing Failure (0110H) and logged, the association going on, as
``on_c_store``'s answers are (tests/storage/test_store_hook_statuses.py). Its
answer was sent as it came: a status past FFFFH, below 0 or True failed to
encode and the association was aborted as the server's internal error; a
Pending went out as the C-ECHO's only response; a ``(status, comment)`` pair,
a string, became Success; and a CancelledError the handler raised itself was
taken for the operation's own cancellation, the C-ECHO never answered."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dicomnet.aio.client import associate
from dicomnet.aio.server import ServerAssociation
from dicomnet.dimse.status import Status
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import LOOPBACK, run, running_server

PROCESSING_FAILURE = 0x0110


def _echo_twice(hook: object) -> list[int]:
    """Two C-ECHOs on one association to a server with ``hook``: their statuses."""

    async def main() -> list[int]:
        scp = VerificationSCP(on_c_echo=hook)  # type: ignore[arg-type]
        async with running_server(providers=[scp]) as server, \
                associate(LOOPBACK, server.port) as assoc:
            return [int(await assoc.echo()) for _ in range(2)]

    return run(main())


@pytest.mark.parametrize("answer", [
    0x10000, -1, True, (0xA700, "busy"), "0x0000", 1.5, [0],
    0xFF00, 0xFF01, 0xFE00, Status(0xFF00),
], ids=["over-ffff", "negative", "true", "status-and-comment", "text", "float", "list",
        "pending", "pending-warning", "cancel", "pending-status-object"])
def test_an_echo_handler_answering_no_echo_status_costs_a_processing_failure(
        caplog: pytest.LogCaptureFixture, answer: object) -> None:
    def on_c_echo(assoc: ServerAssociation) -> object:
        return answer

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        assert _echo_twice(on_c_echo) == [PROCESSING_FAILURE] * 2
    logged = [r.getMessage() for r in caplog.records if "on_c_echo handler returned" in
              r.getMessage()]
    assert len(logged) == 2


@pytest.mark.parametrize(("answer", "status"), [
    (None, 0), (0, 0), (0xC001, 0xC001), (Status(0x0122), 0x0122), (0xB000, 0xB000),
])
def test_an_echo_handler_answering_a_status_is_answered_so(answer: object, status: int) -> None:
    async def on_c_echo(assoc: ServerAssociation) -> object:
        return answer

    assert _echo_twice(on_c_echo) == [status] * 2


async def _cancels_itself(assoc: ServerAssociation) -> None:
    raise asyncio.CancelledError


def test_an_echo_handler_raising_cancelled_error_is_a_failing_handler(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        assert _echo_twice(_cancels_itself) == [PROCESSING_FAILURE] * 2
    failed = [r for r in caplog.records if "on_c_echo handler failed" in r.getMessage()]
    assert len(failed) == 2
    assert all(r.exc_info is not None and isinstance(r.exc_info[1], asyncio.CancelledError)
               for r in failed)
