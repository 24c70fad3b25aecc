"""A TLS 1.2 peer that asks to renegotiate once the link is up (RFC 5246 7.4.1.1,
7.4.1.2): we refuse (OP_NO_RENEGOTIATION, RFC 9325 3.5), OpenSSL peers then end the
link with a handshake_failure alert, and both sides say so: before, that alert was
read as at a handshake, 'peer offers no cipher suite allowed by our TLS profile'.

The peers are ``openssl s_server`` ('r': HelloRequest) and ``openssl s_client``
('R': a new ClientHello), driven through their standard input once their output
shows the handshake done; no clock decides anything.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.errors import TLSError
from dicomnet.security.errors_map import translate_ssl_error
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq

from .helpers import (
    LOOPBACK,
    Pki,
    association_lines,
    free_port,
    peer_env,
    run,
    running_server,
    wait_until,
)

RENEGOTIATION = ("ended the link with a handshake_failure alert after the handshake: it "
                 "most likely asked to renegotiate (TLS 1.2 and earlier), which we refuse "
                 "(RFC 9325 3.5)")


@contextmanager
def openssl(*args: str | Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``openssl ARGS`` with a pipe on its standard input; always killed."""
    with log.open("wb") as out:
        proc = subprocess.Popen(["openssl", *map(str, args)], stdin=subprocess.PIPE,
                                stdout=out, stderr=subprocess.STDOUT, env=peer_env())
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdin is not None
        proc.stdin.close()


def _printed(log: Path, text: str) -> bool:
    return text.encode() in log.read_bytes()


def test_a_server_asking_to_renegotiate(pki: Pki, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "s_server.log"
    with openssl("s_server", "-accept", str(port), "-tls1_2", "-cert", pki.server_cert,
                 "-key", pki.server_key, log=log) as server:

        async def main() -> TLSError:
            # Not wait_port: s_server would take its connection for the client.
            await wait_until(lambda: _printed(log, "ACCEPT"), "s_server listening")

            async def ask() -> None:
                await wait_until(lambda: _printed(log, "CIPHER is"), "the handshake done")
                assert server.stdin is not None
                server.stdin.write(b"r\n")  # HelloRequest
                server.stdin.flush()

            asker = asyncio.create_task(ask())
            with pytest.raises(TLSError) as caught:
                async with associate(LOOPBACK, port, tls=pki.client_tls()):
                    pass
            await asker
            return caught.value

        error = run(main())
    assert error.reason == f"the server {RENEGOTIATION}, or refused our certificate"
    assert str(error).startswith(f"TLS link with {LOOPBACK}:{port} failed: the server ended")


def test_a_client_asking_to_renegotiate(pki: Pki, tmp_path: Path,
                                        aio_log: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "s_client.log"
    rq = build_associate_rq(calling_ae_title="RENEGOTIATOR", called_ae_title="ANY-SCP",
                            contexts=[ContextRequest("1.2.840.10008.1.1",
                                                     ("1.2.840.10008.1.2",))]).encode()

    async def main() -> None:
        async with running_server(tls=pki.server_tls()) as server:
            with openssl("s_client", "-connect", f"{LOOPBACK}:{server.port}", "-tls1_2",
                         "-cert", pki.client_cert, "-key", pki.client_key,
                         "-CAfile", pki.ca_file, log=log) as client:
                assert client.stdin is not None
                await wait_until(lambda: _printed(log, "Verify return code"), "the handshake")
                client.stdin.write(rq)
                client.stdin.flush()
                await wait_until(lambda: server.active_associations == 1, "the association")
                client.stdin.write(b"R\n")  # a new ClientHello
                client.stdin.flush()
                await wait_until(lambda: bool(association_lines(aio_log)), "its end")

    run(main())
    [line] = association_lines(aio_log)
    assert line.startswith("association RENEGOTIATOR@127.0.0.1:")
    assert f"aborted (the client {RENEGOTIATION})" in line, line


def test_the_same_alert_within_a_handshake_keeps_its_reason() -> None:
    """Within a handshake, a handshake_failure alert still means what it meant."""
    alert = ssl.SSLError(1, "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake "
                            "failure")
    alert.reason = "SSLV3_ALERT_HANDSHAKE_FAILURE"
    assert translate_ssl_error(alert, side="server", peer="p").reason == (
        "peer offers no cipher suite allowed by our TLS profile")
    assert translate_ssl_error(alert, side="server", peer="p", established=True).reason == (
        f"the client {RENEGOTIATION}")
