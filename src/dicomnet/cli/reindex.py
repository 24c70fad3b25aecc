"""``dicomnet reindex``: make a store's index agree with its files again."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from dicomnet.cli.common import (
    EXIT_FAILURE_STATUS,
    EXIT_USAGE,
    REINDEX_EXIT_CODES_EPILOG,
    cli_session,
    fail,
    print_json,
)
from dicomnet.cli.exits import interruption
from dicomnet.cli.jsontext import path_fields
from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage.cleanup import cleanup_stale
from dicomnet.storage.files import StorageError
from dicomnet.storage.index import ReindexProgress, StorageIndex
from dicomnet.storage.lock import StoreLock

__all__ = ["reindex"]


@click.command(epilog=REINDEX_EXIT_CODES_EPILOG,
               short_help="Make a store's index agree with its files.")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--no-prune", is_flag=True,
              help="Keep the rows of files that are gone (default: drop them).")
@click.option("--create", is_flag=True,
              help=f"Build a new index when FOLDER has no {INDEX_NAME} (lost or deleted).")
@click.option("--repair", is_flag=True,
              help="Rewrite the header of each file whose File Meta Information names "
                   "Explicit VR over an Implicit VR data set (atomically: a new file "
                   "renamed over it). Reads every file's header, indexed ones too.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON: folder, added, removed, updated (rows of files "
                   "replaced since they were written, read again), skipped, instances, "
                   "stores_skipped (nested stores, relative to FOLDER), mislabelled and "
                   "relabelled (files, relative to FOLDER), not_relabelled (those --repair "
                   "could not relabel: file and reason), temporaries_removed (stale "
                   "temporary files of interrupted stores, removed). A file name's "
                   "bytes that are not UTF-8 show as \\xff; folder_bytes then holds "
                   "FOLDER's exact bytes (base64).")
@click.option("-v", "--verbose", count=True,
              help="-v: say which files were skipped and why; -vv: debug.")
def reindex(*, folder: Path, no_prune: bool, create: bool, repair: bool, as_json: bool,
            verbose: int) -> None:
    """Make the index of a store (the --output folder of dicomnet serve) agree
    with its files.

    Adds a row, read from the file, for each stored object that has none (lost
    when a server was killed between storing an object and indexing it, or with
    a deleted index); drops the rows of files that are gone, unless --no-prune;
    updates the row of a file whose size is not its row's (a server killed
    between replacing a stored copy and indexing the new one).
    Files that are not DICOM Part 10, or cannot be read, are counted as skipped.
    The temporary files of stores that were interrupted (a server killed while
    receiving) are removed and counted, as the server does when it starts.
    A folder below FOLDER that is a store of its own (it holds its own
    index.sqlite, or another server uses it) is not entered, and said.

    A file whose header says Explicit VR Little Endian over a data set in
    Implicit VR (an older dicomnet stored such data sets as a peer sent them)
    is indexed as Implicit VR Little Endian, what it is, and named in the
    summary (mislabelled); its header is left as it is unless --repair, which
    rewrites it to name its data set's syntax, as dicomnet serve writes one
    today. reindex changes no file of the archive unless asked to.

    Run it with the server stopped: while a server uses FOLDER (it holds a
    lock on it), reindex refuses (exit 2). Interrupted (Ctrl-C, SIGTERM), it
    keeps the rows written so far, each of a file it read; run it again to
    finish.

    \b
    Examples:
      dicomnet reindex dicomnet-store
      dicomnet reindex dicomnet-store --create --json    (after index.sqlite was deleted)
      dicomnet reindex dicomnet-store --repair           (relabel mislabelled files)
    """
    if not folder.is_dir():
        fail(f"{folder} is not a folder", EXIT_USAGE)
    path = folder / INDEX_NAME
    if not path.is_file() and not create:
        fail(f"{folder} holds no {INDEX_NAME}: not a dicomnet store "
             "(--create builds a new index from its files)", EXIT_USAGE)
    with cli_session(verbose):
        try:
            lock = StoreLock(folder)  # a server using the folder holds it
            try:
                # Held: no transfer is under way, what is left was interrupted. A
                # kill -9 during a large one left its size hidden until a restart.
                stale = cleanup_stale(folder)
                with StorageIndex(path) as index:
                    before = index.count()["instances"]
                    interrupted: tuple[str, int] | None = None
                    try:
                        with _progress(not as_json) as on_progress:
                            result = index.reindex(folder, prune=not no_prune, repair=repair,
                                                   on_progress=on_progress)
                    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (exits.Terminated)
                        interrupted = _interrupted(exc, folder, before,
                                                   index.count()["instances"], stale)
                    else:
                        instances = index.count()["instances"]
            finally:
                lock.release()
        except StorageError as exc:
            fail(f"cannot reindex {folder}: {str(exc).removeprefix(f'{folder}: ')}", EXIT_USAGE)
    if interrupted is not None:
        fail(*interrupted)
    if as_json:
        print_json({**path_fields("folder", folder), "added": result.added,
                    "removed": result.removed, "updated": result.updated,
                    "skipped": result.skipped, "instances": instances,
                    "stores_skipped": list(result.nested),
                    "mislabelled": list(result.mislabelled),
                    "relabelled": list(result.relabelled),
                    "not_relabelled": [{"file": relative, "reason": reason}
                                       for relative, reason in result.not_relabelled],
                    "temporaries_removed": stale})
        _exit(result.not_relabelled)
        return
    for nested in result.nested:
        click.echo(f"{folder / nested}: skipped, a store of its own (its own {INDEX_NAME}, "
                   "or in use by another server): reindex it on its own")
    done, why = set(result.relabelled), dict(result.not_relabelled)
    left = [f for f in result.mislabelled if f not in done]
    for relative in result.relabelled:
        click.echo(f"{folder / relative}: relabelled Implicit VR Little Endian, its data "
                   "set's transfer syntax (its header said Explicit VR)")
    for relative in left:
        click.echo(f"{folder / relative}: its header says Explicit VR over an Implicit VR "
                   "data set: indexed as Implicit VR Little Endian, the file left as it is"
                   + (f"; not relabelled: {why[relative]}" if relative in why
                      else "" if repair else " (--repair relabels it)"))
    click.echo(f"{folder}: {result.added} row(s) added, {result.removed} removed, "
               + (f"{result.updated} updated (a file changed since its row was written); "
                  if result.updated else "")
               + f"{result.skipped} file(s) skipped; {instances} instance(s) indexed"
               + (f"; {stale} stale temporary file(s) removed" if stale else ""))
    _exit(result.not_relabelled)


@contextlib.contextmanager
def _progress(wanted: bool) -> Iterator[Callable[[ReindexProgress], None] | None]:
    """A line on stderr, on a terminal only (not with --json), saying how far the
    walk is: a store of many thousand files takes minutes, which must not pass
    in silence. Gone once done: the summary follows."""
    from rich.console import Console  # rich's test: it honours TTY_COMPATIBLE and the like

    console = Console(stderr=True, emoji=False, highlight=False)
    if not wanted or not console.is_terminal:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                   console=console, transient=True)
    task = bar.add_task("reading the store's files")

    def said(progress: ReindexProgress) -> None:
        bar.update(task, description=(
            f"{progress.files} file(s) read: {progress.added} row(s) added, "
            f"{progress.skipped} skipped"
            + (f"; {progress.removed} row(s) of files gone removed" if progress.removed
               else "")))

    with bar:
        yield said


def _interrupted(exc: KeyboardInterrupt, folder: Path, before: int, now: int,
                 stale: int) -> tuple[str, int]:
    """The ``error:`` line and exit code of a reindex interrupted: what the index
    holds, counted in it (rows are written in batches: the progress line's rows
    added may be ahead of it), and how to finish."""
    message, code = interruption(exc)
    return (f"{message}: the rows written so far are kept, each of a file read (the "
            f"index holds {now} instance(s), {before} before this run"
            + (f"; {stale} stale temporary file(s) removed" if stale else "")
            + f"); 'dicomnet reindex {folder}' again does the rest"), code


def _exit(not_relabelled: tuple[tuple[str, str], ...]) -> None:
    """A repair that left files mislabelled did not do what was asked: exit 1,
    as store does for objects not stored (the summary says which, and why)."""
    if not_relabelled:
        raise SystemExit(EXIT_FAILURE_STATUS)
