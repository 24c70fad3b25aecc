"""Connections that close before they associate, as health checks and probes do:
one INFO line each, never a WARNING (a check every few seconds must not look
like trouble)."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest

from .helpers import LOOPBACK, Pki, log_lines, run, running_server


def test_a_tls_connection_closed_after_the_handshake_is_logged_at_info(
        pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    context = ssl.create_default_context(cafile=pki.ca_file)
    context.load_cert_chain(pki.client_cert, pki.client_key)

    async def main() -> int:
        async with running_server(tls=pki.server_tls()) as server:
            _, writer = await asyncio.open_connection(LOOPBACK, server.port, ssl=context,
                                                      server_hostname="localhost")
            port = int(writer.get_extra_info("sockname")[1])
            writer.close()
            await writer.wait_closed()
            for _ in range(500):  # the server's line, once it saw the close
                if log_lines(aio_log, contains="closed before it associated"):
                    break
                await asyncio.sleep(0.01)
            return port

    port = run(main())
    lines = log_lines(aio_log, level=logging.INFO, contains="closed before it associated")
    assert len(lines) == 1, aio_log.text
    assert lines[0].startswith(f"connection from 127.0.0.1:{port} closed before it associated, ")
    assert ", TLSv1." in lines[0] and "client certificate dicomnet test client" in lines[0]
    assert not [r for r in aio_log.records if r.levelno >= logging.WARNING], aio_log.text


def test_a_tcp_connect_and_close_is_one_info_line(aio_log: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with running_server() as server:
            _, writer = await asyncio.open_connection(LOOPBACK, server.port)
            writer.close()
            await writer.wait_closed()
            for _ in range(500):
                if log_lines(aio_log, contains="before sending anything"):
                    break
                await asyncio.sleep(0.01)

    run(main())
    assert len(log_lines(aio_log, level=logging.INFO, contains="before sending anything")) == 1
    assert not [r for r in aio_log.records if r.levelno >= logging.WARNING], aio_log.text
