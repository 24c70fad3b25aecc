"""A private key password callback that raises: its exception is the user's code, and
reached the caller as itself (KeyError, RuntimeError) from every context build, a
server's start and a client's first association among them, beside the
ConfigurationError of every other key problem. It is now a ConfigurationError naming
the key and the callback's exception, that exception kept as ``__cause__``; the same
for client and server, sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.aio.server import serve
from dicomnet.errors import ConfigurationError
from dicomnet.security.certificates import CertificateAuthority
from dicomnet.security.config import TLSConfig
from tests.aio.helpers import LOOPBACK, run


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    ca = CertificateAuthority.create("password CA", key_type="ecdsa")
    return ca.issue("localhost", sans=("localhost", LOOPBACK), key_type="ecdsa").write(
        tmp_path_factory.mktemp("keys"), "server", password="s3cret")


def _vault_lookup() -> str:
    raise KeyError("dicom-key")


async def _vault_down() -> str:
    raise RuntimeError("vault unreachable")


def _config(files: tuple[Path, Path], callback: Callable[[], object]) -> TLSConfig:
    return TLSConfig(certfile=files[0], keyfile=files[1], cafile=files[0],
                     peer_certificate="none",
                     on_private_key_password=callback)  # type: ignore[arg-type]


def _message(key: Path, raised: str) -> str:
    return (f"asking the password of private key {key}: the on_private_key_password "
            f"callback raised {raised}")


@pytest.mark.parametrize("side", ["server", "client"])
def test_a_sync_callback_that_raises(encrypted: tuple[Path, Path], side: str) -> None:
    config = _config(encrypted, _vault_lookup)
    build = config.server_context_sync if side == "server" else config.client_context_sync
    with pytest.raises(ConfigurationError) as caught:
        build()
    assert str(caught.value) == _message(encrypted[1], "KeyError: 'dicom-key'")
    assert isinstance(caught.value.__cause__, KeyError)


@pytest.mark.parametrize("callback", [_vault_lookup, _vault_down])
def test_server_start_and_first_association(encrypted: tuple[Path, Path],
                                            callback: Callable[[], object]) -> None:
    config = _config(encrypted, callback)

    async def main() -> tuple[BaseException, BaseException]:
        with pytest.raises(ConfigurationError) as at_start:
            await serve(host=LOOPBACK, port=0, tls=config, ae_title="SCP")
        with pytest.raises(ConfigurationError) as at_connect:
            # Refused before connecting: nothing listens there, nothing is tried.
            async with associate(LOOPBACK, 9, tls=config):
                raise AssertionError("associated")
        return at_start.value, at_connect.value

    at_start, at_connect = run(main())
    expected = ("KeyError: 'dicom-key'" if callback is _vault_lookup
                else "RuntimeError: vault unreachable")
    for error in (at_start, at_connect):
        assert str(error) == _message(encrypted[1], expected)
        assert type(error.__cause__) is (KeyError if callback is _vault_lookup else RuntimeError)


def test_a_cancelled_callback_stays_cancelled(encrypted: tuple[Path, Path]) -> None:
    async def waits() -> str:
        await asyncio.sleep(3600)
        return "never"

    async def main() -> None:
        build = asyncio.ensure_future(_config(encrypted, waits).server_context())
        await asyncio.sleep(0)
        build.cancel()
        with pytest.raises(asyncio.CancelledError):
            await build

    run(main())
