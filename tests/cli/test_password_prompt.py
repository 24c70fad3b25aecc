"""The key-password prompt on a real terminal: Ctrl-C and Ctrl-D leave at once.

Each command runs in a child process whose standard streams are a pseudo-terminal,
as in a shell; the tests type into its master side. The prompt comes before any
connection, so no server is needed.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dicomnet.security.certificates import DevPKI

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="pseudo-terminals as on Linux")

#: How long the child may take to start (imports) and to answer a keystroke.
WAIT = 30.0


class Terminal:
    """``dicomnet ARGS`` in a child process on a pseudo-terminal of its own."""

    def __init__(self, *args: str | Path) -> None:
        self.master, slave = pty.openpty()
        self.output = b""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dicomnet.cli.main", *map(str, args)],
            stdin=slave, stdout=slave, stderr=slave, close_fds=True,
            start_new_session=True,  # its own session, so that the pty is its terminal
            preexec_fn=_take_terminal,  # noqa: PLW1509 (runs no Python thread's code)
        )
        os.close(slave)

    def wait_for(self, text: bytes) -> None:
        deadline = time.monotonic() + WAIT
        while text not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                pytest.fail(f"no {text!r} on the terminal; it shows {self.output!r}")

    def wait_for_prompt(self) -> None:
        """Until the password prompt is up with echo off: getpass discards what was
        typed before it set the terminal up (TCSAFLUSH), as for a person."""
        self.wait_for(b"Password for")
        deadline = time.monotonic() + WAIT
        while termios.tcgetattr(self.master)[3] & termios.ECHO:
            if time.monotonic() > deadline:
                pytest.fail(f"echo still on; the terminal shows {self.output!r}")
            self._read(0.01)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def exit_code(self) -> int:
        deadline = time.monotonic() + WAIT
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        if self.proc.poll() is None:
            pytest.fail(f"still running {WAIT:g} s later; the terminal shows {self.output!r}")
        while self._read(0):
            pass
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: the child closed its side
            return False
        self.output += data
        return bool(data)


def _take_terminal() -> None:
    # The pty becomes the controlling terminal: Ctrl-C typed into it is SIGINT to
    # the child's foreground group, and getpass opens /dev/tty.
    import fcntl

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def start(*args: str | Path) -> Terminal:
        term = Terminal(*args)
        opened.append(term)
        return term

    yield start
    for term in opened:
        term.close()


def _echo_args(pki: DevPKI) -> list[str | Path]:
    # Port 9: nothing is meant to answer, and nothing is reached before the password.
    return ["echo", "127.0.0.1", "9", "--tls", "--ca", pki.ca_cert, "--cert", pki.client_cert,
            "--key", pki.client_key]


def test_ctrl_c_at_the_password_prompt_exits_130_at_once(terminal: Callable[..., Terminal],
                                                         encrypted_pki: DevPKI) -> None:
    term = terminal(*_echo_args(encrypted_pki))
    term.wait_for_prompt()
    term.type(b"\x03")  # Ctrl-C: the terminal sends SIGINT
    assert term.exit_code() == 130
    assert b"interrupted" in term.output
    assert b"Aborted!" not in term.output
    assert b"Traceback" not in term.output


def test_ctrl_c_at_the_prompt_of_store_json_still_prints_the_document(
        terminal: Callable[..., Terminal], encrypted_pki: DevPKI, tmp_path: Path) -> None:
    """``store --help`` promises the summary on Ctrl-C (with --json, "interrupted":
    true): at the password prompt --json printed none, exit 130. Nothing was sent."""
    (tmp_path / "a.dcm").write_bytes(b"not even DICOM")
    (tmp_path / "b.dcm").write_bytes(b"nor this")
    term = terminal("store", *_echo_args(encrypted_pki)[1:], tmp_path, "--json")
    term.wait_for_prompt()
    term.type(b"\x03")
    assert term.exit_code() == 130
    text = term.output.decode()
    doc = json.loads(text[text.index("{"):text.rindex("}") + 1])
    assert (doc["interrupted"], doc["error"], doc["exit_code"]) == (True, "interrupted", 130)
    assert (doc["total"], doc["stored"], doc["failed"]) == (2, 0, 2)
    assert {(Path(r["path"]).name, r["error"]) for r in doc["results"]} == {
        ("a.dcm", "interrupted before it was sent"), ("b.dcm", "interrupted before it was sent")}
    # then the error line, in red on a terminal
    assert text.endswith("}\r\n\x1b[31m\x1b[1merror: \x1b[0minterrupted\r\n")


def test_ctrl_c_at_the_prompt_of_store_without_json_prints_no_summary(
        terminal: Callable[..., Terminal], encrypted_pki: DevPKI, tmp_path: Path) -> None:
    """Nothing was sent: a summary of objects "not confirmed" would mislead."""
    (tmp_path / "a.dcm").write_bytes(b"not even DICOM")
    term = terminal("store", *_echo_args(encrypted_pki)[1:], tmp_path)
    term.wait_for_prompt()
    term.type(b"\x03")
    assert term.exit_code() == 130
    assert term.output.endswith(b": \r\n\x1b[31m\x1b[1merror: \x1b[0minterrupted\r\n")


def test_ctrl_c_signal_at_the_prompt_of_serve(terminal: Callable[..., Terminal],
                                              encrypted_pki: DevPKI, tmp_path: Path) -> None:
    term = terminal("serve", "--port", "0", "--output", tmp_path / "store", "--tls",
                    "--ca", encrypted_pki.ca_cert, "--cert", encrypted_pki.server_cert,
                    "--key", encrypted_pki.server_key)
    term.wait_for_prompt()
    term.proc.send_signal(signal.SIGINT)
    assert term.exit_code() == 130
    assert b"interrupted" in term.output
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


def test_ctrl_d_at_the_password_prompt_is_a_usage_error(terminal: Callable[..., Terminal],
                                                        encrypted_pki: DevPKI) -> None:
    term = terminal(*_echo_args(encrypted_pki))
    term.wait_for_prompt()
    term.type(b"\x04")  # Ctrl-D at the start of a line: end of input
    assert term.exit_code() == 2
    assert b"no password given" in term.output


def test_the_password_typed_is_used_and_not_shown(terminal: Callable[..., Terminal],
                                                  encrypted_pki: DevPKI) -> None:
    term = terminal(*_echo_args(encrypted_pki), "--timeout", "5")
    term.wait_for_prompt()
    term.type(b"s3cret\r")
    # Accepted: the key loads and the command goes on to the network, where port 9
    # refuses (exit 3). A wrong password would be a usage error (exit 2).
    assert term.exit_code() == 3
    assert b"s3cret" not in term.output
    assert b"wrong password" not in term.output
