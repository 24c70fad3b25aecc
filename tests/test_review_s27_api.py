"""Found by using the library as a script author would (session 27 review):
what a script catches when a server cannot start."""

from __future__ import annotations

import socket

import pytest

from dicomnet import serve
from dicomnet.errors import TransportError
from tests.aio.helpers import run


def test_a_server_that_cannot_listen_raises_a_transport_error() -> None:
    # A script that catches the network's failures (TransportError) must catch
    # this one too: it used to be a bare DicomNetError, outside the tree's
    # transport branch.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        async def start() -> None:
            server = await serve(port=port)
            server.close()

        with pytest.raises(TransportError,
                           match=rf"^cannot listen on 127\.0\.0\.1:{port}: Address already in use"):
            run(start(), timeout=30)
