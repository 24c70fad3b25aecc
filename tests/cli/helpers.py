"""Helpers for CLI tests: a library server in a thread, running the CLI in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner, Result

from dicomnet.aio.server import Server, serve
from dicomnet.cli.group import cli
from dicomnet.security.certificates import DevPKI


@dataclass
class ServerThread:
    """A library server on 127.0.0.1, port 0, running its own event loop in a thread."""

    kwargs: dict[str, Any]
    port: int = 0
    server: Server | None = None
    error: BaseException | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ServerThread:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(20), "server did not start"
        if self.error is not None:
            raise self.error
        return self

    async def _main(self) -> None:
        try:
            self.server = await serve(host="127.0.0.1", port=0, **self.kwargs)
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            return
        self._loop = asyncio.get_running_loop()
        self.port = self.server.port
        self._ready.set()
        await self.server.serve_forever()
        await self.server.wait_closed()

    def stop(self) -> None:
        if self._loop is not None and self.server is not None:
            self._loop.call_soon_threadsafe(self.server.close)
        if self._thread is not None:
            self._thread.join(20)
            assert not self._thread.is_alive(), "server thread did not stop"


def run_cli(*args: str | Path | int, env: dict[str, str] | None = None,
            input: str | None = None) -> Result:
    """Invoke ``dicomnet ARGS`` in-process; never raises, returns the result."""
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, input=input,
                              catch_exceptions=False)


def json_out(result: Result) -> Any:
    """The JSON document a command printed on stdout."""
    return json.loads(result.stdout)


def client_tls_args(pki: DevPKI) -> list[str | Path]:
    """Flags for a mutually authenticated client with ``pki``."""
    return ["--tls", "--ca", pki.ca_cert, "--cert", pki.client_cert, "--key", pki.client_key]


def error_line(result: Result) -> str:
    """The single ``error:`` line a failed command wrote on stderr.

    stderr may also hold the in-process test server's log lines (same logger tree).
    """
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


async def signalled(ready: asyncio.Event, signum: signal.Signals,
                    *args: str | Path | int) -> tuple[int | None, bytes, bytes]:
    """Run ``dicomnet ARGS`` in a child process, send it ``signum`` once ``ready``
    is set; its exit code, stdout and stderr."""
    # -X faulthandler: if it does not exit, SIGABRT makes it print where each of
    # its threads is (a Ctrl-C test failed once in about 200 runs, with no clue).
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "faulthandler", "-m", "dicomnet.cli.main", *map(str, args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.wait_for(ready.wait(), 30)
        proc.send_signal(signum)
        communicating = asyncio.ensure_future(proc.communicate())
        try:
            out, err = await asyncio.wait_for(asyncio.shield(communicating), 30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):  # it ended just now
                proc.send_signal(signal.SIGABRT)
            _, err = await asyncio.wait_for(communicating, 10)
            pytest.fail(f"dicomnet did not exit within 30 s of {signum.name}; "
                        "its threads:\n" + err.decode(errors="replace"))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out, err


# -- signals, in a child process ----------------------------------------------------

#: The repository's root: the child processes run there, to import tests.cli.interrupt_at.
ROOT = Path(__file__).resolve().parents[2]
#: The end each signal promises: the error line's message and the exit code.
ENDS = {signal.SIGINT: ("interrupted", 130), signal.SIGTERM: ("terminated (SIGTERM)", 143)}


def interrupted_at(signum: signal.Signals, where: str,
                   *args: str | Path | int) -> subprocess.CompletedProcess[str]:
    """``dicomnet ARGS`` in a child process, sent ``signum`` at ``where``
    (see tests/cli/interrupt_at.py)."""
    return subprocess.run(
        [sys.executable, "-m", "tests.cli.interrupt_at", signum.name, where, *map(str, args)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)


def assert_ended(done: subprocess.CompletedProcess[str], signum: signal.Signals) -> None:
    """Exit 130 (143) with one ``error:`` line, the last one, and no traceback."""
    message, code = ENDS[signum]
    assert done.returncode == code, done.stderr
    for noise in ("Traceback", "Exception ignored", "never awaited", "Task was destroyed"):
        assert noise not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {message}"], done.stderr
    assert done.stderr.rstrip().endswith(errors[0])


def leftovers(folder: Path) -> list[str]:
    """Temporary files and an index left open (SQLite's -wal and -shm go when
    the last connection closes)."""
    return sorted(p.name for p in folder.rglob("*")
                  if p.name.endswith((".dicomnet-part", "-wal", "-shm", "-journal")))


def serve_that_must_refuse(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``dicomnet serve --port 0 --output TMP/store ARGS`` in a subprocess (a server
    that did start would never return: its timeout ends the test), run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--output",
         str(tmp_path / "store"), *map(str, args)],
        capture_output=True, text=True, timeout=60, check=False)


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """``proc`` killed and waited for on the way out if it is still running: a
    failed assertion must not leave a server behind, nor a zombie."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def terminated(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Send ``proc`` SIGTERM, as an operator stops a server; its stdout and stderr
    once it has exited (``subprocess.TimeoutExpired`` if it has not in ``timeout`` s)."""
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=timeout)


def read_line(stream: IO[str], timeout: float) -> str:
    """One line from a pipe, or fail after ``timeout`` seconds (never hangs)."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        assert sel.select(timeout), "no output from dicomnet serve"
    return stream.readline()
