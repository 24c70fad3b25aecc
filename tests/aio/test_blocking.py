"""The blocking facade drives the asyncio engine for scripts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomnet import blocking
from dicomnet.aio.server import Server, serve
from dicomnet.errors import LocalProtocolError
from dicomnet.security.certificates import make_dev_pki
from dicomnet.security.config import dev_pki_configs


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, object]]:
    pki = make_dev_pki(tmp_path / "pki")
    server_cfg, client_cfg = dev_pki_configs(pki)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: list[Server] = []

    async def run() -> None:
        server = await serve(port=0, tls=server_cfg)
        holder.append(server)
        started.set()
        await server.wait_closed()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),))
    thread.start()
    assert started.wait(10)
    yield holder[0].port, client_cfg
    loop.call_soon_threadsafe(holder[0].close)
    thread.join(10)
    loop.close()


def test_blocking_echo_over_tls(tls_server: tuple[int, object]) -> None:
    port, client_cfg = tls_server
    with blocking.associate("localhost", port, tls=client_cfg) as assoc:
        status = assoc.echo()
        assert status.is_success and int(status) == 0
        assert assoc.security is not None and assoc.security.protocol == "TLSv1.3"
        assert int(assoc.echo()) == 0  # the association stays usable between calls


def test_blocking_echo_helper(tls_server: tuple[int, object]) -> None:
    port, client_cfg = tls_server
    assert blocking.echo("localhost", port, tls=client_cfg).is_success


def test_blocking_refuses_a_running_loop() -> None:
    async def inside() -> None:
        with pytest.raises(LocalProtocolError):
            blocking.associate("127.0.0.1", 1)

    asyncio.run(inside())
