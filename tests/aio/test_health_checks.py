"""Connections that close before they associate, as health checks and probes do:
one INFO line each, never a WARNING (a check every few seconds must not look
like trouble); one whose TLS link fails before it asks is a WARNING, with why."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl

import pytest

from dicomnet.aio.server_events import ConnectionEvent, ConnectionRefused
from dicomnet.security.errors_map import translate_ssl_error

from .helpers import LOOPBACK, Pki, log_lines, run, running_server, wait_until


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


def _handshake_then_send(port: int, pki: Pki, after: bytes) -> None:
    """A TLS client that completes its handshake, then writes ``after`` raw on the
    TCP connection (not through TLS) before any PDU, and reads to the end."""
    context = ssl.create_default_context(cafile=pki.ca_file)
    context.load_cert_chain(pki.client_cert, pki.client_key)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with socket.create_connection((LOOPBACK, port), timeout=10) as raw:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outgoing.read())
                data = raw.recv(65536)
                assert data, "the server closed during the handshake"
                incoming.write(data)
        raw.sendall(outgoing.read() + after)
        with contextlib.suppress(OSError):
            while raw.recv(65536):  # its session tickets, then its close
                pass


@pytest.mark.parametrize(("after", "library_reason", "words"), [
    # An application-data record whose AEAD tag fails (RFC 8446 5.2: bad_record_mac).
    (b"\x17\x03\x03\x00\x20" + b"\x01" * 32, "DECRYPTION_FAILED_OR_BAD_RECORD_MAC",
     "a TLS record from the client failed its integrity check"),
    # A P-ASSOCIATE-RQ header in the clear: not a TLS record.
    (b"\x01\x00\x00\x00\x00\x10" + b"\x00" * 16, "WRONG_VERSION_NUMBER",
     "the client sent bytes that are not TLS records after the handshake"),
], ids=["bad-record", "plain-pdu"])
def test_a_tls_error_before_the_request_is_a_warning_with_its_reason(
        pki: Pki, aio_log: pytest.LogCaptureFixture, after: bytes, library_reason: str,
        words: str) -> None:
    """Not a health check: the link failed. The log line and the connection event
    carry the reason, in the words of the handshake failures (errors_map)."""
    error = ssl.SSLError(1, f"[SSL: {library_reason}] (_ssl.c:0)")
    error.library, error.reason = "SSL", library_reason
    reason = translate_ssl_error(error, side="server", peer="-", established=True).reason
    assert reason.startswith(words), reason  # in words, not OpenSSL's code alone
    events: list[ConnectionEvent] = []

    async def main() -> None:
        async with running_server(tls=pki.server_tls(), on_connection_event=events.append
                                  ) as server:
            await asyncio.to_thread(_handshake_then_send, server.port, pki, after)
            await wait_until(lambda: bool(events), "the connection's event")

    run(main())
    lines = log_lines(aio_log, level=logging.WARNING, contains="before it associated")
    assert len(lines) == 1, aio_log.text
    assert f"aborted before it associated: {reason}, " in lines[0]
    assert not log_lines(aio_log, contains="closed before it associated")
    assert len(events) == 1 and isinstance(events[0], ConnectionRefused)
    assert (events[0].stage, events[0].reason) == ("tls", reason)
