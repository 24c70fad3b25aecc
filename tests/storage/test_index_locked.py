"""The index's write lock held by another program (an ``sqlite3`` shell left in
a transaction): the wait is said after a second, naming the process, and a
failure past its end says who held it and what to do."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage.files import StorageError
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.index_locks import index_writers
from dicomnet.storage.transaction import Transaction
from tests.cli.helpers import run_cli
from tests.cli.test_reindex import _store

# Holds a write transaction on the index given, says so, and ends it after the
# seconds given (a large number: when its stdin closes).
_HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("CREATE TABLE IF NOT EXISTS held (x)")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


@contextlib.contextmanager
def _hold(index: Path, seconds: float, *, kill: bool = False
          ) -> Iterator[subprocess.Popen[str]]:
    """A process holding the index's write lock for ``seconds``, waited for after
    (``kill``: killed instead)."""
    with subprocess.Popen([sys.executable, "-c", _HOLDER, str(index), str(seconds)],
                          stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            yield holder
            if not kill:
                holder.wait(seconds + 10)
        finally:
            holder.kill()


@pytest.fixture
def index_path(tmp_path: Path) -> Path:
    path = tmp_path / INDEX_NAME
    StorageIndex(path).close()
    return path


@pytest.fixture
def held(index_path: Path) -> Iterator[subprocess.Popen[str]]:
    with _hold(index_path, 60, kill=True) as holder:
        yield holder


def test_writer_named_from_proc_locks(index_path: Path,
                                      held: subprocess.Popen[str]) -> None:
    writers = index_writers(index_path)
    assert len(writers) == 1 and writers[0].startswith(f"process {held.pid} (")
    held.kill()
    held.wait()
    assert index_writers(index_path) == []


def test_wait_said_and_failure_names_the_holder(index_path: Path, held: subprocess.Popen[str],
                                               caplog: pytest.LogCaptureFixture) -> None:
    with StorageIndex(index_path) as index, caplog.at_level(logging.WARNING, "dicomnet"):
        db = index._db  # the index's own write connection
        db.execute("PRAGMA busy_timeout=1500")  # its 30 s, cut short for the test
        with pytest.raises(StorageError) as failed, Transaction(db, index_path):
            pass
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 1500  # as it was
    message = str(failed.value)
    assert message.startswith(f"index transaction failed: database is locked; process "
                              f"{held.pid} (")
    assert message.endswith(") held its write lock through a 2 s wait: end that program's "
                            "transaction, or close it, and try again")
    waits = [r.getMessage() for r in caplog.records if "waiting up to" in r.getMessage()]
    assert waits == [f"index {index_path} is locked by {index_writers(index_path)[0]}: "
                     "waiting up to 2 s for it to end its transaction"]


def test_lock_released_during_the_wait(index_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    with _hold(index_path, 1.5), StorageIndex(index_path) as index, \
            caplog.at_level(logging.WARNING, "dicomnet"):
        index._db.execute("PRAGMA busy_timeout=20000")
        with Transaction(index._db, index_path) as db:
            db.execute("CREATE TABLE after_wait (x)")
        assert index._db.execute("PRAGMA busy_timeout").fetchone()[0] == 20000
    assert any("waiting up to 20 s" in r.getMessage() for r in caplog.records)


def test_no_wait_no_word(index_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with StorageIndex(index_path) as index, caplog.at_level(logging.WARNING, "dicomnet"):
        with Transaction(index._db, index_path) as db:
            db.execute("CREATE TABLE quick (x)")
        assert index._db.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert not caplog.records


def test_reindex_says_it_waits(tmp_path: Path) -> None:
    """``dicomnet reindex`` while a browser holds the index: a line after a second
    naming it, then done once it lets go (it was 30 s of silence, then a failure
    that named nobody)."""
    store = tmp_path / "store"
    _store(store, 1)  # a file without its row: reindex writes one
    StorageIndex(store / INDEX_NAME).close()
    with _hold(store / INDEX_NAME, 2) as holder:
        result = run_cli("reindex", store)
    assert result.exit_code == 0, result.output
    assert f"is locked by process {holder.pid} (" in result.stderr
    assert "waiting up to 30 s" in result.stderr
    assert result.stdout.strip().endswith("1 row(s) added, 0 removed, 0 file(s) skipped; "
                                          "1 instance(s) indexed")
