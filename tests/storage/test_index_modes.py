"""The index holds patient names and IDs: it and the files SQLite puts beside it
are readable by their owner only, as the stored objects are (review finding: they
were made 0644 under the usual umask)."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME, StorageSCP, store_paths
from dicomnet.storage.index import SCHEMA_VERSION, StorageIndex
from dicomnet.storage.index_tables import SCHEMA
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import make_image, write_part10


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most services run with, which leaves new files readable by all."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_index_and_its_wal_and_shm_are_owner_only_after_a_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    paths = [write_part10(tmp_path / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
             for n in range(3)]

    async def main() -> dict[str, int]:
        scp = StorageSCP(root)
        async with running_server(providers=[scp]) as server:
            results = await store_paths("127.0.0.1", server.port, paths,
                                        called_ae_title="DICOMNET-SCP")
            assert [r.status for r in results] == [0, 0, 0]
            scp.flush_index()
            # While the server runs: SQLite removes -wal and -shm at the last close.
            return {name: _mode(root / name)
                    for name in (INDEX_NAME, INDEX_NAME + "-wal", INDEX_NAME + "-shm")}

    modes = run(main())
    assert modes == {INDEX_NAME: 0o600, INDEX_NAME + "-wal": 0o600, INDEX_NAME + "-shm": 0o600}
    assert {_mode(p) for p in root.rglob("*.dcm")} == {0o600}
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.count()["instances"] == 3


def test_an_index_others_may_read_is_made_owner_only(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """As an older version left it: 0644, with -wal and -shm of a server still
    running (or killed)."""
    path = tmp_path / INDEX_NAME
    other = sqlite3.connect(path)
    try:
        other.execute("PRAGMA journal_mode=WAL")
        # An index (not some other database, which is refused).
        other.executescript(SCHEMA)
        other.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        other.commit()
        names = (INDEX_NAME, INDEX_NAME + "-wal", INDEX_NAME + "-shm")
        assert {_mode(tmp_path / name) for name in names} == {0o644}
        with caplog.at_level(logging.INFO, logger="dicomnet.storage"):
            StorageIndex(path).close()
        assert {name: _mode(tmp_path / name) for name in names} == dict.fromkeys(names, 0o600)
    finally:
        other.close()
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO
            and "readable by other accounts (mode 0644): now 0600" in r.getMessage()]
    assert len(said) == 3, said
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dicomnet.storage"):
        StorageIndex(path).close()  # owner-only already: nothing to say
    assert not [r for r in caplog.records if "readable by other accounts" in r.getMessage()]


def test_a_new_index_is_owner_only_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / INDEX_NAME
    with StorageIndex(path):
        assert _mode(path) == 0o600
        assert _mode(tmp_path / (INDEX_NAME + "-wal")) == 0o600
