"""What the commands print: text made safe for a terminal, JSON documents, the
``error:`` line, and the logging and warnings of a command's run (one-liners on
stderr, a server's lines dated)."""

from __future__ import annotations

import json
import logging
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from dicomnet.cli.exits import EXIT_NETWORK, held_signals, json_promise
from dicomnet.cli.jsontext import indented_document, json_safe, valid_unicode

__all__ = ["EXIT_WAIT", "cli_session", "fail", "in_cli_words", "out_line", "print_json",
           "printable", "say_error", "server_output", "stdout_written"]

if TYPE_CHECKING:
    from dicomnet.cli.outqueue import LineQueue

#: A server's stdout and stderr queues ("stdout", "stderr"), while it runs
#: (server_output): its lines are written by their threads, never the loop.
_QUEUES: dict[str, LineQueue] = {}


#: What a terminal obeys rather than shows: the C0 controls, DEL and the C1 ones
#: (ESC starts the escape sequences that set a window title, write the clipboard
#: or move the cursor; a newline would forge a line of output).
#: Unicode's bidirectional controls reorder what follows them on the line: a file
#: name or a comment could show another text than it holds.
_BIDI = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROLS = re.compile(rf"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_CONTROLS_BUT_LINES = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``):
    what a peer sends (an Error Comment, an AE title, a certificate's subject)
    reaches the terminal as text, never as a command. ``lines`` keeps newlines
    and tabs (text of several lines that is ours, a traceback say)."""
    pattern = _CONTROLS_BUT_LINES if lines else _CONTROLS
    # A file name's byte that is not UTF-8 (a lone surrogate) as ``\xff`` too:
    # the terminal would show a replacement character, or the write would fail.
    escaped = pattern.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                          else f"\\u{ord(m.group()):04x}", text)
    return valid_unicode(escaped)


def print_json(obj: object, *, line: bool = False, last: bool = True) -> None:
    """One JSON document on stdout; ``line``: on one line (serve's events).
    ``last``: the document --json promises, after which none is added (see
    :class:`~dicomnet.cli.exits.JsonPromise`). Every string is valid Unicode
    (:mod:`dicomnet.cli.jsontext`: a file name's bytes that are not UTF-8). The
    closing document goes out in pieces (``_write_in_pieces``), never joined whole."""
    safe = json_safe(obj)
    if not last:
        if line:
            out_line(json.dumps(safe, default=str))
        else:
            click.echo(json.dumps(safe, indent=2, default=str))
        return
    queue = _QUEUES.get("stdout")
    if line and queue is not None:  # written by its thread: no signal cuts it
        queue.put(json.dumps(safe, default=str), always=True)  # the bound drops not the last
        with json_promise() as promise:
            promise.printed = True
        return
    with held_signals():  # whole, or stdout parses no more
        if line:  # serve's last event: one line, one write
            click.echo(json.dumps(safe, default=str))
        else:
            _write_in_pieces(indented_document(safe))
        with json_promise() as promise:
            promise.printed = True


#: Characters of a document written at once: store's of 20,000 files is 10.7 MB,
#: its pieces a million small strings, which joined whole took 60 MB more.
_PIECE = 1 << 16


def _write_in_pieces(chunks: Iterator[str]) -> None:
    """The document then a newline, as ``click.echo`` writes it, in pieces of
    about :data:`_PIECE` characters: never the whole text in memory."""
    stream = sys.stdout
    batch: list[str] = []
    size = 0
    for chunk in chunks:
        batch.append(chunk)
        size += len(chunk)
        if size >= _PIECE:
            stream.write("".join(batch))
            batch.clear()
            size = 0
    batch.append("\n")
    stream.write("".join(batch))
    stream.flush()


def out_line(text: str) -> None:
    """One line on stdout: queued while a server runs (:func:`server_output`),
    else written and flushed (a script waiting for it sees it now)."""
    queue = _QUEUES.get("stdout")
    if queue is not None:
        queue.put(text)
        return
    click.echo(text)
    sys.stdout.flush()


def stdout_written(timeout: float) -> None:
    """Wait up to ``timeout`` seconds for the stdout lines queued so far to be
    written (a server's start line, which scripts wait for)."""
    queue = _QUEUES.get("stdout")
    if queue is not None:
        queue.flush(timeout)


def say_error(message: str) -> None:
    """One ``error:`` line on stderr (the message noted for --json's document)."""
    with json_promise() as promise:
        promise.error = valid_unicode(message)
    line = click.style("error: ", fg="red", bold=True) + printable(message)
    queue = _QUEUES.get("stderr")
    if queue is not None:  # after the log lines queued before it
        queue.put(line)
    else:
        click.echo(line, err=True)


def fail(message: str, code: int = EXIT_NETWORK) -> NoReturn:
    """One ``error:`` line on stderr, then exit with ``code``."""
    say_error(message)
    sys.exit(code)


class _PrintableFormatter(logging.Formatter):
    """Log lines whose message is printable (see :func:`printable`): a calling AE
    title or a server name from the network can neither forge a line nor send the
    terminal an escape sequence. A traceback after it keeps its lines. The
    library's words for its settings become the flags the operator knows."""

    def __init__(self, fmt: str, *, label_problems: bool, dated: bool = False) -> None:
        super().__init__(fmt, datefmt="%Y-%m-%d %H:%M:%S%z" if dated else "%H:%M:%S")
        #: Without a level in the format: WARNING and ERROR lines say it before the
        #: message, so a problem does not read like the INFO lines around it.
        self.label_problems = label_problems

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        message = record.message
        record.message = printable(in_cli_words(message))
        if self.label_problems and record.levelno >= logging.WARNING:
            # Red on a terminal (click.echo drops the colour elsewhere), as `error:` is.
            label = click.style(f"{record.levelname}:", fg="red", bold=True)
            record.message = f"{label} {record.message}"
        try:
            return super().formatMessage(record)
        finally:
            record.message = message


class _ClickHandler(logging.Handler):
    """Writes to whatever sys.stderr is at emit time (CliRunner swaps it), or,
    while a server runs, to its stderr queue (:func:`server_output`)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            queue = _QUEUES.get("stderr")
            if queue is not None:
                queue.put(self.format(record))
            else:
                click.echo(self.format(record), err=True)
        except Exception:
            self.handleError(record)


#: At a server's exit, the longest wait for its reader to take the lines pending
#: (the "stopped" line among them): a reader that is alive takes them in far
#: less; one that never reads again does not hold the exit longer.
EXIT_WAIT = 5.0


@contextmanager
def server_output(*, json_lines: bool) -> Iterator[None]:
    """Lines on stdout (``out_line``, ``print_json``'s one-line documents) and
    the log's lines on stderr written by threads of their own
    (:class:`~dicomnet.cli.outqueue.LineQueue`) for the duration: the loop that
    serves never waits for a slow reader. Lines dropped past the bound are told
    once the reader has caught up: a WARNING on stderr, and with ``json_lines``
    ``{"event": "output_dropped", "stream": ..., "lines": N}`` on stdout. At the
    end, the lines pending are written within :data:`EXIT_WAIT` seconds, and
    given up after that."""
    import time

    from dicomnet.cli.outqueue import DEFAULT_LIMIT, LineQueue
    from dicomnet.storage.completeness import size_text

    log = logging.getLogger("dicomnet.cli")

    def dropped(stream: str, count: int) -> list[str]:
        log.warning("%d line(s) not written to %s: its reader fell behind by more than "
                    "%s of lines", count, stream, size_text(DEFAULT_LIMIT))
        event = {"event": "output_dropped", "stream": stream, "lines": count}
        if not json_lines:
            return []
        line = json.dumps(event)
        if stream == "stdout":
            return [line]  # on the queue that is writing now, before what follows
        out = _QUEUES.get("stdout")
        if out is not None:
            out.put(line)
        return []

    def closed() -> None:
        log.warning("stdout is closed (its reader went away): nothing more is written "
                    "to it; the server goes on")

    _QUEUES["stderr"] = LineQueue(sys.stderr, name="dicomnet-stderr", limit=DEFAULT_LIMIT,
                                  notice=lambda n: dropped("stderr", n))
    _QUEUES["stdout"] = LineQueue(sys.stdout, name="dicomnet-stdout", limit=DEFAULT_LIMIT,
                                  notice=lambda n: dropped("stdout", n), on_closed=closed)
    try:
        yield
    finally:
        # Not cut by a signal (the run's outcome is decided): the wait is bounded.
        with held_signals():
            deadline = time.monotonic() + EXIT_WAIT
            for name in ("stdout", "stderr"):  # stdout's thread may log on stderr
                _QUEUES[name].close(max(0.5, deadline - time.monotonic()))
            _QUEUES.clear()


def _warnings_as_log_lines(handler: logging.Handler) -> Any:
    """A ``warnings.showwarning`` that writes through ``handler``: a warning is a
    log line like the others, with their time (a server's dated) and label."""
    # Here, not at the top: ``dicomnet --help`` prints its errors with this module
    # and needs neither ssl nor the profiles.
    from dicomnet.security.profiles import SecurityWarning

    def show(  # noqa: PLR0917 - the signature of warnings.showwarning
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        security = issubclass(category, SecurityWarning)
        if not security and _from_pydicom(filename):
            # pydicom's remarks on the data sets it reads, received ones included (an
            # invalid UID, a VR that is not what the syntax says): detail for debugging.
            # A peer sending malformed objects must not fill the operator's console.
            logging.getLogger("dicomnet.storage").debug("pydicom: %s", message)
            return
        # Meant for the operator: one line, no source location; shown whatever the level.
        handler.handle(logging.LogRecord(
            "dicomnet.security" if security else "py.warnings", logging.WARNING, filename,
            lineno, "%s", (str(message),), None))

    return show


def _from_pydicom(filename: str) -> bool:
    pydicom = sys.modules.get("pydicom")  # not imported: the warning is not its own
    home = getattr(pydicom, "__file__", None)
    return home is not None and Path(filename).resolve().is_relative_to(
        Path(home).resolve().parent)


@contextmanager
def cli_session(verbose: int, *, default_level: int = logging.WARNING,
                dated: bool = False) -> Iterator[None]:
    """Logging to stderr and warnings as one-liners for the duration of a command;
    ``dated``: each line's time with its date and UTC offset (a server's log, read
    days later), else the time of day alone."""
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else default_level
    handler = _ClickHandler()
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose >= 2 else (
        "%(asctime)s %(message)s")
    handler.setFormatter(_PrintableFormatter(fmt, label_problems=verbose < 2, dated=dated))
    logger = logging.getLogger("dicomnet")
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    from dicomnet.security.profiles import SecurityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", SecurityWarning)
        warnings.showwarning = _warnings_as_log_lines(handler)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
            logger.propagate = old_propagate


# The library's messages name TLSConfig's fields; the CLI's user knows its flags.
_CLI_WORDS = (
    ("(use TLS, port 2762)", "(try --tls / port 2762)"),
    ("(a plain DICOM port?)", "(a plain DICOM port? try without --tls)"),
    ("with accept_unknown_sop_classes)", "with --accept-unknown-sop-classes)"),
    ("(peer_certificate='required')", "(--peer-cert required)"),
    ("(require_called_ae_title)", "(--check-called-aet)"),
    ("(max_associations_per_host)", "(--max-per-host)"),
    ("(max_associations)", "(--max-associations)"),
    ("set certfile/keyfile)", "give --cert and --key)"),
    ("set keyfile (", "give --key ("),
    ("(verify_peer=False)", "(--no-verify)"),
    ("hostname_from_common_name=True", "--hostname-from-cn"),
    ("allow_ca_peer_certificate=True", "--allow-ca-peer-cert"),
    ("our cafile/capath", "--ca"),
    ("cafile/capath", "--ca"),  # one flag for both: not "--ca/--ca"
    ("cafile or capath", "--ca"),
)
#: What remains of the trust files' fields, as words: --ca is a file or a folder
#: (cafile or capath), --crl the CRLs (crlfiles).
_CLI_FIELDS = re.compile(r"\b(cafile|capath|crlfiles)\b")
_CLI_FLAGS = {"cafile": "--ca", "capath": "--ca", "crlfiles": "--crl"}
#: A profile to try, as the library names it (profile='aes'): the flag that sets it.
_CLI_PROFILE = re.compile(r"\bprofile='([a-z0-9-]+)'")
#: A name to check the server's certificate against (server_hostname='pacs').
_CLI_SERVER_NAME = re.compile(r"\bserver_hostname='([^' ]+)'")


def in_cli_words(message: str) -> str:
    """``message`` with the library's names of settings (TLSConfig's fields) as the
    flags that set them."""
    for library, cli in _CLI_WORDS:
        message = message.replace(library, cli)
    message = _CLI_PROFILE.sub(r"--profile \1", message)
    message = _CLI_SERVER_NAME.sub(r"--server-name \1", message)
    return _CLI_FIELDS.sub(lambda m: _CLI_FLAGS[m.group()], message)
