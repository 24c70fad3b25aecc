"""Fixtures for CLI tests: dev PKIs made at run time and library servers in threads."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomnet.security.certificates import DevPKI, make_dev_pki

from .helpers import ServerThread, read_line


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


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Any]:
    """Start ``dicomnet serve --port 0 --json --output <tmp>/store ARGS...`` (a
    function of ARGS): its process and its first JSON line; killed at the end."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str | Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
             "--output", str(tmp_path / "store"), *map(str, args)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )
        procs.append(proc)
        line = read_line(proc.stdout, 30)  # type: ignore[arg-type]
        assert line, proc.stderr.read()  # type: ignore[union-attr]
        return proc, json.loads(line)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
