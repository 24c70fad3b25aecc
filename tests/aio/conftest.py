"""Fixtures of the asyncio network tests: certificates are made at run time."""

from __future__ import annotations

import logging

import pytest

from tests.aio.helpers import AIO_LOGGER, Pki, PkiFactory


@pytest.fixture(scope="session")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> PkiFactory:
    """``pkis("rsa")`` / ``pkis("ecdsa")``: a CA with server and client certificates."""
    return PkiFactory(tmp_path_factory.mktemp("aio-pki"))


@pytest.fixture
def pki(pkis: PkiFactory) -> Pki:
    """The ECDSA PKI (fast keys), for tests where the key type does not matter."""
    return pkis("ecdsa")


@pytest.fixture
def aio_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog recording dicomnet's network and security loggers from INFO up."""
    caplog.set_level(logging.INFO, logger=AIO_LOGGER)
    caplog.set_level(logging.INFO, logger="dicomnet.security")
    return caplog
