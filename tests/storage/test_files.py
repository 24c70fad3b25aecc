"""AtomicWriter, duplicate policies, error translation and stale-file cleanup."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from dicomnet.storage import (
    TEMP_SUFFIX,
    AtomicWriter,
    CommitOutcome,
    DuplicatePolicy,
    StorageError,
    cleanup_stale,
)

from .helpers import tree

PAYLOAD = bytes(range(256)) * 300  # 76,800 bytes, every byte value


def temps(path: Path) -> list[Path]:
    """Temporary files below ``path`` (links to folders not followed)."""
    return sorted(
        Path(folder, name)
        for folder, _dirs, files in os.walk(path)
        for name in files
        if name.endswith(TEMP_SUFFIX)
    )


def store(dest: Path, data: bytes, policy: DuplicatePolicy = DuplicatePolicy.KEEP) -> CommitOutcome:
    with AtomicWriter(dest) as writer:
        writer.write(data)
        return writer.commit(policy).outcome


def test_commit_produces_exactly_the_bytes(root: Path) -> None:
    dest = root / "1.2" / "3.4" / "5.6.dcm"
    with AtomicWriter(dest) as writer:
        assert writer.temp_path.parent == dest.parent
        assert writer.temp_path.name.startswith(".")
        assert writer.temp_path.name.endswith(TEMP_SUFFIX)
        writer.write(PAYLOAD[:1000])
        writer.write(memoryview(PAYLOAD)[1000:50_000])
        writer.write(bytearray(PAYLOAD[50_000:]))
        writer.write(b"")
        assert not dest.exists()  # nothing under the final name before commit
        result = writer.commit(DuplicatePolicy.KEEP)
    assert result.outcome is CommitOutcome.STORED
    assert result.stored and not result.duplicate
    assert result.path == dest
    assert result.size == len(PAYLOAD)
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(PAYLOAD).digest()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert temps(root) == []
    assert tree(root) == {"1.2", "1.2/3.4", "1.2/3.4/5.6.dcm"}


def test_new_folders_get_0o755_under_the_umask(root: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    dest = root / "a" / "b" / "c.dcm"
    store(dest, b"x")
    for folder in (root / "a", root / "a" / "b"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755 & ~umask


def test_short_writes_are_completed(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write

    def one_byte(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data[:1]))

    dest = root / "short.dcm"
    with AtomicWriter(dest) as writer:
        monkeypatch.setattr(os, "write", one_byte)
        writer.write(b"DICM-short-writes")
        monkeypatch.undo()
        writer.commit()
    assert dest.read_bytes() == b"DICM-short-writes"


def test_abort_leaves_nothing(root: Path) -> None:
    dest = root / "x" / "1.2.dcm"
    writer = AtomicWriter(dest)
    writer.write(PAYLOAD)
    assert len(temps(root)) == 1
    writer.abort()
    writer.abort()  # idempotent
    assert not dest.exists()
    assert temps(root) == []
    with pytest.raises(StorageError):
        writer.write(b"more")
    with pytest.raises(StorageError):
        writer.commit()


def test_exception_in_block_aborts(root: Path) -> None:
    dest = root / "1.2.dcm"

    class Boom(Exception):
        pass

    with pytest.raises(Boom), AtomicWriter(dest) as writer:
        writer.write(PAYLOAD)
        raise Boom
    assert not dest.exists()
    assert temps(root) == []


def test_leaving_block_without_commit_aborts(root: Path) -> None:
    dest = root / "1.2.dcm"
    with AtomicWriter(dest) as writer:
        writer.write(PAYLOAD)
    assert not dest.exists()
    assert temps(root) == []


def test_commit_twice_is_refused(root: Path) -> None:
    with AtomicWriter(root / "1.dcm") as writer:
        writer.write(b"a")
        writer.commit()
        with pytest.raises(StorageError):
            writer.commit()
    assert (root / "1.dcm").read_bytes() == b"a"


@pytest.mark.parametrize("policy", list(DuplicatePolicy))
def test_first_store_is_stored_under_every_policy(root: Path, policy: DuplicatePolicy) -> None:
    # REPLACED only where a copy was there (OVERWRITE said so for a first copy too).
    assert store(root / "1.dcm", b"first", policy) is CommitOutcome.STORED
    assert (root / "1.dcm").read_bytes() == b"first"


@pytest.mark.parametrize(
    ("policy", "outcome", "content"),
    [
        (DuplicatePolicy.KEEP, CommitOutcome.DUPLICATE_KEPT, b"first"),
        (DuplicatePolicy.REJECT, CommitOutcome.DUPLICATE_REJECTED, b"first"),
        (DuplicatePolicy.OVERWRITE, CommitOutcome.REPLACED, b"second"),
    ],
)
def test_duplicate_policies(
    root: Path, policy: DuplicatePolicy, outcome: CommitOutcome, content: bytes
) -> None:
    dest = root / "1.2.dcm"
    store(dest, b"first")
    inode = dest.stat().st_ino
    with AtomicWriter(dest) as writer:
        writer.write(b"second")
        result = writer.commit(policy)
    assert result.outcome is outcome
    assert result.duplicate is (policy is not DuplicatePolicy.OVERWRITE)
    assert dest.read_bytes() == content
    if policy is not DuplicatePolicy.OVERWRITE:
        assert dest.stat().st_ino == inode  # the existing file was not even touched
    assert temps(root) == []
    assert tree(root) == {"1.2.dcm"}


def test_two_writers_racing_for_one_name_keep_the_first(root: Path) -> None:
    dest = root / "1.2.dcm"
    a, b = AtomicWriter(dest), AtomicWriter(dest)
    assert a.temp_path != b.temp_path
    a.write(b"from a")
    b.write(b"from b")
    assert b.commit(DuplicatePolicy.KEEP).outcome is CommitOutcome.STORED
    assert a.commit(DuplicatePolicy.KEEP).outcome is CommitOutcome.DUPLICATE_KEPT
    assert dest.read_bytes() == b"from b"
    assert temps(root) == []


def test_no_hard_link_fallback(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    dest = root / "1.2.dcm"
    assert store(dest, b"first") is CommitOutcome.STORED
    assert store(dest, b"second", DuplicatePolicy.REJECT) is CommitOutcome.DUPLICATE_REJECTED
    assert dest.read_bytes() == b"first"
    assert temps(root) == []


def _raiser(code: int) -> Callable[..., int]:
    def fail(*args: object, **kwargs: object) -> int:
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    ("code", "out_of_resources"),
    [(errno.ENOSPC, True), (errno.EDQUOT, True), (errno.EIO, False), (errno.EACCES, False)],
)
def test_write_errors_become_storage_error(
    root: Path, monkeypatch: pytest.MonkeyPatch, code: int, out_of_resources: bool
) -> None:
    dest = root / "1.2.dcm"
    with AtomicWriter(dest) as writer:
        writer.write(b"header")
        monkeypatch.setattr(os, "write", _raiser(code))
        with pytest.raises(StorageError) as info:
            writer.write(PAYLOAD)
        monkeypatch.undo()
    assert info.value.errno == code
    assert info.value.out_of_resources is out_of_resources
    assert isinstance(info.value.__cause__, OSError)
    assert not dest.exists()
    assert temps(root) == []


def test_fsync_failure_on_commit(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = root / "1.2.dcm"
    with AtomicWriter(dest) as writer:
        writer.write(PAYLOAD)
        monkeypatch.setattr(os, "fsync", _raiser(errno.EIO))
        with pytest.raises(StorageError) as info:
            writer.commit()
        monkeypatch.undo()
    assert info.value.errno == errno.EIO
    assert not info.value.out_of_resources
    assert not dest.exists()
    assert temps(root) == []


def test_cannot_create_temp_file(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "open", _raiser(errno.ENOSPC))
    with pytest.raises(StorageError) as info:
        AtomicWriter(root / "1.2.dcm")
    monkeypatch.undo()
    assert info.value.out_of_resources
    assert tree(root) == set()


def test_cannot_create_folder(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "mkdir", _raiser(errno.EACCES))
    with pytest.raises(StorageError) as info:
        AtomicWriter(root / "new" / "1.2.dcm")
    assert info.value.errno == errno.EACCES


def test_cleanup_stale_removes_temps_and_empty_store_folders_and_nothing_else(
    tmp_path: Path, root: Path,
) -> None:
    # Interrupted stores: writers that were never committed nor aborted.
    crashed = [AtomicWriter(root / "1.2" / f"{n}.dcm") for n in range(3)]
    for writer in crashed:
        writer.write(b"partial")
    store(root / "1.2" / "9.dcm", b"complete")
    keep = {
        "1.2/9.dcm",
        "notes.dicomnet-part.txt",
        ".hidden",
        "dir.dicomnet-part/inner.dcm",
    }
    (root / "notes.dicomnet-part.txt").write_bytes(b"n")
    (root / ".hidden").write_bytes(b"h")
    (root / "dir.dicomnet-part").mkdir()
    (root / "dir.dicomnet-part" / "inner.dcm").write_bytes(b"i")
    (root / "deep" / "er").mkdir(parents=True)
    (root / "deep" / "er" / ".abc.dicomnet-part").write_bytes(b"p")
    # A link to a folder outside the root must not be followed.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".x.dicomnet-part").write_bytes(b"o")
    (outside / "1.5" / "1.5.1").mkdir(parents=True)  # empty, named as the store names
    (root / "link").symlink_to(outside)
    (root / "1.6").symlink_to(outside / "1.5")  # a linked study: named as the store names
    (root / "1.3" / "1.3.1").mkdir(parents=True)  # a duplicate kept elsewhere
    (root / "1.4" / "1.4.1").mkdir(parents=True)
    (root / "1.4" / "1.4.1" / ".def.dicomnet-part").write_bytes(b"p")
    (root / "incoming").mkdir()  # an operator's: not a name the store gives

    assert cleanup_stale(root) == 5
    assert temps(root) == []
    for relative in keep:
        assert (root / relative).exists(), relative
    # Empty study and series folders go (1.4/1.4.1 held only a temporary file);
    # folders not named as the store names them stay (deep/er, emptied too), as
    # do the root and the link to a folder.
    assert sorted(p.name for p in root.iterdir()) == [
        ".hidden", "1.2", "1.6", "deep", "dir.dicomnet-part", "incoming", "link",
        "notes.dicomnet-part.txt"]
    assert (root / "deep" / "er").is_dir()
    assert (outside / ".x.dicomnet-part").read_bytes() == b"o"
    assert (outside / "1.5" / "1.5.1").is_dir() and (root / "1.6").is_symlink()
    assert (root / "1.2" / "9.dcm").read_bytes() == b"complete"
    assert cleanup_stale(root) == 0
    for writer in crashed:
        writer.abort()  # the files are gone already; abort must not mind


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named"])
def test_a_folder_pruned_just_after_the_writer_made_it_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool,
) -> None:
    """The store prunes a folder an overwrite emptied (storage.instances) at the
    moment another writer has made sure of it, before it opens its file there:
    the writer makes it again (it used to fail when the folder had also left
    the process's cache)."""
    from dicomnet.storage import files

    real = files._make_dirs
    pruned: list[Path | str] = []

    def make_then_prune(directory: Path | str, *, durable: bool = True) -> None:
        real(directory, durable=durable)
        if not pruned:  # the other thread's rmdir and forget_folder, once
            os.rmdir(directory)
            files.forget_folder(directory)
            pruned.append(directory)

    monkeypatch.setattr(files, "_make_dirs", make_then_prune)
    folder = tmp_path / "study" / "series"
    with AtomicWriter(folder / "a.dcm", unnamed=unnamed) as writer:
        writer.write(b"data")
        result = writer.commit(DuplicatePolicy.KEEP)
    assert [Path(p) for p in pruned] == [folder]  # given as text, as the store thread has it
    assert result.stored and (folder / "a.dcm").read_bytes() == b"data"


def test_a_parent_pruned_while_the_folder_is_made_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The study folder goes (pruned, emptied) between the walk that found it and
    the mkdir of a new series in it: the walk is made again."""

    study = tmp_path / "study"
    study.mkdir()
    real_mkdir = os.mkdir
    calls: list[str] = []

    def mkdir(path: str | os.PathLike[str], mode: int = 0o777) -> None:
        if not calls and Path(path).parent == study:
            os.rmdir(study)  # the other thread's prune, just before
        calls.append(os.fspath(path))
        real_mkdir(path, mode)

    monkeypatch.setattr(os, "mkdir", mkdir)
    with AtomicWriter(study / "series" / "a.dcm") as writer:
        writer.write(b"data")
        result = writer.commit(DuplicatePolicy.KEEP)
    assert result.stored and (study / "series" / "a.dcm").read_bytes() == b"data"
    assert calls == [str(study / "series"), str(study), str(study / "series")]


def test_a_folder_removed_behind_our_back_is_made_again(tmp_path: Path) -> None:
    """The writer remembers folders it made (for speed); a retention job deleting one
    must not make later stores into it fail."""
    import shutil

    folder = tmp_path / "study" / "series"
    with AtomicWriter(folder / "a.dcm") as first:
        first.write(b"first")
        first.commit(DuplicatePolicy.KEEP)
    shutil.rmtree(tmp_path / "study")
    with AtomicWriter(folder / "b.dcm") as second:  # the temp file needs the folder
        second.write(b"second")
        result = second.commit(DuplicatePolicy.KEEP)
    assert result.stored and (folder / "b.dcm").read_bytes() == b"second"
    other = tmp_path / "elsewhere"
    with AtomicWriter(other / "c.dcm") as third:
        third.write(b"third")
        shutil.rmtree(tmp_path / "study")  # the final folder vanishes mid-store
        result = third.commit(DuplicatePolicy.KEEP, destination=folder / "c.dcm")
    assert result.stored and (folder / "c.dcm").read_bytes() == b"third"
