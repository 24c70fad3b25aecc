"""storage.instances without a network: where an instance is, and which index
rows are written when names and rows come in different orders."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any, cast

import pytest

from dicomnet.storage import instances
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


def _located(locator: Any, paths: dict[str, str]) -> None:
    """The index names ``paths[uid]`` for each instance, and records the size of
    the file there when asked (as its row would)."""
    root = locator._root

    def locate_sized(uid: str) -> tuple[str, int] | None:
        relative = paths.get(uid)
        if relative is None:
            return None
        path = root / relative
        return relative, path.stat().st_size if path.is_file() else 0

    locator._index.locate = paths.get
    locator._index.locate_sized = locate_sized


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


def test_copies_wait_for_a_name_that_settles(tmp_path: Path, locator: Any) -> None:
    """A name elsewhere that never settles (its folder sync failed) keeps what it
    replaced, after its row too; the instance's next name to settle removes it."""
    root = tmp_path / "store"
    _, first = _name(locator, root / "a" / "x.dcm", b"one")
    locator.settled(UID, first)
    _, second = _name(locator, root / "b" / "x.dcm", b"two")  # its sync fails
    locator.rows_written([(_row("one"), UID, first), (_row("two"), UID, second)])
    assert (root / "a" / "x.dcm").exists() and UID in locator._named
    _, third = _name(locator, root / "b" / "x.dcm", b"two again")
    locator.settled(UID, third)
    locator.rows_written([(_row("two again"), UID, third)])
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.dcm")) == ["b/x.dcm"]
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


def test_overwrite_elsewhere_removes_the_old_file_once_settled_and_indexed(
    tmp_path: Path, locator: Any,
) -> None:
    """The old copy goes only when the new name is durable (settled) and the
    index names it (its row written), in either order, and only by the latest
    name: an older one settling late removes nothing."""
    root = tmp_path / "store"
    _, first = _name(locator, root / "a" / "x.dcm", b"one")
    locator.settled(UID, first)
    result, second = _name(locator, root / "b" / "x.dcm", b"two")
    assert result.stored
    locator.rows_written([(_row("one"), UID, first), (_row("two"), UID, second)])
    assert (root / "a" / "x.dcm").exists()  # indexed, not durable yet
    _, third = _name(locator, root / "c" / "x.dcm", b"three")
    locator.settled(UID, second)  # no longer the latest: removes nothing
    assert (root / "a" / "x.dcm").exists() and (root / "b" / "x.dcm").exists()
    locator.settled(UID, third)
    assert (root / "a" / "x.dcm").exists() and (root / "b" / "x.dcm").exists()  # durable,
    locator.rows_written([(_row("three"), UID, third)])  # and now indexed
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.dcm")) == ["c/x.dcm"]
    assert locator._named == {}
    # Named again where a replaced copy was: that path is not removed later.
    _located(locator, {UID: "c/x.dcm"})  # as the index now holds it
    _, fourth = _name(locator, root / "a" / "x.dcm", b"four")
    locator.settled(UID, fourth)
    locator.rows_written([(_row("four"), UID, fourth)])
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.dcm")) == ["a/x.dcm"]


def test_locate_after_close_is_an_error(tmp_path: Path) -> None:
    index = StorageIndex(tmp_path / "index.sqlite")
    assert index.locate(UID) is None
    index.close()
    with pytest.raises(StorageError, match="closed"):
        index.locate(UID)


def test_an_unreadable_index_does_not_stop_storing(
    tmp_path: Path, locator: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    """The index cannot be read: the object is stored (duplicates then found at
    the same path only), said once, and again once it can."""
    root = tmp_path / "store"
    real = locator._index.locate_sized

    def broken(uid: str) -> tuple[str, int] | None:
        raise StorageError("index: database disk image is malformed")

    locator._index.locate_sized = broken
    result, _ = _name(locator, root / "a" / "x.dcm", b"one")
    assert result.stored
    locator._named.clear()
    result, _ = _name(locator, root / "a" / "x.dcm", b"two", DuplicatePolicy.KEEP)
    assert result.outcome is CommitOutcome.DUPLICATE_KEPT  # the same path still is
    locator._index.locate_sized = real
    locator._named.clear()
    _name(locator, root / "b" / "x.dcm", b"three", DuplicatePolicy.KEEP)
    messages = [r.getMessage() for r in caplog.records if r.name == "dicomnet.storage"]
    assert len([m for m in messages if "cannot look up stored instances" in m]) == 1
    assert len([m for m in messages if "index readable again" in m]) == 1
    assert not list((root / "a").glob(".*"))


def test_rows_after_the_index_closed_are_reported(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A spilled object's commit may end after the SCP closed (it is shielded from
    cancellation): its row is reported for reindex, not written to a closed
    database (which raised inside the index thread)."""
    from dicomnet.services.storage import StorageSCP

    scp = StorageSCP(tmp_path / "store")
    scp.close()
    scp._write_index_rows([[(_row("late"), UID, None)]])
    assert ("1 index row(s) arrived after the index closed; with the server stopped, "
            f"'dicomnet reindex {tmp_path / 'store'}' restores them") in caplog.text


def _indexed(locator: Any) -> dict[str, str]:
    """What the index names per instance, as the test sets it (rows_written does
    not write rows: the locator never looks inside one)."""
    indexed: dict[str, str] = {}
    _located(locator, indexed)
    return indexed


def _stored_and_indexed(locator: InstanceLocator, root: Path, relative: str, data: bytes,
                        indexed: dict[str, str]) -> None:
    """Named, durable, and its row written: as the SCP leaves an object."""
    _, generation = _name(locator, root / relative, data)
    locator.settled(UID, generation)
    locator.rows_written([(_row(data.decode()), UID, generation)])
    indexed[UID] = relative


def _tree(root: Path) -> list[str]:
    """Everything below ``root`` but the index's own files."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if not p.name.startswith("index.sqlite"))


def test_an_overwrite_elsewhere_removes_the_folders_it_empties(
    tmp_path: Path, locator: Any,
) -> None:
    """The instance moves to another study: once the old copy is removed, its
    series and study folders go too if nothing else is in them, never the root
    nor a folder that still holds something."""
    root = tmp_path / "store"
    indexed = _indexed(locator)
    _stored_and_indexed(locator, root, "study1/series1/x.dcm", b"one", indexed)
    (root / "study1" / "series2").mkdir()
    (root / "study1" / "series2" / "other.dcm").write_bytes(b"other")
    _stored_and_indexed(locator, root, "study2/series1/x.dcm", b"two", indexed)
    assert _tree(root) == ["study1", "study1/series2", "study1/series2/other.dcm",
                           "study2", "study2/series1", "study2/series1/x.dcm"]
    # Back to the first study: now the whole of study2 goes.
    _stored_and_indexed(locator, root, "study1/series1/x.dcm", b"three", indexed)
    assert _tree(root) == ["study1", "study1/series1", "study1/series1/x.dcm",
                           "study1/series2", "study1/series2/other.dcm"]
    assert (root / "study1" / "series1" / "x.dcm").read_bytes() == b"three"


def _outside(tmp_path: Path) -> list[str]:
    """Everything outside the store, with each file's bytes."""
    other = tmp_path / "other-disk"
    return sorted(p.relative_to(other).as_posix() + (f" {p.read_bytes()!r}" if p.is_file() else "")
                  for p in other.rglob("*"))


@pytest.mark.parametrize("linked", ["study", "series", "file"])
def test_nothing_reached_through_a_link_is_removed(tmp_path: Path, locator: Any, linked: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """An operator moved a study (a series, a file) elsewhere and linked it back;
    the instance is then stored again under another study. Its old copy and the
    folders it leaves empty are removed only where they are the store's own:
    nothing at a link's target, nor the link (rmdir and unlink followed a linked
    study folder, and the old copy outside went; found by a review)."""
    root = tmp_path / "store"
    indexed = _indexed(locator)
    _stored_and_indexed(locator, root, "study1/series1/x.dcm", b"one", indexed)
    moved = {"study": root / "study1", "series": root / "study1" / "series1",
             "file": root / "study1" / "series1" / "x.dcm"}[linked]
    target = tmp_path / "other-disk" / moved.name
    target.parent.mkdir()
    moved.rename(target)
    moved.symlink_to(target, target_is_directory=linked != "file")
    before = _outside(tmp_path)
    assert any(line.endswith("x.dcm b'one'") or line == "x.dcm b'one'" for line in before)
    _stored_and_indexed(locator, root, "study2/series1/x.dcm", b"two", indexed)
    assert _outside(tmp_path) == before
    assert (root / "study2" / "series1" / "x.dcm").read_bytes() == b"two"
    if linked == "file":  # the link itself is the store's: it goes, with its folders
        assert _tree(root) == ["study2", "study2/series1", "study2/series1/x.dcm"]
    else:
        assert moved.is_symlink()
        assert (f"cannot remove {root / 'study1' / 'series1' / 'x.dcm'}, replaced by "
                "study2/series1/x.dcm: reached through a symbolic link (not the store's own "
                "folder): kept") in caplog.messages


@pytest.mark.parametrize("by_descriptor", [True, False])
def test_remove_below_follows_no_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      by_descriptor: bool) -> None:
    """The removal itself, by descriptors (O_NOFOLLOW, dir_fd) and, where the
    system has none, by a check of the resolved path: a link on the way fails
    with ELOOP and removes nothing; a link named last is removed itself."""
    monkeypatch.setattr(instances, "_BY_DESCRIPTOR", by_descriptor and instances._BY_DESCRIPTOR)
    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "empty").mkdir(parents=True)
    (outside / "x.dcm").write_bytes(b"x")
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "file-link").symlink_to(outside / "x.dcm")
    for parts, folder in ((["link", "x.dcm"], False), (["link", "empty"], True)):
        with pytest.raises(OSError) as caught:
            instances.remove_below(root, parts, folder=folder)
        assert caught.value.errno == errno.ELOOP
    with pytest.raises(OSError):  # rmdir of a link names no folder (ENOTDIR)
        instances.remove_below(root, ["link"], folder=True)
    assert sorted(p.name for p in outside.iterdir()) == ["empty", "x.dcm"]
    instances.remove_below(root, ["file-link"])
    assert sorted(p.name for p in root.iterdir()) == ["link"]
    assert (outside / "x.dcm").read_bytes() == b"x"
    (root / "real" / "empty").mkdir(parents=True)
    instances.remove_below(root, ["real", "empty"], folder=True)
    instances.remove_below(root, ["real"], folder=True)
    assert sorted(p.name for p in root.iterdir()) == ["link"]
    with pytest.raises(FileNotFoundError):
        instances.remove_below(root, ["gone", "x.dcm"])


def test_a_folder_whose_name_may_await_its_sync_is_kept(
    tmp_path: Path, locator: Any,
) -> None:
    """Two associations: one names the instance in study1 (its folder sync still
    to come), the other names it in study2 and settles first, removing the
    study1 copy. study1's folder stays, so that the first one's folder sync
    does not fail on a folder that is gone."""
    root = tmp_path / "store"
    _, first = _name(locator, root / "study1" / "x.dcm", b"one")  # not settled yet
    _, second = _name(locator, root / "study2" / "x.dcm", b"two")
    locator.settled(UID, second)
    locator.rows_written([(_row("two"), UID, second)])
    assert not (root / "study1" / "x.dcm").exists()
    assert (root / "study1").is_dir()
    locator.settled(UID, first)  # no longer the latest: nothing happens
    locator.rows_written([(_row("one"), UID, first)])
    assert (root / "study1").is_dir()  # left until the server starts next (cleanup_stale)


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named"])
def test_a_writer_whose_folder_is_pruned_under_it_still_names_its_file(
    tmp_path: Path, locator: Any, unnamed: bool,
) -> None:
    """A new object for the emptied folder was being received (an unnamed or a
    named temporary file) while the folder went: it is named all the same, in
    the folder made again."""
    root = tmp_path / "store"
    other = "1.2.826.0.1.3680043.8.498.9.6"
    _stored_and_indexed(locator, root, "study1/x.dcm", b"one", _indexed(locator))
    late = AtomicWriter(root / "study1" / "y.dcm", unnamed=unnamed)  # before the prune
    late.write(b"late")
    _, second = _name(locator, root / "study2" / "x.dcm", b"two")
    locator.settled(UID, second)
    locator.rows_written([(_row("two"), UID, second)])
    # An unnamed file leaves the folder empty, and it goes; a named one keeps it.
    assert (root / "study1").exists() is (late._temp is not None)
    late.make_durable()
    result, _ = locator.commit(late, other, root / "study1" / "y.dcm",
                               DuplicatePolicy.OVERWRITE)
    assert result.stored
    assert (root / "study1" / "y.dcm").read_bytes() == b"late"


def test_rows_the_index_could_not_take_keep_the_copies_they_replace(
    tmp_path: Path, locator: Any,
) -> None:
    """The index failed to write the new name's row (it still names the old
    copy): the old copy stays, and the instance's next name removes it."""
    root = tmp_path / "store"
    _stored_and_indexed(locator, root, "a/x.dcm", b"one", _indexed(locator))
    _, second = _name(locator, root / "b" / "x.dcm", b"two")
    locator.settled(UID, second)
    locator.rows_written([(_row("two"), UID, second)], written=False)
    assert (root / "a" / "x.dcm").read_bytes() == b"one"  # what the index names
    _, third = _name(locator, root / "b" / "x.dcm", b"three")
    locator.settled(UID, third)
    locator.rows_written([(_row("three"), UID, third)])
    assert _tree(root) == ["b", "b/x.dcm"]


def test_a_tampered_index_path_is_never_removed(
    tmp_path: Path, locator: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    """An index row naming a path outside the root (``..``): the instance is
    stored as new, and nothing outside the root is touched."""
    root = tmp_path / "store"
    outside = tmp_path / "outside" / "x.dcm"
    outside.parent.mkdir()
    outside.write_bytes(b"not ours")
    _located(locator, {UID: "../outside/x.dcm"})
    result, generation = _name(locator, root / "a" / "x.dcm", b"one")
    locator.settled(UID, generation)
    locator.rows_written([(_row("one"), UID, generation)])
    assert result.stored and (root / "a" / "x.dcm").read_bytes() == b"one"
    assert outside.read_bytes() == b"not ours"
    assert "not a path below the root" in caplog.text


def test_rows_named_before_the_index_was_replaced_are_written_where_their_file_is(
        tmp_path: Path, locator: Any) -> None:
    """The store's folder removed and made again, a new index opened there: a row
    still queued for an object named before went into the new index though its
    file went with the old folder (a query found a path that is not there). It
    is dropped; one whose file is in the new folder, and those named after, are
    written."""
    root = tmp_path / "store"
    _, gone = _name(locator, root / "a" / "x.dcm", b"one")
    shutil.rmtree(root)
    root.mkdir()
    _, kept = _name(locator, root / "b" / "x.dcm", b"two")  # named before the swap too
    new = locator.replace_index(lambda: StorageIndex(root / "index.sqlite"))
    _, after = _name(locator, root / "c" / "x.dcm", b"three")
    rows = [(_row_at("a/x.dcm"), UID, gone), (_row_at("b/x.dcm"), UID, kept),
            (_row_at("c/x.dcm"), UID, after)]
    locator._named.clear()  # each row taken for its name's latest, to see the filter alone
    assert [r.relative_path for r in locator.rows_to_write(rows)] == ["b/x.dcm", "c/x.dcm"]
    assert locator._index is new and new.locate(UID) is None
    new.close()


def _row_at(relative: str) -> NewInstance:
    class Row:
        relative_path = relative
    return cast(NewInstance, Row())
