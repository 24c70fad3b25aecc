"""A TLS 1.3 server that closes right after the handshake, before any PDU.

RFC 8446 4.4.2: the client's certificate follows the server's Finished, so our
handshake is over before the server has checked it, and a refusal reaches us on
our first read or write. Real servers (DCMTK's storescp and Orthanc, pynetdicom,
dicomnet) say why in an alert (tests/interop); a close without one says nothing:
the server may refuse our certificate, or be busy or shutting down. So it is
explained in those words and is worth trying again (``TLSError.link_failed``),
unlike an alert naming our certificate.

The server here is asyncio's own TLS server, which requests no client
certificate: it completes the handshake and closes, with close_notify (a clean
shutdown) or without (an abort, a reset once our A-ASSOCIATE-RQ is unread).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.errors import TLSError
from dicomnet.security.config import TLSConfig
from dicomnet.services.store_scu import store_paths
from tests.aio.helpers import LOOPBACK, Pki, run
from tests.storage.helpers import make_dataset, write_part10_file

NEUTRAL = ("the server closed the connection right after the TLS handshake, before "
           "associating: it may refuse our certificate, or be busy or shutting down")
#: The same without a certificate of ours, with what to do if one is required.
NEUTRAL_WITHOUT = ("the server closed the connection right after the TLS handshake, before "
                   "associating: it may require a client certificate (we sent none: set "
                   "certfile/keyfile), or be busy or shutting down")


@asynccontextmanager
async def closing_tls_server(pki: Pki, how: str) -> AsyncIterator[tuple[int, list[int]]]:
    """A TLS 1.3 server that ends each connection once its handshake is done; yields
    its port and the list of connections it took (one item each)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(pki.server_cert, pki.server_key)
    taken: list[int] = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        taken.append(1)
        if how == "abort":
            writer.transport.abort()
        else:
            writer.close()

    server = await asyncio.start_server(on_connection, LOOPBACK, 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1], taken
    finally:
        server.close()
        await server.wait_closed()


async def refused(port: int, tls: TLSConfig) -> TLSError:
    with pytest.raises(TLSError) as caught:
        async with associate(LOOPBACK, port, tls=tls) as assoc:
            await assoc.echo()
    return caught.value


@pytest.mark.parametrize("how", ["close", "abort"])
@pytest.mark.parametrize("with_certificate", [True, False])
def test_a_close_without_alert_is_not_blamed_on_our_certificate(
        pki: Pki, how: str, with_certificate: bool) -> None:
    """Before, "it most likely refused our certificate" (or "requires one") and not
    link_failed: a server shutting down or at its limit was never tried again."""
    tls = (pki.client_tls() if with_certificate
           else pki.client_tls(certfile=None, keyfile=None))

    async def main() -> tuple[TLSError, int]:
        async with closing_tls_server(pki, how) as (port, _):
            return await refused(port, tls), port

    error, port = run(main())
    reason = NEUTRAL if with_certificate else NEUTRAL_WITHOUT
    assert error.reason == reason
    assert error.link_failed
    assert str(error) == f"TLS handshake with {LOOPBACK}:{port} failed: {reason}"


def test_store_paths_tries_again_after_a_close_without_alert(pki: Pki, tmp_path: Path) -> None:
    """retries=2: three connections, and the object's result says why it was not sent."""
    source = write_part10_file(tmp_path / "sc.dcm", make_dataset())

    async def main() -> tuple[TLSError, int]:
        async with closing_tls_server(pki, "abort") as (port, taken):
            with pytest.raises(TLSError) as caught:
                await store_paths(LOOPBACK, port, [source], tls=pki.client_tls(), retries=2,
                                  retry_delay=0)
            return caught.value, len(taken)

    error, connections = run(main())
    assert connections == 3
    assert error.reason == NEUTRAL
    assert error.results is not None
    [result] = error.results
    assert result.status is None
    assert result.attempts == 3
    assert result.error is not None and NEUTRAL in result.error
