"""Real third-party peers for the interop tests: DCMTK's command-line tools,
pynetdicom and Orthanc.

A peer is never mocked. On a laptop without one, its tests skip; under CI
(``CI=true``) a missing peer fails the tests instead, so that interop can never
silently stop being tested.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import selectors
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO

import pytest

from tests.aio.helpers import AIO_LOGGER, Pki, PkiFactory
from tests.interop.pynetdicom_race import guarded


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _missing(what: str) -> None:
    message = f"{what} is not available"
    if _under_ci():
        pytest.fail(f"{message}: under CI=true every interop peer must be installed")
    pytest.skip(message)


def dcmtk_tool(name: str) -> str:
    """The path of DCMTK's ``name`` command; skip or, under CI, fail if absent."""
    path = shutil.which(name)
    if path is None:
        _missing(f"DCMTK {name}")
    return str(path)


@dataclass(frozen=True)
class Dcmtk:
    """Paths of the DCMTK tools the tests run, and their version line."""

    echoscu: Path
    storescp: Path
    version: str


@pytest.fixture(scope="session")
def dcmtk() -> Dcmtk:
    """DCMTK's echoscu and storescp (3.6.7 from Debian); skip or, under CI, fail if absent."""
    tools = {name: shutil.which(name) for name in ("echoscu", "storescp")}
    absent = [name for name, path in tools.items() if path is None]
    if absent:
        _missing(f"DCMTK ({', '.join(absent)} not on PATH)")
    echoscu, storescp = Path(str(tools["echoscu"])), Path(str(tools["storescp"]))
    out = subprocess.run([echoscu, "--version"], capture_output=True, text=True, timeout=10,
                         check=False).stdout
    version = next((line for line in out.splitlines() if "$dcmtk" in line), out.strip())
    if "+tls" not in subprocess.run([echoscu, "--help"], capture_output=True, text=True,
                                    timeout=10, check=False).stdout:
        _missing(f"DCMTK with OpenSSL support ({version} was built without TLS)")
    return Dcmtk(echoscu, storescp, version)


@pytest.fixture(scope="session")
def pynetdicom() -> Iterator[ModuleType]:
    """The pynetdicom module; skip or, under CI, fail if it is not installed.

    Guarded against its own race that loses a response now and then (a DIMSE
    timeout with many objects on one association; tests/interop/pynetdicom_race.py).
    """
    try:
        module = importlib.import_module("pynetdicom")
    except ImportError:
        _missing("pynetdicom (pip install pynetdicom)")
        raise  # not reached: _missing always leaves the test
    with guarded(module):
        yield module


@pytest.fixture(scope="session")
def orthanc_binary() -> Path:
    """Orthanc's server program (1.10.1 from Debian: DICOM TLS since 1.9.0); skip
    or, under CI, fail if absent."""
    path = shutil.which("Orthanc")
    if path is None:
        _missing("Orthanc (apt-get install orthanc)")
    return Path(str(path))


@pytest.fixture(scope="session")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> PkiFactory:
    """``pkis("rsa")`` / ``pkis("ecdsa")``: a CA with server and client certificates."""
    return PkiFactory(tmp_path_factory.mktemp("interop-pki"))


@pytest.fixture
def aio_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog recording dicomnet's network logger from INFO up."""
    caplog.set_level(logging.INFO, logger=AIO_LOGGER)
    return caplog


@contextlib.contextmanager
def dicomnet_serve(pki: Pki, store: Path, *options: str) -> Iterator[tuple[int, list[str]]]:
    """`dicomnet serve --tls` as users run it (a subprocess), on a free port, storing
    into ``store``: yields (port, its stderr, filled in once it has stopped)."""
    with dicomnet_serve_with(pki.server_cert, pki.server_key, pki.ca_file, store,
                             *options) as started:
        yield started


def _drain(stream: IO[str] | None) -> tuple[threading.Thread, list[str]]:
    """Read ``stream`` to its end in a thread, its lines kept: a server's pipe
    nobody reads fills up (64 KiB), whatever the server then does with its lines."""
    lines: list[str] = []
    thread = threading.Thread(target=lambda: lines.extend(stream or ()), daemon=True)
    thread.start()
    return thread, lines


@contextlib.contextmanager
def _serve_json(command: list[str]) -> Iterator[tuple[dict[str, object], list[str], list[str]]]:
    """``dicomnet serve --json`` (``command``'s options after ``serve``) in a
    subprocess: (its start line, then, once it has stopped, its other stdout lines
    and its stderr). Both pipes are read all along."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
         *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    readers: list[threading.Thread] = []
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
            assert sel.select(30), "dicomnet serve printed no start line"
        started = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        (out_reader, out), (err_reader, err) = _drain(proc.stdout), _drain(proc.stderr)
        readers += [out_reader, err_reader]
        yield started, out, err
    finally:
        proc.terminate()
        if not readers:  # it never started
            proc.communicate(timeout=20)
        proc.wait(timeout=20)
        for reader in readers:
            reader.join(20)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@contextlib.contextmanager
def dicomnet_serve_with(cert: Path, key: Path, ca: Path, store: Path,
                        *options: str) -> Iterator[tuple[int, list[str]]]:
    """:func:`dicomnet_serve` with these certificate, key and CA files."""
    stderr: list[str] = []
    err: list[str] = []
    try:
        with _serve_json(["--output", str(store), "--tls", "--cert", str(cert), "--key",
                          str(key), "--ca", str(ca), *options]) as (started, _, err):
            yield int(str(started["port"])), stderr
    finally:
        stderr.append("".join(err))


@contextlib.contextmanager
def dicomnet_serve_plain(store: Path, *options: str
                         ) -> Iterator[tuple[int, list[dict[str, object]], list[str]]]:
    """`dicomnet serve --json` on plain DICOM (a subprocess), on a free port, storing
    into ``store``: yields (port, its JSON events, its stderr), the last two filled
    in once it has stopped."""
    events: list[dict[str, object]] = []
    stderr: list[str] = []
    with _serve_json(["--output", str(store), *options]) as (started, out, err):
        events.append(started)
        yield int(str(started["port"])), events, stderr
    events.extend(json.loads(line) for line in out if line.strip())
    stderr.append("".join(err))


@pytest.fixture(scope="session")
def openssl() -> Path:
    """Debian's ``openssl`` command, as a peer (s_server, s_client) and a tool."""
    path = shutil.which("openssl")
    if path is None:
        _missing("the openssl command")
    return Path(str(path))


#: Where scripts/test installs the npm peers (git-ignored).
PEERS_DIR = Path(__file__).resolve().parents[2] / ".peers"


@dataclass(frozen=True)
class DcmjsDimse:
    """Node and the dcmjs-dimse module (npm), driven by tests/interop/dcmjs_peer.js."""

    node: Path
    script: Path
    node_path: Path
    version: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "NODE_PATH": str(self.node_path)}


@pytest.fixture(scope="session")
def dcmjs_dimse() -> DcmjsDimse:
    """dcmjs-dimse 0.3.3 from npm, in .peers/ (``scripts/test`` installs it); skip
    or, under CI, fail if node or the module is absent."""
    node = shutil.which("node")
    if node is None:
        _missing("node (apt-get install nodejs)")
    package = PEERS_DIR / "node_modules" / "dcmjs-dimse" / "package.json"
    if not package.is_file():
        _missing(f"dcmjs-dimse (npm install --prefix {PEERS_DIR} dcmjs-dimse@0.3.3)")
    version = str(json.loads(package.read_text())["version"])
    return DcmjsDimse(Path(str(node)), Path(__file__).with_name("dcmjs_peer.js"),
                      package.parents[1], version)


@dataclass(frozen=True)
class Dicom3tools:
    """David Clunie's dicom3tools (Debian ``dicom3tools``): a validator and a dumper."""

    dciodvfy: Path
    dcdump: Path


@pytest.fixture(scope="session")
def dicom3tools() -> Dicom3tools:
    """dciodvfy and dcdump; skip or, under CI, fail if absent."""
    tools = {name: shutil.which(name) for name in ("dciodvfy", "dcdump")}
    if None in tools.values():
        _missing("dicom3tools (apt-get install dicom3tools)")
    return Dicom3tools(Path(str(tools["dciodvfy"])), Path(str(tools["dcdump"])))


@pytest.fixture(scope="session")
def gdcmscu() -> Path:
    """GDCM's gdcmscu (Debian ``libgdcm-tools``); skip or, under CI, fail if absent."""
    path = shutil.which("gdcmscu")
    if path is None:
        _missing("GDCM's gdcmscu (apt-get install libgdcm-tools)")
    return Path(str(path))
