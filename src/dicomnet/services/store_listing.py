"""Which files ``dicomnet store`` sends from the paths it is given: files
named, and every entry below the folders named (``collect_files``), and why one
of them could not be read, in plain words (``not_read``)."""

from __future__ import annotations

import contextlib
import operator
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from ..errors import ConfigurationError
from ..storage.files import StorageError

__all__ = ["collect_files", "listed_texts", "not_read"]


def collect_files(paths: Iterable[Path | str] | Path | str) -> list[Path]:
    """Files named, and every file below the folders named (recursive, each folder's
    files in the order of their paths' parts, as ``sorted(folder.rglob("*"))``).
    One path may be given alone: a str is one path, not a sequence of letters
    (``"/"`` first, the whole disk listed).

    Hidden files, DICOMDIRs and a dicomnet store's index (``index.sqlite`` and the
    files SQLite keeps beside it) in folders are left out; links to files are
    followed, links to folders are not (no cycles). A link to nothing, a FIFO,
    a socket, a device and a subfolder that cannot be listed are listed all the
    same, for ``store_paths`` to fail each alone and say why (a link whose file
    was moved away is an object the user meant to send). One ``scandir`` per folder:
    an SCU reads this list before it can propose anything, so it is on the clock.
    A file reached twice (named and in a folder named, or as ``a/x`` and
    ``./a/x``) is listed once, where first reached.
    """
    return _collect(paths, Path)


def listed_texts(paths: Iterable[Path | str] | Path | str) -> list[str]:
    """``collect_files``' listing as the paths' texts (``str(path)``), no
    ``Path`` kept: a ``Path`` holds its parts, several times its text, and
    CPython interns each part (each file's name: the table of interned strings
    grows to hold them all). What ``store_paths`` and ``dicomnet store`` keep of
    a run of hundreds of thousands of files."""
    return _collect(paths, str)  # str of a str: the same object, no call of ours


def _text(path: str) -> str:
    """``path`` as ``str(Path(path))`` spells it, without making the ``Path``: a
    path listed is a folder's text as a ``Path`` spells it, joined to names by
    ``scandir``, so only the "./" that joins to "." is spelled otherwise."""
    return path[2:] if path.startswith("./") else path


_Listed = TypeVar("_Listed", Path, str)


def _collect(paths: Iterable[Path | str] | Path | str, make: Callable[[str], _Listed]
             ) -> list[_Listed]:
    # Texts, as their Paths spell them, made what the caller wants once unique.
    found: list[str] = []
    for p in map(Path, [paths] if isinstance(paths, str | Path) else paths):
        try:
            mode = os.stat(p).st_mode
        except OSError:
            mode = 0
        if stat.S_ISDIR(mode):
            folder = os.fspath(p)
            try:
                # Only "." lists paths spelled otherwise ("./x"): the others' are
                # kept as they come, without a call each.
                below = _files_below(folder)
                found += below if folder != "." else map(_text, below)
            except OSError as exc:
                raise ConfigurationError(f"cannot read folder {p}: {exc.strerror}") from exc
        elif stat.S_ISREG(mode):
            found.append(os.fspath(p))
        elif mode:
            raise ConfigurationError(f"not a file or folder: {p}")
        else:
            raise ConfigurationError(f"no such file or folder: {p}")
    here = os.getcwd()
    # os.path.join(here, path), written out: two Python calls a file fewer.
    prefix = here if here.endswith("/") else here + "/"
    seen: set[str] = set()
    unique = []
    for path in found:
        # Spelled alike without touching the disk: "." and repeated slashes go, ".."
        # stays (through a link, "l/../x" is another file than "x"). Most have
        # neither to go: the key is then the text after its root, with no loop.
        joined = path if path.startswith("/") else prefix + path
        key = joined[1:] if ("//" not in joined and "/./" not in joined
                             and not joined.endswith(("/", "/."))) else "/".join(
            part for part in joined.split("/") if part not in ("", "."))
        if key not in seen:
            seen.add(key)
            unique.append(make(path))
    return unique


#: Files of a folder that are no DICOM object: a DICOMDIR (PS3.10 8.6), and a
#: dicomnet store's index with its journal (storage.index.INDEX_NAME, not imported
#: here: it would load sqlite3), so that a store sent as a folder sends its objects.
_NOT_OBJECTS = frozenset({"DICOMDIR", "index.sqlite", "index.sqlite-wal", "index.sqlite-shm",
                          "index.sqlite-journal"})


_NAME = operator.attrgetter("name")


def _files_below(folder: str) -> Iterator[str]:
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=_NAME)
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                try:
                    below = list(_files_below(entry.path))
                except OSError:  # listed all the same: it fails alone, saying why
                    below = [entry.path]
                yield from below
            elif entry.name in _NOT_OBJECTS or entry.name.startswith("."):
                continue
            elif entry.is_file() or not entry.is_dir():
                # A link to nothing, a FIFO, a socket, a device: listed, so that
                # its failure is told (a link whose file was moved away is an
                # object not sent); a link to a folder is not followed.
                yield entry.path
        except OSError:  # vanished meanwhile: as rglob, skip it
            continue


def not_read(path: Path, exc: StorageError | OSError) -> str:
    """Why ``path`` could not be read, in plainer words than the system's where
    it has them: a link to nothing ("No such file or directory", of a path that
    is there), a socket ("No such device or address"), a folder that cannot be
    listed ("Is a directory")."""
    mode = 0
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISSOCK(mode):
            return f"{path} is not a regular file but a socket"
        if stat.S_ISDIR(mode):
            with os.scandir(path):
                pass
    except FileNotFoundError:
        if os.path.islink(path):
            with contextlib.suppress(OSError):
                target = os.path.join(os.path.dirname(path), os.readlink(path))
                return f"{path} is a symbolic link to {target}, which does not exist"
    except OSError as again:
        if stat.S_ISDIR(mode):
            return f"cannot read folder {path}: {again.strerror or again}"
    return str(exc)
