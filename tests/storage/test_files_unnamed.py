"""AtomicWriter(unnamed=True): the file has no name until its commit (O_TMPFILE,
named through /proc with linkat); the duplicate policies, aborts and a folder
removed behind our back behave as with a named temporary file."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from dicomnet.storage import AtomicWriter, CommitOutcome, DuplicatePolicy
from dicomnet.storage import files as files_module

PAYLOAD = bytes(range(256)) * 300

pytestmark = pytest.mark.skipif(not files_module._unnamed_files_supported(),
                                reason="no O_TMPFILE or no /proc here")


def everything(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def store(dest: Path, data: bytes, policy: DuplicatePolicy = DuplicatePolicy.KEEP,
          ) -> CommitOutcome:
    with AtomicWriter(dest, unnamed=True) as writer:
        writer.write(data)
        assert writer._temp is None  # really unnamed, not the named fallback
        return writer.commit(policy).outcome


def test_nothing_has_a_name_before_the_commit(tmp_path: Path) -> None:
    dest = tmp_path / "1.2" / "3.4" / "5.6.dcm"
    writer = AtomicWriter(dest, unnamed=True)
    writer.write(PAYLOAD)
    assert everything(tmp_path) == ["1.2", "1.2/3.4"]  # folders only
    assert writer.temp_path.read_bytes() == PAYLOAD  # readable through /proc
    result = writer.commit(DuplicatePolicy.KEEP)
    assert result.outcome is CommitOutcome.STORED
    assert everything(tmp_path) == ["1.2", "1.2/3.4", "1.2/3.4/5.6.dcm"]
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(PAYLOAD).digest()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert dest.stat().st_nlink == 1


@pytest.mark.parametrize(("policy", "outcome", "kept"), [
    (DuplicatePolicy.KEEP, CommitOutcome.DUPLICATE_KEPT, b"first"),
    (DuplicatePolicy.REJECT, CommitOutcome.DUPLICATE_REJECTED, b"first"),
    (DuplicatePolicy.OVERWRITE, CommitOutcome.REPLACED, b"second"),
])
def test_duplicates(tmp_path: Path, policy: DuplicatePolicy, outcome: CommitOutcome,
                    kept: bytes) -> None:
    dest = tmp_path / "x.dcm"
    assert store(dest, b"first") is CommitOutcome.STORED
    assert store(dest, b"second", policy) is outcome
    assert dest.read_bytes() == kept
    assert everything(tmp_path) == ["x.dcm"]  # no temporary name left by OVERWRITE


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "x.dcm"
    with AtomicWriter(dest, unnamed=True) as writer:
        writer.write(PAYLOAD)
    assert everything(tmp_path) == ["a"]
    assert not dest.exists()


def test_a_folder_removed_before_the_commit_is_made_again(tmp_path: Path) -> None:
    dest = tmp_path / "study" / "series" / "x.dcm"
    first = tmp_path / "study" / "series" / "first.dcm"
    assert store(first, b"1") is CommitOutcome.STORED
    writer = AtomicWriter(tmp_path / "elsewhere.dcm", unnamed=True)  # a file in the root
    writer.write(PAYLOAD)
    shutil.rmtree(tmp_path / "study")  # a retention job, between the write and the commit
    result = writer.commit(DuplicatePolicy.KEEP, destination=dest)
    assert result.outcome is CommitOutcome.STORED
    assert dest.read_bytes() == PAYLOAD


def test_falls_back_to_a_named_file_where_unsupported(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system without O_TMPFILE (EOPNOTSUPP): a named temporary file, once
    per folder, and the same result."""
    real_open = os.open
    calls: list[int] = []

    def no_tmpfile(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & files_module._O_TMPFILE == files_module._O_TMPFILE:
            calls.append(flags)
            raise OSError(95, "Operation not supported")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", no_tmpfile)
    monkeypatch.setattr(files_module, "_UNNAMED_UNSUPPORTED", set())
    for n in range(3):
        with AtomicWriter(tmp_path / f"{n}.dcm", unnamed=True) as writer:
            assert writer._temp is not None
            writer.write(b"data")
            assert writer.commit().outcome is CommitOutcome.STORED
    assert len(calls) == 1  # not tried again in that folder
    assert everything(tmp_path) == ["0.dcm", "1.dcm", "2.dcm"]
