"""What the index leaves behind when it stops writing a file copied over under it.

It dropped its write-ahead log by truncating ``index.sqlite-wal``, but left the
WAL-index (``-shm``), which every connection trusts while one has the database
open, saying the log held its frames: another program's connection then failed
with "disk I/O error" (its ``PRAGMA wal_checkpoint(FULL)``, its reads and
writes), as did any new one, until every connection had closed; and the
connections that had read the index before (the server's own among them) went on
answering from pages of the old index. Now the WAL-index's header is cleared
too, under the write lock, so each connection rebuilds it from the emptied log
(sqlite.org walformat.html, "Recovery") and reads the copy.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage.index import StorageIndex
from tests.storage.dicomfiles import make_image
from tests.storage.helpers import copy_file, index_backup, index_rows, indexed_uids

#: Another program's connection to the index, kept open: one SQL statement per
#: line in, one line out ("OK <rows>" or "ERR <message>").
_PEER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
for line in sys.stdin:
    try:
        print("OK", db.execute(line).fetchall(), flush=True)
    except sqlite3.Error as exc:
        print("ERR", exc, flush=True)
db.close()
"""


class _Peer:
    def __init__(self, path: Path) -> None:
        self._process = subprocess.Popen([sys.executable, "-c", _PEER, str(path)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True)

    def ask(self, sql: str) -> str:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(sql + "\n")
        self._process.stdin.flush()
        return self._process.stdout.readline().strip()

    def close(self) -> None:
        self._process.communicate(timeout=30)  # its input closed: it closes and exits
        assert self._process.returncode == 0


def test_a_copy_over_the_index_leaves_a_log_every_connection_reads(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "store"
    rows = index_rows(root, 40)
    backup, wanted = index_backup(tmp_path, index_rows(tmp_path / "other", 3, 101))
    path = root / INDEX_NAME
    with StorageIndex(path) as index, caplog.at_level(logging.INFO, logger="dicomnet"):
        assert index.add_instances(rows[:30]) == 30
        peer = _Peer(path)
        try:
            assert peer.ask("SELECT count(*) FROM instance") == "OK [(30,)]"
            copy_file(backup, path)  # cp: written in place
            assert index.add_instances(rows[30:]) == 0  # seen: the writes stop
            # The server's own reads (C-FIND) answer from the copy.
            assert index.count()["instances"] == 3
            assert index.get_instance(str(make_image(1).SOPInstanceUID)) is None
            # Another program's connection, open all along.
            assert peer.ask("PRAGMA integrity_check") == "OK [('ok',)]"
            assert peer.ask("SELECT count(*) FROM instance") == "OK [(3,)]"
            assert peer.ask("PRAGMA wal_checkpoint(FULL)") == "OK [(0, 0, 0)]"
            assert indexed_uids(path) == wanted  # a new connection, while both run
            # Another program's write goes into the copy, and stays.
            assert peer.ask("DELETE FROM instance WHERE sop_instance_uid = "
                            f"'{wanted[0]}'") == "OK []"
            assert indexed_uids(path) == wanted[1:]
        finally:
            peer.close()
    assert indexed_uids(path) == wanted[1:]  # once everything closed
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(INDEX_NAME)) \
        == [INDEX_NAME]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 2 and errors[0].startswith(f"index {path} was overwritten"), errors
    with StorageIndex(path) as index:  # what the operator runs next: reindex
        result = index.reindex(root)
        assert (result.added, result.removed) == (40, 2)
    assert indexed_uids(path) == sorted(str(make_image(n).SOPInstanceUID) for n in range(1, 41))
