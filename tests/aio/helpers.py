"""Shared helpers of the network tests (tests/aio and tests/interop).

- :func:`run` drives a test coroutine in a fresh event loop, with an upper bound.
- :class:`Pki` is a CA plus server and client certificates made at run time, able
  to issue the broken certificates the negative tests need.
- :func:`running_server` starts a dicomnet server on 127.0.0.1, port 0, and always
  closes it.
- :func:`wait_until`, :func:`wait_port`, :func:`read_until_eof` wait for a condition
  with a bound (never a fixed sleep as synchronisation).
- :func:`run_process` / :func:`background_process` run a third-party peer with a
  timeout, killing it in every case.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import select
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dicomnet.aio.server import Server, serve
from dicomnet.aio.transport import SecureLinkEvent
from dicomnet.security.certificates import (
    CertificateAuthority,
    CertificateInfo,
    KeyType,
    self_signed,
)
from dicomnet.security.config import TLSConfig

__all__ = [
    "AIO_LOGGER",
    "LOOPBACK",
    "HookRecorder",
    "Pki",
    "PkiFactory",
    "association_lines",
    "background_process",
    "free_port",
    "log_lines",
    "other_tasks",
    "peer_env",
    "read_until_eof",
    "run",
    "run_process",
    "running_server",
    "wait_output",
    "wait_port",
    "wait_until",
]

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
AIO_LOGGER = "dicomnet.aio"


# -- event loop -----------------------------------------------------------------------


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run ``coro`` in a fresh event loop; fail (TimeoutError) if it takes over ``timeout``.

    ``asyncio.timeout`` rather than ``wait_for`` so that no extra task exists:
    tests can check that nothing but their own task is left running.
    """

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def other_tasks() -> set[asyncio.Task[Any]]:
    """Every unfinished task of the running loop except the caller's."""
    me = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not me and not t.done()}


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``predicate`` until true; AssertionError naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def read_until_eof(reader: asyncio.StreamReader, bound: float) -> bytes:
    """Everything the peer sends until it closes; AssertionError if it has not closed
    within ``bound`` seconds (an upper bound on waiting, not a timing assertion)."""
    data = bytearray()
    try:
        async with asyncio.timeout(bound):
            while chunk := await reader.read(65536):
                data += chunk
    except TimeoutError:
        raise AssertionError(
            f"the server did not close the connection within {bound}s "
            f"(received {len(data)} byte(s))"
        ) from None
    except ConnectionResetError:
        pass  # closed, with unread bytes on its side: as good as EOF
    return bytes(data)


# -- ports and processes ----------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for peers that need a number)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None,
              timeout: float = 10.0) -> None:
    """Block until 127.0.0.1:``port`` accepts TCP connections (a started peer is ready).

    Fails early with the peer's exit code if ``proc`` died instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"peer exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise AssertionError(f"nothing listens on port {port} after {timeout}s") from None
            time.sleep(0.02)


def peer_env() -> dict[str, str]:
    """Environment of a DCMTK peer: TCP_NODELAY=1 (DCMTK leaves Nagle on otherwise)."""
    return {**os.environ, "TCP_NODELAY": "1"}


async def run_process(*cmd: str | Path, timeout: float = 20.0) -> tuple[int, str]:
    """Run a peer program to completion: (exit code, stdout+stderr). Killed after ``timeout``."""
    proc = await asyncio.create_subprocess_exec(
        *map(str, cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, env=peer_env(),
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError(
            f"{cmd[0]} did not finish within {timeout}s; output:\n{out.decode(errors='replace')}"
        ) from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


@dataclass
class BackgroundProcess:
    """A peer server running in the background; ``output()`` is what it printed so far."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def background_process(*cmd: str | Path, log_path: Path, port: int,
                       timeout: float = 10.0) -> Iterator[BackgroundProcess]:
    """Start a peer server, wait until ``port`` accepts connections, and always kill it."""
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT, env=peer_env(),
        )
    try:
        running = BackgroundProcess(proc, log_path)
        try:
            wait_port(port, proc, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; output:\n{running.output()}") from None
        yield running
    finally:
        proc.kill()
        proc.wait(timeout=10)


def wait_output(peer: BackgroundProcess, text: str, timeout: float = 10.0) -> str:
    """Block until the peer has printed ``text``; return its whole output so far."""
    deadline = time.monotonic() + timeout
    while text not in (out := peer.output()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"peer did not print {text!r} within {timeout}s; output:\n{out}")
        time.sleep(0.02)
    return out


# -- logs --------------------------------------------------------------------------------


def log_lines(caplog: pytest.LogCaptureFixture, *, logger: str = AIO_LOGGER,
              level: int | None = None, contains: str = "") -> list[str]:
    """Messages logged by ``logger`` (at ``level`` if given) that contain ``contains``."""
    return [
        r.getMessage() for r in caplog.records
        if r.name == logger and (level is None or r.levelno == level)
        and contains in r.getMessage()
    ]


def association_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The server's one INFO line per association that reached A-ASSOCIATE-RQ."""
    return [m for m in log_lines(caplog, level=logging.INFO) if m.startswith("association ")]


# -- hooks -------------------------------------------------------------------------------


@dataclass
class HookRecorder:
    """An ``on_secure_link_ready`` hook that keeps every event it gets."""

    events: list[SecureLinkEvent] = field(default_factory=list)

    def __call__(self, event: SecureLinkEvent) -> None:
        self.events.append(event)


# -- PKI ---------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Pki:
    """A CA (trusted by both ends), a server certificate for localhost/127.0.0.1 and a
    client certificate, written under ``directory``; issues more on demand."""

    directory: Path
    key_type: KeyType
    ca: CertificateAuthority
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def create(cls, directory: Path, key_type: KeyType = "ecdsa") -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority.create(f"dicomnet test CA ({key_type})", key_type=key_type)
        ca_file = ca.write_cert(directory / "ca.pem")
        server = ca.issue("localhost", sans=("localhost", LOOPBACK), server=True, client=False,
                          key_type=key_type)
        client = ca.issue("dicomnet test client", server=False, client=True, key_type=key_type)
        server_cert, server_key = server.write(directory, "server")
        client_cert, client_key = client.write(directory, "client")
        return cls(directory, key_type, ca, ca_file, server_cert, server_key, client_cert,
                   client_key)

    @property
    def client_subject(self) -> str:
        return CertificateInfo.from_pem_file(self.client_cert).subject

    @property
    def server_subject(self) -> str:
        return CertificateInfo.from_pem_file(self.server_cert).subject

    def issue(
        self,
        name: str,
        *,
        sans: tuple[str, ...] = ("localhost", LOOPBACK),
        server: bool = True,
        client: bool = True,
        valid_from_days: float = -1 / 24,
        valid_to_days: float = 825,
        password: str | None = None,
    ) -> tuple[Path, Path]:
        """A certificate from this CA, valid from/until these day offsets from now;
        returns (cert, key) paths named after ``name``."""
        issued = self.ca.issue(
            name, sans=sans, server=server, client=client, key_type=self.key_type,
            not_before=_now() + dt.timedelta(days=valid_from_days),
            not_after=_now() + dt.timedelta(days=valid_to_days),
        )
        return issued.write(self.directory, name.replace(" ", "_"), password=password)

    def foreign(self, name: str, *, server: bool = True, client: bool = True) -> tuple[Path, Path]:
        """A certificate for localhost/127.0.0.1 issued by some other CA nobody trusts."""
        other = CertificateAuthority.create("untrusted CA", key_type=self.key_type)
        issued = other.issue(name, sans=("localhost", LOOPBACK), server=server, client=client,
                             key_type=self.key_type)
        return issued.write(self.directory, name.replace(" ", "_"))

    def self_signed(self, name: str) -> tuple[Path, Path]:
        """A self-signed leaf certificate for localhost/127.0.0.1."""
        return self_signed("localhost", key_type=self.key_type).write(self.directory, name)

    def server_tls(self, **overrides: Any) -> TLSConfig:
        """Server configuration: our server certificate, client certificates required."""
        settings: dict[str, Any] = {"certfile": self.server_cert, "keyfile": self.server_key,
                                    "cafile": self.ca_file, **overrides}
        return TLSConfig(**settings)

    def client_tls(self, **overrides: Any) -> TLSConfig:
        """Client configuration: our client certificate, the server verified against the CA."""
        settings: dict[str, Any] = {"certfile": self.client_cert, "keyfile": self.client_key,
                                    "cafile": self.ca_file, **overrides}
        return TLSConfig(**settings)


class PkiFactory:
    """One :class:`Pki` per key type, made on first use (a session fixture holds this)."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._made: dict[str, Pki] = {}

    def __call__(self, key_type: KeyType = "ecdsa") -> Pki:
        if key_type not in self._made:
            self._made[key_type] = Pki.create(self._base / key_type, key_type)
        return self._made[key_type]


# -- servers -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_server(**kwargs: Any) -> AsyncIterator[Server]:
    """A dicomnet server on 127.0.0.1, any free port; closed (and awaited) on exit."""
    kwargs.setdefault("ae_title", "DICOMNET-SCP")
    server = await serve(host=LOOPBACK, port=0, **kwargs)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


def wait_reset(fd: int) -> None:
    """Block until the peer's reset has reached socket ``fd`` (POLLERR/POLLHUP, which
    poll reports unasked: asking for POLLIN too would return at once, bytes
    waiting before the reset, and leave nothing to wait on)."""
    poller = select.poll()
    poller.register(fd, 0)
    if not poller.poll(5000):
        raise AssertionError("the peer's reset never arrived")
