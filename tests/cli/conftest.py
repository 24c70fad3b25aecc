"""Fixtures for CLI tests: dev PKIs made at run time and library servers in threads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dicomnet.security.certificates import DevPKI, make_dev_pki

from .helpers import ServerThread


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    """CA, server (localhost, 127.0.0.1) and client certificates; ECDSA keeps it fast."""
    return make_dev_pki(tmp_path_factory.mktemp("pki"), key_type="ecdsa")


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    """An unrelated PKI: its CA trusts none of ``pki``'s certificates."""
    return make_dev_pki(tmp_path_factory.mktemp("other-pki"), key_type="ecdsa")


@pytest.fixture(scope="session")
def encrypted_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    """A PKI whose keys are encrypted with the password ``s3cret``."""
    return make_dev_pki(tmp_path_factory.mktemp("enc-pki"), key_type="ecdsa", password="s3cret")


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerThread]]:
    """Start servers with ``serve(**kwargs)``; all are stopped at teardown."""
    started: list[ServerThread] = []

    def start(**kwargs: Any) -> ServerThread:
        server = ServerThread(kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
