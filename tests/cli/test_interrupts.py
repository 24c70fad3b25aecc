"""Ctrl-C and SIGTERM wherever they land: one line, exit 130 or 143, no traceback,
nothing left behind, and with --json its one document.

Each command runs in a child process, as ``python -m dicomnet.cli.main`` (through
``tests.cli.interrupt_at``), which gets a real signal at a chosen point of its run:
while it loads, scans a folder, loads its certificates, binds, in a finalizer, in
asyncio's shutdown, as it prints its summary.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dicomnet.security.certificates import DevPKI
from dicomnet.services.verification import VerificationSCP

from .helpers import ENDS, ServerThread, assert_ended, interrupted_at, leftovers
from .test_store import write_images

storage = pytest.importorskip("dicomnet.services.storage")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

StartServer = Callable[..., ServerThread]
SIGINT, SIGTERM = signal.SIGINT, signal.SIGTERM


def serve_args(pki: DevPKI, output: Path) -> list[str | Path]:
    return ["serve", "--port", "0", "--output", output, "--tls", "--cert", pki.server_cert,
            "--key", pki.server_key, "--ca", pki.ca_cert]


@pytest.mark.parametrize(("signum", "where"), [
    (SIGINT, "dicomnet.cli.serve:serve"),  # the command starting
    (SIGTERM, "dicomnet.cli.serve:serve"),
    (SIGINT, "dicomnet.security.config:TLSConfig.server_context"),  # loading certificates
    (SIGTERM, "dicomnet.aio.server:Server._start"),  # binding
    (SIGINT, "dicomnet.services.storage:StorageSCP.__init__"),  # opening the index
    # While Python loads the server: dataclasses compile its methods from strings,
    # and a KeyboardInterrupt leaving such code made ``python -m`` kill itself
    # with SIGINT on its way out (exit -2, after "error: interrupted").
    (SIGINT, "dicomnet.ul.pdu:<module>@<string>"),
    (SIGTERM, "dicomnet.ul.pdu:<module>@<string>"),
])
@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_serve_interrupted_while_it_starts(signum: signal.Signals, where: str,
                                          json_flag: list[str], pki: DevPKI,
                                          tmp_path: Path) -> None:
    """Before it listens, Ctrl-C (SIGTERM) interrupts serve: 130 (143). SIGTERM
    killed it (exit -15, no word); a Ctrl-C while it loaded or while it built
    its TLS context and bound the port could end as a clean stop (exit 0) once
    it listened, or die of SIGINT."""
    output = tmp_path / "store"
    done = interrupted_at(signum, where, *serve_args(pki, output), *json_flag)
    assert_ended(done, signum)
    message, code = ENDS[signum]
    if json_flag:
        assert json.loads(done.stdout) == {"event": "error", "error": message,
                                           "exit_code": code, "interrupted": True}
    else:
        assert done.stdout == ""
    assert leftovers(tmp_path) == []


@pytest.fixture
def storage_server(start_server: StartServer, tmp_path: Path) -> ServerThread:
    return start_server(providers=[VerificationSCP(), storage.StorageSCP(tmp_path / "store")])


def many_files(folder: Path) -> Path:
    """Objects in nested folders, for the scan to walk."""
    for sub in ("a", "b/c", "b/d"):
        write_images(folder / sub, 3)
    return folder


@pytest.mark.parametrize(("signum", "where"), [
    (SIGINT, "dicomnet.services.store_listing:_files_below"),  # scanning the folders
    (SIGTERM, "dicomnet.services.store_listing:_files_below"),
    # A generator's finalizer, a weakref callback, an object's __del__: Python
    # printed the KeyboardInterrupt ("Exception ignored in ...") and went on
    # storing as if no Ctrl-C had come (exit 0).
    (SIGINT, "finalizer:dicomnet.services.store_listing:_files_below"),
    (SIGTERM, "finalizer:dicomnet.services.store_listing:listed_texts"),
    (SIGINT, "dicomnet.dimse.messages:<module>@<string>"),  # loading, see above
])
def test_store_interrupted_before_it_connects(signum: signal.Signals, where: str,
                                             storage_server: ServerThread,
                                             tmp_path: Path) -> None:
    """Nothing was sent: the --json document says so in the error's words."""
    folder = many_files(tmp_path / "in")
    done = interrupted_at(signum, where, "store", "127.0.0.1", storage_server.port, folder,
                          "--json")
    assert_ended(done, signum)
    message, code = ENDS[signum]
    doc: dict[str, Any] = json.loads(done.stdout)
    assert (doc["error"], doc["exit_code"], doc["interrupted"]) == (message, code, True)
    assert not list((tmp_path / "store").rglob("*.dcm"))


@pytest.mark.parametrize(("signum", "where"), [
    # asyncio closing its loop (its async generators, its executor's threads),
    # once every object was stored.
    (SIGINT, "asyncio.runners:Runner.close"),
    (SIGTERM, "asyncio.base_events:BaseEventLoop.shutdown_default_executor"),
    (SIGTERM, "dicomnet.cli.store:_report"),  # printing the summary
])
def test_store_interrupted_once_it_stored_everything(signum: signal.Signals, where: str,
                                                     storage_server: ServerThread,
                                                     tmp_path: Path) -> None:
    """Interrupted all the same (the person asked), and the one document says
    what was stored."""
    folder = many_files(tmp_path / "in")
    done = interrupted_at(signum, where, "store", "127.0.0.1", storage_server.port, folder,
                          "--json")
    assert_ended(done, signum)
    message, code = ENDS[signum]
    doc: dict[str, Any] = json.loads(done.stdout)
    assert (doc["error"], doc["exit_code"], doc["interrupted"]) == (message, code, True)
    if "stored" in doc:  # not when the summary itself was interrupted
        assert doc["stored"] == doc["total"] == 9
    assert len(list((tmp_path / "store").rglob("*.dcm"))) == 9


def test_python_m_dicomnet_runs_the_command(tmp_path: Path) -> None:
    """``python -m dicomnet`` is the dicomnet command (it said "No module named
    dicomnet.__main__")."""
    done = subprocess.run([sys.executable, "-m", "dicomnet", "echo", "--json"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Missing argument 'HOST'" in done.stderr
    assert json.loads(done.stdout)["exit_code"] == 2


def test_a_signal_sent_again_that_lands_before_the_hook_returns_is_sent_once_more(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C or SIGTERM lost in a finalizer is sent again a moment later; on a
    loaded machine that moment came while the hook was still starting its timer
    thread, was raised out of the hook ("Exception ignored in
    sys.unraisablehook") and lost, and the run went on as if never interrupted
    (test_store_interrupted_before_it_connects failed so 3 times in 10 with two
    busy loops beside it). Now it is sent once more."""
    import _thread

    from dicomnet.cli import exits

    started: list[tuple[object, tuple[int, ...]]] = []

    def start(function: object, args: tuple[int, ...]) -> int:
        started.append((function, args))
        if len(started) == 1:
            raise exits.Terminated  # the one just sent, landing here
        return 0

    monkeypatch.setattr(_thread, "start_new_thread", start)
    exits.send_again(SIGINT)
    assert [args for _, args in started] == [(SIGINT,), (SIGTERM,)]
