"""A server whose certificate's key is too small for our security level (X509_V_ERR
66, EE_KEY_TOO_SMALL) is named in the client's reason, with its key: Python gives no
peer certificate after a failed handshake, but OpenSSL kept the chain it received
(``get_unverified_chain``, private in Python 3.11, public from 3.13), read on the
failure path only. It said 'the certificate of the server has a key too small for
our security level', leaving which certificate, and which key, to guess.

The server is a bare ``ssl`` one at security level 0 (a TLSConfig refuses to
present such a key), asyncio's own, on the loopback; it asks no client certificate.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.aio.tls_socket import presented_certificate
from dicomnet.errors import TLSError
from tests.aio.helpers import LOOPBACK, Pki, run

LEVEL_2_KEYS = ("OpenSSL's security level 2 asks RSA and DSA keys of 2048 bits at least, EC "
                "keys of 224")


@asynccontextmanager
async def weak_server(cert: Path, key: Path, version: ssl.TLSVersion) -> AsyncIterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.maximum_version = version
    context.load_cert_chain(cert, key)

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(on_connection, LOOPBACK, 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_the_servers_small_key_is_named(pki: Pki, tmp_path: Path,
                                        version: ssl.TLSVersion) -> None:
    cert, key = pki.ca.issue("localhost", sans=("localhost", LOOPBACK), rsa_bits=1024).write(
        tmp_path, "weak")

    async def main() -> tuple[TLSError, int]:
        async with weak_server(cert, key, version) as port:
            with pytest.raises(TLSError) as caught:
                async with associate(LOOPBACK, port, tls=pki.client_tls()) as assoc:
                    await assoc.echo()
            return caught.value, port

    error, port = run(main())
    reason = ("the certificate of the server (O=dicomnet,CN=localhost) has an RSA key of 1024 "
              f"bits, too small for our security level: {LEVEL_2_KEYS}")
    assert error.reason == reason
    assert str(error) == f"TLS handshake with {LOOPBACK}:{port} failed: {reason}"
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert error.__cause__.verify_code == 66


class _NoChain:
    """An SSL socket whose Python offers no unverified chain, or fails giving it."""

    def __init__(self, sslobj: object) -> None:
        self._sslobj = sslobj


class _Raises:
    def get_unverified_chain(self) -> list[bytes]:
        raise ValueError("handshake not done yet")


class _Public:
    """Python 3.13's SSLSocket: the public method, DER certificates."""

    def get_unverified_chain(self) -> list[bytes]:
        return [b"leaf DER", b"CA DER"]


def test_no_chain_is_no_failure() -> None:
    assert presented_certificate(_NoChain(None)) is None  # type: ignore[arg-type]
    assert presented_certificate(_NoChain(_Raises())) is None  # type: ignore[arg-type]
    assert presented_certificate(_Public()) == b"leaf DER"  # type: ignore[arg-type]
