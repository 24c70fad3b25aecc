"""storage.instances without a network: where an instance is, and which index
rows are written when names and rows come in different orders."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from dicomnet.storage.files import AtomicWriter, CommitOutcome, DuplicatePolicy, StorageError
from dicomnet.storage.index import NewInstance, StorageIndex
from dicomnet.storage.instances import InstanceLocator

UID = "1.2.826.0.1.3680043.8.498.9.5"


@pytest.fixture
def locator(tmp_path: Path) -> Any:
    root = tmp_path / "store"
    root.mkdir()
    index = StorageIndex(root / "index.sqlite")
    yield InstanceLocator(root, index, lambda p: p.relative_to(root).as_posix())
    index.close()


def _name(locator: InstanceLocator, path: Path, data: bytes,
          policy: DuplicatePolicy = DuplicatePolicy.OVERWRITE) -> tuple[Any, int | None]:
    writer = AtomicWriter(path)
    writer.write(data)
    writer.make_durable()
    return locator.commit(writer, UID, path, policy)


def _row(label: str) -> NewInstance:
    return cast(NewInstance, label)  # the locator never looks inside a row


def test_a_late_row_of_an_older_name_is_dropped(tmp_path: Path, locator: Any) -> None:
    """Named twice; the newer name's row is written first, in a batch of its own:
    the older one's, arriving after, must not replace it."""
    path = tmp_path / "store" / "a" / "x.dcm"
    _, first = _name(locator, path, b"one")
    _, second = _name(locator, path, b"two")
    assert (first, second) == (1, 2)
    newer, older = (_row("two"), UID, second), (_row("one"), UID, first)
    assert locator.rows_to_write([newer]) == ["two"]
    locator.rows_written([newer])
    assert locator.rows_to_write([older]) == []
    locator.rows_written([older])
    assert locator._named == {}  # nothing kept once every row came


def test_a_name_whose_row_never_comes_is_forgotten(tmp_path: Path, locator: Any) -> None:
    path = tmp_path / "store" / "a" / "x.dcm"
    _, first = _name(locator, path, b"one")
    locator.forget(UID, first)
    assert locator._named == {}


def test_another_path_is_found_until_the_index_knows(tmp_path: Path, locator: Any) -> None:
    """Named at a/x.dcm, not indexed yet: the same instance for b/x.dcm is a
    duplicate (KEEP: the new file discarded, the existing path reported)."""
    root = tmp_path / "store"
    _name(locator, root / "a" / "x.dcm", b"one")
    result, generation = _name(locator, root / "b" / "x.dcm", b"two", DuplicatePolicy.KEEP)
    assert (result.outcome, result.path, generation) == (
        CommitOutcome.DUPLICATE_KEPT, root / "a" / "x.dcm", None)
    assert not (root / "b" / "x.dcm").exists()
    assert sorted(p.name for p in (root / "b").iterdir()) == []  # no temporary file


def test_overwrite_elsewhere_removes_the_old_file(tmp_path: Path, locator: Any) -> None:
    root = tmp_path / "store"
    _name(locator, root / "a" / "x.dcm", b"one")
    result, _ = _name(locator, root / "b" / "x.dcm", b"two")
    assert result.stored
    assert not (root / "a" / "x.dcm").exists()
    assert (root / "b" / "x.dcm").read_bytes() == b"two"


def test_an_unreadable_index_does_not_stop_storing(
    tmp_path: Path, locator: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    """The index cannot be read: the object is stored (duplicates then found at
    the same path only), said once, and again once it can."""
    root = tmp_path / "store"
    real = locator._index.locate

    def broken(uid: str) -> str | None:
        raise StorageError("index: database disk image is malformed")

    locator._index.locate = broken
    result, _ = _name(locator, root / "a" / "x.dcm", b"one")
    assert result.stored
    locator._named.clear()
    result, _ = _name(locator, root / "a" / "x.dcm", b"two", DuplicatePolicy.KEEP)
    assert result.outcome is CommitOutcome.DUPLICATE_KEPT  # the same path still is
    locator._index.locate = real
    locator._named.clear()
    _name(locator, root / "b" / "x.dcm", b"three", DuplicatePolicy.KEEP)
    messages = [r.getMessage() for r in caplog.records if r.name == "dicomnet.storage"]
    assert len([m for m in messages if "cannot look up stored instances" in m]) == 1
    assert len([m for m in messages if "index readable again" in m]) == 1
    assert not list((root / "a").glob(".*"))
