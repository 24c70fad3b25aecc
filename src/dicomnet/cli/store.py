"""``dicomnet store``: C-STORE files and folders (Storage SCU, PS3.4 Annex B)."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dicomnet.cli.common import (
    EXIT_CODES_EPILOG,
    EXIT_FAILURE_STATUS,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_USAGE,
    NetworkOptions,
    cli_session,
    command_tls_config,
    fail,
    is_interruption,
    network_options,
    print_json,
    printable,
    run_async,
)
from dicomnet.cli.describe import describe_security
from dicomnet.cli.jsontext import Streamed, path_fields
from dicomnet.cli.output import in_cli_words
from dicomnet.dimse.status import Status
from dicomnet.tuning import start_up_left_alone, tune_malloc_for_streaming

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from dicomnet.aio.transport import SecureLinkEvent
    from dicomnet.security.config import TLSConfig
    from dicomnet.services.storage import RetryEvent, StoreResult

__all__ = ["store"]

_TABLE_ROWS = 50  # beyond this the table lists failures only, and at most this many
_REASONS = 10  # failures beyond the table: counted under their most frequent reasons
_UNSENT_NAMED = 10  # after exit 3, the files that failed alone named; the others counted
#: The error of a file a Ctrl-C left without an answer.
_UNCONFIRMED = "interrupted before an answer"
#: The error of a file a Ctrl-C left unsent (every file, at the key's password prompt).
_NOT_SENT = "interrupted before it was sent"
#: The error of the file a Ctrl-C cut while its data set went out: no peer keeps a
#: partial object (``store_scu.PART_WAY``), so it may be sent again as never sent.
_CUT_PART_WAY = "not sent (interrupted part-way: the peer cannot hold a partial object)"
#: What follows the last answer of a file a Ctrl-C stopped from being sent again.
_NOT_RESENT = "interrupted before it was sent again"


class _RetryWait:
    """The objects waiting to be sent again (--retries), as last answered, and
    until when: a Ctrl-C during the wait reports each one's last answer, not
    "unconfirmed" (nothing of them is on the wire; the peer refused them)."""

    def __init__(self) -> None:
        self.results: dict[Path, StoreResult] = {}
        self.until = 0.0

    def heard(self, event: RetryEvent) -> None:
        self.results = {r.path: r for r in event.results}
        self.until = time.monotonic() + event.delay

    def waiting(self) -> dict[Path, StoreResult]:
        """Those still waiting now; none once the wait may have ended (the retry
        may then have sent them: unconfirmed)."""
        return self.results if time.monotonic() < self.until else {}


def _file_size(path: Path | str) -> int:
    """Its size for the progress bar and the totals; 0 for a file gone since it
    was listed (another program's doing), which store_paths then reports."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _sized(results: list[StoreResult], sizes: Sequence[int]) -> Iterator[tuple[StoreResult, int]]:
    """Each result with its file's size as listed (``sizes``, in the order of
    the files, as the results are), else its data set's."""
    if len(results) != len(sizes):
        return ((r, r.size) for r in results)
    return zip(results, sizes, strict=True)


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


#: Off a terminal, wide enough that rich wraps no line: a path or a fingerprint
#: split in two is no longer what a script (or a person's search) looks for.
_UNWRAPPED_WIDTH = 1_000_000


def _console(*, stderr: bool = False) -> Console:
    """A rich console for text that is not ours (paths, a peer's Error Comment, AE
    titles, host names, certificate fields, exception text): print it as a
    ``Text``, never inside markup (``[/var/pacs]`` raised MarkupError,
    ``[link=...]`` hid a hyperlink), and with emoji codes off (a fingerprint's
    ``:CD:`` printed as an emoji)."""
    from rich.console import Console

    console = Console(stderr=stderr, emoji=False, highlight=False)
    if not console.is_terminal:
        console.width = _UNWRAPPED_WIDTH
    return console


def _progress_bar(total_bytes: int, count: int) -> tuple[Progress, TaskID]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("[bold]C-STORE"), BarColumn(),
        TextColumn("{task.fields[done]}/{task.fields[count]} objects"),
        DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=_console(stderr=True),
    )
    # One bar: bytes drive the bar and rate, the object count rides along.
    return progress, progress.add_task("store", total=total_bytes or 1, done=0, count=count)


async def _run(host: str, port: int, *, files: list[str], sizes: array[int],
               net: NetworkOptions, tls: TLSConfig | None, show_progress: bool,
               links: list[SecureLinkEvent],
               retries: int, retry_delay: float, max_async: int,
               finished: list[StoreResult], retry_wait: _RetryWait,
               results: list[StoreResult]) -> list[StoreResult]:
    from dicomnet.services.storage import store_paths

    # rich only for a terminal (and the summary): a --json run starts faster.
    bar = _progress_bar(sum(sizes), len(files)) if show_progress else None
    if bar is not None:
        from rich.text import Text
    done = failures = 0

    def on_progress(result: StoreResult) -> None:
        nonlocal done, failures
        done += 1
        finished.append(result)
        if bar is not None:
            # Its size now (one stat: a terminal's run), as no table of every
            # file's is kept.
            bar[0].update(bar[1], advance=_file_size(result.path) or result.size,
                          done=done)
            failed = not result.ok and not result.dicomdir  # a DICOMDIR is no failure
            failures += failed
            if failures == _TABLE_ROWS + 1 and failed:
                # Thousands of lines would bury the bar: the summary counts the rest.
                bar[0].console.print(Text(f"more than {_TABLE_ROWS} failures: the others "
                                          "are counted in the summary", style="red"))
            elif failed and failures <= _TABLE_ROWS:
                said = in_cli_words(result.error or "")
                bar[0].console.print(Text.assemble(
                    _SKIPPED if result.not_dicom else ("failed", "red"),
                    printable(f" {result.path}: {said}")), soft_wrap=True)

    def on_retry(event: RetryEvent) -> None:
        retry_wait.heard(event)
        # Said even under --json (on stderr): a run that waits must say why.
        line = printable(f"retrying {event.count} object(s) in {event.delay:g} s "
                         f"(attempt {event.attempt} of {event.max_attempts}): "
                         f"{in_cli_words(event.reason)}")
        if bar is not None:
            bar[0].console.print(Text(line, style="yellow"), soft_wrap=True)
        else:
            click.echo(f"dicomnet store: {line}", err=True)

    # The collector leaves start-up's objects alone while the files go (dicomnet.tuning).
    with start_up_left_alone(), bar[0] if bar is not None else contextlib.nullcontext():
        return await store_paths(
            host, port, files, tls=tls, calling_ae_title=net.aet,
            called_ae_title=net.called_aet, timeouts=net.timeouts(), on_progress=on_progress,
            on_secure_link_ready=links.append, retries=retries, retry_delay=retry_delay,
            on_retry=on_retry, listed=True, results=results, max_async_operations=max_async,
        )


#: A file that is not DICOM, as the progress and the table say it: skipped (the
#: summary and --json "skipped" count it so), not failed; in yellow, as what a
#: run passed by (a retry's wait is yellow too), not red.
_SKIPPED = ("skipped", "yellow")


def _stderr_is_terminal() -> bool:
    from rich.console import Console  # rich's test: TTY_COMPATIBLE, FORCE_COLOR, then isatty

    return Console(stderr=True).is_terminal


def _status_text(result: StoreResult, *, converted: bool = False) -> str:
    """The status code, its meaning, and the peer's Error Comment if it sent one;
    with ``converted`` (the table's rows), the syntax the file was converted to
    first (--json has it apart: converted_to)."""
    if result.status is None:
        if result.error == _UNCONFIRMED:
            return "unconfirmed"  # a Ctrl-C: whether it was on the wire is not known
        return "no answer" if result.sent else "not sent"
    text = _code_words(result.status)
    said = _peer_said(result, result.error_comment or "").removeprefix("; ")
    notes = [_converted_words(result) if converted else "", said]
    return text + (f" ({'; '.join(n for n in notes if n)})" if any(notes) else "")


@functools.lru_cache(maxsize=256)
def _code_words(code: int) -> str:
    """"0xB000 Warning: ..." (PS3.7 Annex C, C-STORE's words): looked up once per
    code, not by a ``Status`` made for every object of a run's summary."""
    return f"0x{code:04X} {Status(code, 'storage').description}"


def _answered_converted(result: StoreResult) -> str:
    """" (converted to ...)" after a failed row the peer answered, for a file it
    had converted: what it refused was not the file's own encoding."""
    words = _converted_words(result) if result.status is not None else ""
    return f" ({words})" if words else ""


def _converted_words(result: StoreResult) -> str:
    """"converted to <syntax's name>", or "" for a file sent as it is: one of
    the four uncompressed syntaxes, each named (--json's converted_to has the
    UID)."""
    if result.converted_to is None:
        return ""
    from dicomnet.uids import uid_name

    return f"converted to {uid_name(result.converted_to) or result.converted_to}"


def _peer_said(result: StoreResult, comment: str) -> str:
    """``comment`` then the elements the peer named at fault (Offending Element)."""
    from dicomnet.services.store_compact import stored
    from dicomnet.services.store_scu import offending_words

    # Read as held: the property would keep an empty list in each result without any.
    return comment + offending_words(stored(result, "offending_elements") or (), "; ")


def _print_reasons(console: Console, failed: list[StoreResult]) -> None:
    """Every failure counted under its reason, the most frequent first: a table of
    thousands of rows (a folder of a SOP Class the peer refuses) was unreadable."""
    from collections import Counter

    from rich.text import Text

    reasons = Counter(_failure_text(r) for r in failed).most_common()
    lines = [f"Not stored, by reason ({len(failed)} objects):", *(
        printable(f"  {count:>7}  {reason}") for reason, count in reasons[:_REASONS])]
    if len(reasons) > _REASONS:
        rest = sum(count for _reason, count in reasons[_REASONS:])
        lines.append(f"  {rest:>7}  for {len(reasons) - _REASONS} other reason(s)")
    console.print(Text("\n".join(lines), style="red"), soft_wrap=True)


def _failure_text(result: StoreResult) -> str:
    """A failed row: the status with the peer's comment when one came (not the
    comment alone), and what ``error`` adds after them (a retry's remark:
    ``error`` is the comment, or the status's words, then that remark)."""
    if result.status is None:
        return in_cli_words(result.error or "not sent")
    said = _peer_said(result, result.error_comment or str(Status(result.status, "storage")))
    return _status_text(result) + in_cli_words((result.error or "").removeprefix(said))


@click.command(epilog=EXIT_CODES_EPILOG,
               short_help="Send DICOM files and folders with C-STORE.")
@click.argument("host")
@click.argument("port", type=click.IntRange(1, 65535))
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--retries", type=click.IntRange(0, 100), default=0, show_default=True,
              help="Send again, on a new association, the objects whose failure may pass: "
                   "the link dropped, timed out or was refused before their answer, the "
                   "peer rejected the association as transient, or answered Out of "
                   "Resources (A7xxH). Up to this many more times.")
@click.option("--retry-delay", type=click.FloatRange(0, 60), default=2.0, show_default=True,
              metavar="SECONDS",
              help="Wait before the first retry; doubled at each next one (60 s at most).")
@click.option("--max-async", type=click.IntRange(1, 0xFFFF), default=32, show_default=True,
              help="The asynchronous operations window proposed (PS3.7 D.3.3.3): C-STOREs "
                   "in flight before their answers, as many as the peer grants (most "
                   "grant none: one at a time); 1 for a peer that mishandles windows.")
@network_options("client", port_required=True)
def store(*, host: str, port: int, paths: tuple[Path, ...], retries: int,
          retry_delay: float, max_async: int, net: NetworkOptions) -> None:
    """Send DICOM files to a Storage SCP with C-STORE; folders are searched recursively.

    Files go as they are on disk when the peer accepts their transfer syntax.
    A progress bar shows on a terminal; a summary follows. Exit status 1 if
    any object was not stored, 3 if the association failed before any was
    (the files not sent for a reason of their own, not DICOM, unreadable or
    refused by the peer, are then named, and those sent but never answered,
    whole, which the peer may hold: the first ten; --json lists all). An object the peer
    answered with a warning status (Bxxx, 0107H, 0116H) is stored (it counts
    for exit status 0) and is counted apart, "stored with warnings"; a file
    that is not DICOM is not stored (exit status 1), counted apart too,
    "skipped (not DICOM)".

    In folders, hidden files, DICOMDIRs and a dicomnet store's index.sqlite
    are skipped and links to folders are not followed. A DICOMDIR named
    otherwise (its Media Storage SOP Class 1.2.840.10008.1.3.10, the index of
    a medium: PS3.10 8.6) is passed over too, not failed: it counts apart,
    "DICOMDIR(s) passed over", and for neither total nor exit status. A file reached twice
    (named, and in a folder named) is sent once. A file that is not DICOM, is
    cut short (its data set ends inside an element), or is gone once listed
    (deleted during the password prompt), fails alone, unsent; so do, in
    folders, a symbolic link to nothing, a FIFO, socket or device, and a
    subfolder that cannot be read.

    With --retries, objects lost to a dropped link or a busy peer are sent
    again; failures that would repeat (a rejected certificate, a permanent
    rejection, a data set the peer refuses) are not.

    Ctrl-C aborts the association and still prints the summary (with --json,
    "interrupted": true): the objects the peer confirmed, those waiting for
    --retries with their last answer, those sent and not answered as
    unconfirmed (the peer may hold them), and the others as not sent (the
    one cut part-way too: a peer cannot hold a partial object). Exit
    status 130. SIGTERM (timeout(1), systemd) does the same,
    with exit status 143. At a key's password prompt nothing was sent: Ctrl-C
    prints only --json's document, every object not sent.

    With --json, one document on stdout whatever happens: every object with
    its status or why it was not sent, and "error" and "exit_code" as on
    stderr (a usage error, exit 2, has only "error", "exit_code" and
    "interrupted"). Its keys:

    \b
      peer, calling_aet, called_aet
      tls                   what TLS negotiated (as dicomnet echo --json says),
                            null on plain DICOM; the run's first connection
      tls_connections,      TLS connections made (one per association: a
      tls_resumed           batch of 128 contexts, a retry), and how many of
                            them resumed an earlier one's session (0 on plain)
      total, stored,        files listed (DICOMDIRs aside), stored, not
      failed, retried       stored, and sent more than once (--retries)
      stored_with_warnings, of those stored, with a warning status (Bxxx,
      skipped               0107H, 0116H); of those not stored, files not
                            DICOM (not sent)
      dicomdirs             DICOMDIRs passed over (by their SOP class; not
                            in total, stored nor failed, but in results)
      bytes, seconds        size of the files stored; the run's duration
      interrupted, error,   true after Ctrl-C or SIGTERM; the error line (null
      exit_code             if none); the exit status
      results               one per file, in order:
        path, sop_instance_uid  (null if not DICOM)
        status, status_text     the peer's C-STORE status (null without an
                                answer) and its meaning with the peer's
                                comment, else "not sent", "no answer"
                                (sent) or "unconfirmed" (sent whole, then
                                Ctrl-C)
        ok                      stored (Success or a warning status)
        not_dicom               skipped: not a DICOM Part 10 file
        dicomdir                passed over, not failed: a DICOMDIR (Media
                                Storage Directory), no object to send
        association_failed      not stored because its association failed
                                (the error line's failure, not its own)
        error, error_comment    why not stored (null if stored); the peer's
                                Error Comment (a warning's too)
        size                    its data set's bytes (the file less its
                                preamble and File Meta Information)
        transfer_syntax_uid,    the file's transfer syntax; the one it was
        converted_to            converted to (null: sent as it is)
        sent, attempts,         its C-STORE went out whole, to its last
        retryable               fragment (without a status, the peer may
                                hold it; false for one cut part-way, which
                                it cannot); tries; a failure that --retries
                                would send again
        dropped_meta            File Meta Information elements its data set
                                starts with, left out when sent (PS3.5 7.1),
                                as "(0002,xxxx)" tags; [] when none
        offending_elements      the elements the peer named at fault with its
                                status (Offending Element, PS3.7 C.4), as
                                "(gggg,eeee)" tags; [] when none
        note                    "X changed since it was listed: sent as it
                                is now" (its header read again), or "its
                                File Meta Information names ...: sent as
                                its data set says" (their UIDs differ:
                                PS3.10 7.1), else null
        path_bytes              only for a file name with bytes that are not
                                UTF-8: its exact bytes, base64 (path shows
                                each such byte as \\xff)

    Every string of --json is valid Unicode (strict JSON parsers read it).

    \b
    Examples:
      dicomnet store pacs.example.org 11112 study/ --called-aet PACS
      dicomnet store pacs.example.org 11112 study/ --retries 3
      dicomnet store localhost 2762 a.dcm b.dcm --tls --ca pki/ca.pem \\
          --cert pki/client.pem --key pki/client.key --json
    """
    try:
        from dicomnet.services.store_listing import listed_texts
    except ImportError:
        fail("the storage service (dicomnet.services.storage) is not available in this "
             "installation", EXIT_USAGE)
    try:
        # Their texts: a Path each, kept for the run, took more than its result.
        files = listed_texts(paths)
    except (ValueError, OSError) as exc:
        fail(str(exc), EXIT_USAGE)
    if not files:
        fail("no files found in " + ", ".join(map(str, paths)), EXIT_USAGE)
    sizes = array("q", map(_file_size, files))  # in the files' order, as the results
    tune_malloc_for_streaming()  # this process is ours: see dicomnet.tuning
    show_progress = not net.json and _stderr_is_terminal()
    started = time.perf_counter()
    links: list[SecureLinkEvent] = []
    finished: list[StoreResult] = []
    retry_wait = _RetryWait()
    # store_paths' own results, updated as it goes: after a Ctrl-C, which
    # objects went out (sent) and which did not.
    known: list[StoreResult] = []

    sending = False  # False while at the key's password prompt

    def on_exit(message: str, code: int) -> None:
        # Which objects are stored, for a script (or a person) to resume from;
        # a failure is said on stderr, and --json promises one document.
        if net.json or (is_interruption(code) and sending):
            _report(_unfinished_results(files, finished, message, code, sending=sending,
                                        waiting=retry_wait.waiting(), known=known),
                    host=host, port=port, net=net, sizes=sizes, links=links,
                    seconds=time.perf_counter() - started, interrupted=is_interruption(code),
                    error=message, exit_code=code)
        elif code == EXIT_NETWORK:
            _report_failed_alone(known)

    with cli_session(net.verbose):
        tls = command_tls_config(net, on_exit)  # before the loop: it may ask a password
        sending = True
        results = run_async(lambda: _run(host, port, files=files, sizes=sizes, net=net, tls=tls,
                                         show_progress=show_progress, links=links,
                                         retries=retries, retry_delay=retry_delay,
                                         max_async=max_async,
                                         finished=finished, retry_wait=retry_wait,
                                         results=known),
                            verbose=net.verbose, on_exit=on_exit,
                            sigterm_interrupts=True)
    code = EXIT_FAILURE_STATUS if any(not r.ok and not r.dicomdir for r in results) else EXIT_OK
    _report(results, host=host, port=port, net=net, sizes=sizes, links=links,
            seconds=time.perf_counter() - started, exit_code=code)
    if code != EXIT_OK:
        raise SystemExit(code)


def _unfinished_results(files: Sequence[Path | str], finished: list[StoreResult], error: str,
                        code: int, *, sending: bool,
                        waiting: dict[Path, StoreResult] | None = None,
                        known: list[StoreResult] | None = None) -> list[StoreResult]:
    """What a run that did not end leaves to report, one per file in the order
    of ``files`` (as a run that ended reports them): the objects answered (or
    failed) so far; those ``waiting`` to be sent again (--retries) with their
    last answer; every other file, with ``error``, or after a Ctrl-C:
    unconfirmed if ``known`` (store_paths' results) says it was sent whole, on
    this attempt or an earlier one (the peer may hold it), else not sent (cut
    part-way, the one whose data set was going out)."""
    from dicomnet.services.storage import StoreResult
    from dicomnet.services.store_scu import PART_WAY

    answered = {r.path: r for r in finished}
    waiting = waiting or {}
    listed = {r.path: r for r in known or ()}

    def unanswered(f: Path) -> StoreResult:
        if f in waiting:
            return replace(waiting[f], retryable=False,
                           error=f"{waiting[f].error or 'failed'}; {_NOT_RESENT}")
        if not is_interruption(code):
            return StoreResult(path=f, error=error)
        # What store_paths knows of it (its UID, size, attempts), less its status.
        base = replace(listed.get(f) or StoreResult(path=f), status=None, ok=False,
                       retryable=False)
        if not sending:
            return replace(base, error=_NOT_SENT)
        if base.sent:
            return replace(base, error=_UNCONFIRMED)
        cut = PART_WAY in (listed[f].error or "") if f in listed else False
        return replace(base, error=_CUT_PART_WAY if cut else _NOT_SENT)

    return [answered.get(path) or unanswered(path) for path in map(Path, files)]


def _report_failed_alone(results: list[StoreResult]) -> None:
    """After exit 3 (the association failed before any object was stored), the
    files that failed for a reason of their own, not the association's: not
    DICOM, unreadable, refused by the peer (no context for their SOP Class or
    transfer syntax), not convertible. The error line says why the others were
    not stored; these would fail again on a new association. The first few,
    with why; then those sent whose answer never came, which the peer may
    hold. --json has them all."""
    alone = [r for r in results
             if not r.ok and r.error and not r.association_failed and not r.dicomdir]
    # Sent whole, then the association failed before their answer: the peer may
    # hold them (the error line names a message ID at most, not a file). One cut
    # part-way is not sent, as the error line's failure says.
    unanswered = [r for r in results if r.sent and r.status is None and r.association_failed]
    lines: list[str] = []
    if alone:
        lines += [f"{len(alone)} file(s) not sent for a reason of their own:", *(
            printable(f"  {r.path}: {in_cli_words(r.error or '')}")
            for r in alone[:_UNSENT_NAMED])]
        if len(alone) > _UNSENT_NAMED:
            lines.append(f"  and {len(alone) - _UNSENT_NAMED} more (--json lists them all)")
    if unanswered:
        lines += [f"{len(unanswered)} file(s) sent and not answered (the peer may hold them):",
                  *(printable(f"  {r.path}") for r in unanswered[:_UNSENT_NAMED])]
        if len(unanswered) > _UNSENT_NAMED:
            lines.append(f"  and {len(unanswered) - _UNSENT_NAMED} more (--json lists them all)")
    if not lines:
        return
    from rich.text import Text

    _console().print(Text("\n".join(lines)), soft_wrap=True)


def _report(results: list[StoreResult], *, host: str, port: int, net: NetworkOptions,
            sizes: Sequence[int], links: list[SecureLinkEvent], seconds: float,
            exit_code: int, interrupted: bool = False, error: str | None = None) -> None:
    """The summary: a table and a line on a terminal, or the JSON document (the
    same keys whether the run ended, failed or was interrupted)."""
    security = next((link.info for link in links if link.info is not None), None)
    ok = [r for r in results if r.ok]
    # Passed over as a folder's file named DICOMDIR is (PS3.10 8.6): no object.
    dicomdirs = sum(1 for r in results if r.dicomdir)
    failed = [r for r in results if not r.ok and not r.dicomdir]
    retried = sum(1 for r in results if r.attempts > 1)
    warnings = sum(1 for r in ok if r.warning)
    skipped = sum(1 for r in failed if r.not_dicom)
    sent_bytes = sum(size for r, size in _sized(results, sizes) if r.ok)
    if net.json:
        print_json({
            "peer": f"{host}:{port}",
            "calling_aet": net.aet,
            "called_aet": net.called_aet,
            "tls": security.to_dict() if security is not None else None,
            # Every TLS connection of the run (a batch of 128 contexts, a retry):
            # "tls" describes the first; these say how many resumed a session.
            "tls_connections": sum(1 for link in links if link.info is not None),
            "tls_resumed": sum(1 for link in links
                               if link.info is not None and link.info.session_resumed),
            "total": len(results) - dicomdirs,
            "stored": len(ok),
            "failed": len(failed),
            "retried": retried,
            "stored_with_warnings": warnings,
            "skipped": skipped,
            "dicomdirs": dicomdirs,
            "bytes": sent_bytes,
            "seconds": round(seconds, 3),
            "interrupted": interrupted,
            "error": error,
            "exit_code": exit_code,
            # Each made as it is written, none kept (Streamed).
            "results": Streamed(lambda: map(_json_result, results), len(results)),
        })
    else:
        from rich.table import Table
        from rich.text import Text

        console = _console()
        # After a Ctrl-C, the files never answered are counted, not listed (there
        # may be thousands); --json lists them all.
        unconfirmed = [r for r in results if interrupted and r.error == _UNCONFIRMED]
        unsent = [r for r in results if interrupted and r.error == _NOT_SENT]
        shown = [r for r in results
                 if not interrupted or r.error not in (_UNCONFIRMED, _NOT_SENT)]
        rows = shown if len(shown) <= _TABLE_ROWS else [r for r in shown
                                                         if not r.ok and not r.dicomdir]
        listed = {id(r) for r in rows[:_TABLE_ROWS]}
        size_of = {id(r): size for r, size in _sized(results, sizes) if id(r) in listed}
        if rows:
            cut = rows is not shown and len(rows) > _TABLE_ROWS
            table = Table(title=None if rows is shown else "Failed objects" + (
                f" (the first {_TABLE_ROWS} of {len(rows)}; --json lists them all)"
                if cut else ""))
            table.add_column("file", overflow="fold")
            table.add_column("status", overflow="fold")
            table.add_column("size", justify="right", no_wrap=True)
            for r in rows[:_TABLE_ROWS]:
                status = (Text(printable(_status_text(r, converted=True))) if r.ok
                          else Text(printable(_failure_text(r) + _answered_converted(r)),
                                    # Passed over, not failed: plain, as a stored row;
                                    # skipped (not DICOM): not failed either.
                                    style="" if r.dicomdir else _SKIPPED[1] if r.not_dicom
                                    else "red"))
                table.add_row(Text(printable(str(r.path))), status,
                              _human_bytes(size_of.get(id(r), r.size)))
            console.print(table)
            if cut:
                _print_reasons(console, rows)
        rate = sent_bytes / seconds if seconds > 0 else 0.0
        colour = "green" if not failed else "red"
        console.print(Text.assemble(
            ("Interrupted. ", "red") if interrupted else "",
            (f"Stored {len(ok)} of {len(results) - dicomdirs} objects", colour),
            printable(f" ({_human_bytes(sent_bytes)}) to {net.called_aet}@{host}:{port} in ")
            + f"{seconds:.2f} s ({_human_bytes(rate)}/s)"
            + (", over TLS" if net.tls else ", not encrypted")
            + (f"; {warnings} stored with warnings" if warnings else "")
            + (f"; {skipped} skipped (not DICOM)" if skipped else "")
            + (f"; {dicomdirs} DICOMDIR(s) passed over" if dicomdirs else "")
            + (f"; {retried} tried more than once" if retried else ""),
        ), soft_wrap=True)
        if unconfirmed:
            console.print(Text(f"{len(unconfirmed)} object(s) not confirmed: sent, then "
                               "interrupted before their answer (the peer may hold them)"),
                          soft_wrap=True)
        if unsent:
            console.print(Text(f"{len(unsent)} object(s) not sent: interrupted before "
                               "their turn"), soft_wrap=True)
        if security is not None:
            console.print(Text("\n".join(["Secure link", *map(
                printable, describe_security(security))])),
                          soft_wrap=True)


def _json_result(result: StoreResult) -> dict[str, object]:
    """One object of --json's "results": its fields, its error in the words of
    the error line (the CLI's flags), a path with bytes that are not UTF-8 also
    as path_bytes (jsontext)."""
    fields = result.to_dict()
    # Its path as the result keeps it, the text of the Path that ``path`` would
    # make (store_paths' results hold it so: store_compact): no Path parsed per object.
    return (fields | path_fields("path", str(fields["path"]))
            | {"status_text": _status_text(result),
               "error": result.error and in_cli_words(result.error)})
