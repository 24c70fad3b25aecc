"""The TLS handshake never blocks other connections (FEATURES.md section 3).

100 connections to a TLS server stall before their handshake (50 send nothing, 50 send
the first bytes of a TLS record header and stop, so that the server has started its
handshake and waits for the rest), with a handshake timeout far longer than the test.
While all of them are open, a real client completes a C-ECHO. Then they are closed, and
the server must clean each one up, leaving no task behind once it is closed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket

import pytest

from dicomnet.aio.client import associate
from dicomnet.config import Timeouts
from dicomnet.security.certificates import CertificateInfo
from dicomnet.security.info import SecurityInfo
from tests.aio.helpers import (
    LOOPBACK,
    HookRecorder,
    Pki,
    association_lines,
    log_lines,
    other_tasks,
    run,
    running_server,
    wait_until,
)

SILENT = 50
PARTIAL = 50
# Prefixes of a TLS 1.0-1.3 handshake record header (type 22, version 3.1, length...).
PARTIAL_HEADERS = (b"\x16", b"\x16\x03", b"\x16\x03\x01", b"\x16\x03\x01\x02")


def test_stalled_handshakes_do_not_block_a_real_client(
    pki: Pki, aio_log: pytest.LogCaptureFixture
) -> None:
    hook = HookRecorder()

    async def main() -> tuple[int, SecurityInfo | None, int, int]:
        loop = asyncio.get_running_loop()
        timeouts = Timeouts(tls_handshake=30.0)
        async with running_server(tls=pki.server_tls(), timeouts=timeouts,
                                  on_secure_link_ready=hook) as server:
            baseline = len(asyncio.all_tasks())  # this task and the accept loop
            stalled: list[socket.socket] = []
            try:
                for i in range(SILENT + PARTIAL):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    stalled.append(sock)
                    sock.setblocking(False)
                    await loop.sock_connect(sock, (LOOPBACK, server.port))
                    if i >= SILENT:
                        await loop.sock_sendall(sock, PARTIAL_HEADERS[i % len(PARTIAL_HEADERS)])
                # Each accepted connection runs in its own task: wait until all 100 are.
                await wait_until(lambda: len(asyncio.all_tasks()) >= baseline + 100,
                                 "the server to accept the 100 stalled connections")
                async with associate(LOOPBACK, server.port, tls=pki.client_tls(),
                                     timeouts=timeouts) as assoc:
                    status = int(await assoc.echo())
                    security = assoc.security
                # The real client is done, and every stalled connection is still pending.
                still_pending = len(asyncio.all_tasks()) - baseline
                assert len(hook.events) == 1, "only the real client finished a handshake"
            finally:
                for sock in stalled:
                    sock.close()
            # Closed by the peer, each stalled connection must be cleaned up, not leaked.
            await wait_until(lambda: len(asyncio.all_tasks()) <= baseline,
                             "the server to clean up the 100 closed connections")
            active = server.active_associations
        assert other_tasks() == set(), "tasks left running after the server closed"
        return status, security, still_pending, active

    status, security, still_pending, active = run(main(), timeout=45)
    assert status == 0
    assert security is not None
    assert security.protocol == "TLSv1.3"
    assert still_pending >= SILENT + PARTIAL
    assert active == 0
    # One association, the real one; each stalled connection reported once when it closed.
    lines = association_lines(aio_log)
    assert len(lines) == 1
    assert re.search(r": released, 1 message\(s\) \(1 success\), \d+\.\d\d s, TLSv1\.3",
                     lines[0]), lines[0]
    dropped = log_lines(aio_log, level=logging.WARNING, contains="connection refused") + \
        log_lines(aio_log, level=logging.INFO, contains="connection failed before DICOM") + \
        log_lines(aio_log, level=logging.INFO, contains="closed the connection before sending")
    assert len(dropped) == SILENT + PARTIAL
    assert len(hook.events) == 1 + len(
        log_lines(aio_log, level=logging.WARNING, contains="connection refused"))
    assert all(e.error is not None and e.info is None for e in hook.events[1:])
    assert not [m for m in dropped if "timed out" in m], "isolation, not timeouts"


def test_the_association_line_says_whose_certificate_the_client_showed(
        pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    """With peer certificates optional, the audit trail must say which clients showed
    one, and whose: its name and SHA-256 fingerprint, as the index records it."""
    fingerprint = CertificateInfo.from_pem_file(pki.client_cert).sha256_fingerprint

    async def main() -> None:
        async with running_server(tls=pki.server_tls(peer_certificate="optional")) as server:
            for tls in (pki.client_tls(), pki.client_tls(certfile=None, keyfile=None)):
                async with associate(LOOPBACK, server.port, tls=tls) as assoc:
                    await assoc.echo()
            await wait_until(lambda: len(association_lines(aio_log)) == 2,
                             "the server to log both associations")

    run(main(), timeout=30)
    with_cert, without = association_lines(aio_log)
    assert with_cert.endswith(
        f", client certificate dicomnet test client (SHA-256 {fingerprint})")
    assert without.endswith(", no client certificate")
