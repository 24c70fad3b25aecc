"""A connection arriving as the server closes: asyncio 3.11 had already queued
its accept callback for the listening socket, which ran on the closed socket and
printed "Exception in callback BaseSelectorEventLoop._sock_accept ...
InvalidStateError" (found by the client-reset review, under dicomnet demo's
SIGTERM test). The reader is removed before the socket is closed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from dicomnet.aio.server import serve
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import LOOPBACK, run


def test_a_connection_arriving_as_the_server_closes_is_no_loop_error() -> None:
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: errors.append(context))
        server = await serve(host=LOOPBACK, port=0, providers=[VerificationSCP()])
        await asyncio.sleep(0)  # the accept task waits on the listening socket
        with socket.create_connection((LOOPBACK, server.port)) as client:
            # Queued now, before the next select finds the connection waiting:
            # the close runs first in that turn, then the accept callback.
            loop.call_soon(server.close)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            await server.wait_closed()
            client.settimeout(5)
            # Dropped with the listening socket, never accepted.
            with contextlib.suppress(ConnectionResetError):
                assert client.recv(1) == b""

    run(main())
    assert errors == []
