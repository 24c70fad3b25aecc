"""run_async: Ctrl-C ends a command whose event loop is asleep."""

from __future__ import annotations

import asyncio
import inspect
import json
import linecache
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from dicomnet.cli.common import EXIT_INTERRUPTED, EXIT_TERMINATED, run_async


def _main_thread_in_poll(main: int) -> bool:
    """Whether the main thread is inside the selector's system call (C code, the
    GIL released: it runs no Python code before ``epoll_wait`` returns). Seen
    from a thread holding the GIL, the frame's line is that of the call only once
    an instruction of it ran, and no signal check comes before the call itself."""
    frame = sys._current_frames().get(main)
    if (frame is None or frame.f_code.co_name != "select"
            or not frame.f_code.co_filename.endswith("selectors.py")):
        return False
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
    return "_selector.poll(" in line or "_selector.control(" in line  # epoll/poll, kqueue


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
def test_ctrl_c_handled_just_before_the_loop_sleeps_still_interrupts() -> None:
    """A SIGINT whose C handler runs just before the loop enters ``epoll_wait``
    (here: in another thread, while the main thread is in the poll call) must
    still wake the loop. asyncio.run's handler alone runs only once the main
    thread runs Python code again, after the next timer or I/O event: ``dicomnet
    store`` awaiting a C-STORE response slept up to its DIMSE timeout (60 s)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has a handler of its own here: asyncio.run installs none")
    main = threading.get_ident()
    seen_in_poll = threading.Event()
    woken = threading.Event()
    slept_through: list[bool] = []

    def interrupt(loop: asyncio.AbstractEventLoop) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _main_thread_in_poll(main):
                seen_in_poll.set()
                break
            time.sleep(0.001)
        # To this thread: the main thread's epoll_wait sees no EINTR, as when the
        # signal arrives just before it is entered.
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        if not woken.wait(10):
            slept_through.append(True)
            loop.call_soon_threadsafe(lambda: None)  # the pending handler then runs

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        threading.Thread(target=interrupt, args=(loop,), daemon=True).start()
        try:
            await loop.create_future()  # only the Ctrl-C ends this wait
        finally:
            woken.set()

    reported: list[tuple[str, int]] = []
    with pytest.raises(SystemExit) as exit_info:
        run_async(wait(), verbose=0, on_exit=lambda *ended: reported.append(ended))
    assert seen_in_poll.is_set(), "the main thread was never seen in the selector's poll"
    assert not slept_through, "the event loop slept through the Ctrl-C"
    assert exit_info.value.code == EXIT_INTERRUPTED
    assert reported == [("interrupted", 130)]
    assert signal.set_wakeup_fd(-1) == -1, "the wakeup fd was left set"


def test_ctrl_c_outside_the_network_work_exits_130(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    """A Ctrl-C while a command does something else than its asyncio part (here
    making certificates) exits 130 with "interrupted", not click's "Aborted!"
    and 1 (which means a peer's failure status)."""
    from click.testing import CliRunner

    from dicomnet.cli import certs
    from dicomnet.cli.group import cli

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(certs, "make_dev_pki", interrupted)
    result = CliRunner().invoke(cli, ["certs", "init", str(tmp_path / "pki")])
    assert result.exit_code == EXIT_INTERRUPTED
    assert "interrupted" in result.output and "Aborted" not in result.output


@pytest.mark.parametrize(("signum", "code", "message"), [
    (signal.SIGINT, EXIT_INTERRUPTED, "interrupted"),
    (signal.SIGTERM, EXIT_TERMINATED, "terminated (SIGTERM)"),
], ids=["ctrl-c", "sigterm"])
def test_a_second_signal_cancels_the_clean_up_instead_of_raising_in_it(
        signum: int, code: int, message: str) -> None:
    """The first Ctrl-C cancels the command; one during the clean-up that follows
    (``dicomnet store`` aborting its association, closing its TLS connection) cancels
    it again, cutting its waits short. asyncio.run raised KeyboardInterrupt wherever
    the main thread then was (a transport callback, another task, a generator's
    finalizer): tracebacks on stderr, the rest of the clean-up skipped. With
    ``sigterm_interrupts`` (store, echo), SIGTERM does the same but exits 143, and
    its handler is removed afterwards."""
    default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
    if signal.getsignal(signum) is not default:
        pytest.skip("the signal has a handler of its own here")
    steps: list[str] = []

    async def work() -> None:
        loop = asyncio.get_running_loop()
        signal.raise_signal(signum)  # its handler runs before this returns
        try:
            await loop.create_future()
        finally:  # the clean-up
            signal.raise_signal(signum)
            steps.append("clean-up went on")
            try:
                await loop.create_future()  # a wait of the clean-up
            except asyncio.CancelledError:
                steps.append("clean-up wait cancelled")
                raise

    reported: list[tuple[str, int]] = []
    with pytest.raises(SystemExit) as exit_info:
        run_async(work(), verbose=0, on_exit=lambda *ended: reported.append(ended),
                  sigterm_interrupts=signum == signal.SIGTERM)
    assert steps == ["clean-up went on", "clean-up wait cancelled"]
    assert exit_info.value.code == code
    assert reported == [(message, code)]
    assert signal.getsignal(signum) is default
    assert signal.set_wakeup_fd(-1) == -1, "the wakeup fd was left set"


#: A command whose clean-up ignores its cancels, run by run_async in a child
#: process, which sends itself SIGINT at each step (the third one must end it).
_STUBBORN = """
import asyncio, signal, sys
from dicomnet.cli.common import run_async
from dicomnet.cli.exits import promise_json

promise_json(sys.argv[1:])

async def stubborn():
    loop = asyncio.get_running_loop()
    signal.raise_signal(signal.SIGINT)
    try:
        await loop.create_future()
    finally:
        signal.raise_signal(signal.SIGINT)  # cancels it again
        try:
            await loop.create_future()
        except asyncio.CancelledError:
            print("second: cancelled", file=sys.stderr, flush=True)
        signal.raise_signal(signal.SIGINT)
        print("third: not the end", file=sys.stderr, flush=True)
        await loop.create_future()

run_async(stubborn, verbose=0)
"""


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_a_third_ctrl_c_quits_at_once(json_flag: list[str]) -> None:
    """Past the second, Ctrl-C quits at once: a way out of a clean-up that ignores
    its cancel (or waits for a thread stuck in a DNS lookup). It raised
    KeyboardInterrupt wherever the main thread was, which printed tracebacks and
    still waited for the loop's threads. Exit 130, one line, and with --json its
    document."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", _STUBBORN, *json_flag],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_INTERRUPTED, done.stderr
    assert done.stderr.splitlines() == ["second: cancelled", "error: interrupted"]
    if json_flag:
        assert json.loads(done.stdout) == {"error": "interrupted", "exit_code": 130,
                                           "interrupted": True}
    else:
        assert done.stdout == ""


def test_a_ctrl_c_before_the_command_starts_leaves_no_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C as run_async is entered, before the command's coroutine ever ran:
    130, and no "coroutine was never awaited" warning (an error under this
    suite's filterwarnings): neither the command's nor run_async's own."""
    def interrupted(runner: asyncio.Runner, main: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # before the loop ran anything

    async def command() -> None:
        raise AssertionError("not run")

    monkeypatch.setattr(asyncio.Runner, "run", interrupted)
    coro = command()
    with pytest.raises(SystemExit) as exit_info:
        run_async(coro, verbose=0)
    assert exit_info.value.code == EXIT_INTERRUPTED
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


@pytest.mark.parametrize("opted_in", [False, True])
def test_sigterm_handler_only_when_asked_and_never_over_another(opted_in: bool) -> None:
    """Not opted in, SIGTERM stays as it was; a handler someone else set
    (here SIG_IGN) is left alone."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("SIGTERM has a handler of its own here")
    seen: list[object] = []

    async def work() -> None:
        seen.append(signal.getsignal(signal.SIGTERM))

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN) if opted_in else None
    try:
        run_async(work(), verbose=0, sigterm_interrupts=opted_in)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIG_IGN if opted_in else signal.SIG_DFL]


def test_error_lines_and_log_lines_show_control_characters_as_escapes(
        capsys: pytest.CaptureFixture[str]) -> None:
    """What the network names (an AE title, a server name) reaches the terminal as
    text: no escape sequence, no forged line; a traceback keeps its lines."""
    import logging

    from dicomnet.cli.common import cli_session, fail

    with cli_session(0):
        logging.getLogger("dicomnet.aio").warning("association from %s refused",
                                                  "CT\x1b[2J\nforged line")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("dicomnet.aio").exception("with a traceback")
    with pytest.raises(SystemExit):
        fail("peer said \x1b]0;title\x07")
    err = capsys.readouterr().err
    assert "\x1b[2J" not in err and "\x07" not in err
    assert r"association from CT\x1b[2J\x0aforged line refused" in err
    assert r"error: peer said \x1b]0;title\x07" in err
    assert "Traceback (most recent call last):\n" in err


def test_bidirectional_controls_are_shown_as_escapes() -> None:
    """U+202E turns what follows around on the line: "evil\u202egpj.dcm" would show
    as "evilmcd.jpg"."""
    from dicomnet.cli.common import printable

    assert printable("evil\u202egpj.dcm \u2066x\u2069") == r"evil\u202egpj.dcm \u2066x\u2069"


def test_log_lines_name_the_flags_not_the_library_settings(
        capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from dicomnet.cli.common import cli_session

    with cli_session(0):
        logging.getLogger("dicomnet.aio").warning(
            "refused presentation context(s) for 1.2.3 (no service here takes this SOP Class "
            "(a storage server takes unknown ones with accept_unknown_sop_classes))")
    assert capsys.readouterr().err.endswith(
        "takes unknown ones with --accept-unknown-sop-classes))\n")
