"""One client SSLContext per TLSConfig object, shared by its associations.

The certificate, key and CA files are read, and the key's password asked, when the
first association needs the context; later ones reuse it until a file changes.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from dicomnet.aio.client import associate
from dicomnet.errors import ConfigurationError, TLSError
from dicomnet.security.config import TLSConfig
from dicomnet.security.info import SecurityInfo
from tests.aio.helpers import LOOPBACK, HookRecorder, Pki, run, running_server

PASSWORD = "open sesame"


async def echo_through(port: int, tls: TLSConfig) -> SecurityInfo:
    """One association (C-ECHO, A-RELEASE); what the client's TLS negotiated."""
    async with associate(LOOPBACK, port, tls=tls) as assoc:
        assert int(await assoc.echo()) == 0
        assert assoc.security is not None
        return assoc.security


def _encrypted_client(pki: Pki, name: str) -> tuple[Path, Path]:
    return pki.issue(name, server=False, password=PASSWORD)


def test_the_password_is_asked_once_for_concurrent_first_associations(pki: Pki) -> None:
    """Associations started together before any context exists wait for one build."""
    cert, key = _encrypted_client(pki, "concurrent-client")
    asked: list[int] = []

    async def password() -> str:
        asked.append(1)
        await asyncio.sleep(0)  # others reach the build meanwhile
        return PASSWORD

    tls = pki.client_tls(certfile=cert, keyfile=key, on_private_key_password=password)

    async def main() -> list[SecurityInfo]:
        async with running_server(tls=pki.server_tls()) as server:
            return list(await asyncio.gather(
                *(echo_through(server.port, tls) for _ in range(4))))

    infos = run(main())
    assert len(asked) == 1
    assert all(i.local_certificate and i.local_certificate.common_name == "concurrent-client"
               for i in infos)


def test_a_wrong_password_fails_every_waiting_association_with_one_prompt(pki: Pki) -> None:
    cert, key = _encrypted_client(pki, "wrong-password-client")
    asked: list[int] = []

    async def password() -> str:
        asked.append(1)
        await asyncio.sleep(0)
        return "not it"

    tls = pki.client_tls(certfile=cert, keyfile=key, on_private_key_password=password)

    async def main() -> list[Any]:
        async with running_server(tls=pki.server_tls()) as server:
            return list(await asyncio.gather(
                *(echo_through(server.port, tls) for _ in range(3)), return_exceptions=True))

    outcomes = run(main())
    assert len(asked) == 1
    assert [str(o) for o in outcomes] == [f"wrong password for private key {key}"] * 3


def test_a_rotated_client_certificate_is_picked_up(pki: Pki, tmp_path: Path) -> None:
    """Replacing the certificate and key files (as a renewal does) makes the next
    association build a new context: the server sees the new certificate, in a full
    handshake (the old session belonged to the old certificate)."""
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    for source, target in zip(pki.issue("client before"), (cert, key), strict=True):
        os.replace(source, target)
    asked: list[int] = []

    def password() -> str:
        asked.append(1)
        return PASSWORD

    hook = HookRecorder()
    tls = pki.client_tls(certfile=cert, keyfile=key, on_private_key_password=password)

    async def main() -> None:
        async with running_server(tls=pki.server_tls(), on_secure_link_ready=hook) as server:
            await echo_through(server.port, tls)
            await echo_through(server.port, tls)
            renewed = pki.issue("client after, renewed", server=False, password=PASSWORD)
            for source, target in zip(renewed, (cert, key), strict=True):
                os.replace(source, target)
            await echo_through(server.port, tls)
            await echo_through(server.port, tls)

    run(main())
    seen = [(e.info.peer_certificate.common_name, e.info.session_resumed)
            for e in hook.events if e.info is not None and e.info.peer_certificate is not None]
    assert seen == [("client before", False), ("client before", True),
                    ("client after, renewed", False), ("client after, renewed", True)]
    assert len(asked) == 1  # the first key was not encrypted; the renewed one asked once


def test_a_changed_ca_file_is_picked_up(pki: Pki, tmp_path: Path) -> None:
    """Trust comes from the files too: a CA file that stops trusting the server's CA
    makes the next association fail verification (no session resumes around it)."""
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(pki.ca_file.read_bytes())
    tls = pki.client_tls(cafile=cafile)
    # Another trust anchor (a leaf another CA issued is refused as a cafile).
    other_ca = pki.self_signed("unrelated")[0]

    async def main() -> TLSError:
        async with running_server(tls=pki.server_tls()) as server:
            await echo_through(server.port, tls)
            await echo_through(server.port, tls)
            cafile.write_bytes(other_ca.read_bytes() * 2)  # another size, whatever the clock
            with pytest.raises(TLSError) as caught:
                await echo_through(server.port, tls)
            return caught.value

    error = run(main())
    assert error.reason.startswith("the certificate of the server is signed by an unknown CA")


def test_our_certificate_file_gone_after_the_build_is_no_peer_refusal(
        pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own file unreadable when the finished handshake is described: said as
    such (ConfigurationError), not as "the peer most likely refused our certificate"."""
    tls = pki.client_tls()

    def unreadable(self: TLSConfig) -> None:
        raise ConfigurationError(f"cannot read certificate {self.certfile}: gone")

    async def main() -> None:
        async with running_server(tls=pki.server_tls()) as server:
            await tls.shared_client_context()
            monkeypatch.setattr(TLSConfig, "local_certificate_info", unreadable)
            await echo_through(server.port, tls)

    with pytest.raises(ConfigurationError, match=r"cannot read certificate .*: gone"):
        run(main())
