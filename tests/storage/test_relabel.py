"""storage.relabel: a stored file whose header names Explicit VR Little Endian
over an Implicit VR data set rewritten to name its data set's syntax, atomically
(``dicomnet reindex --repair``)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.storage import files as files_module
from dicomnet.storage import relabel as relabel_module
from dicomnet.storage.files import StorageError
from dicomnet.storage.part10 import read_part10
from dicomnet.storage.relabel import relabel_file
from tests.storage.dicomfiles import make_image
from tests.storage.helpers import data_set_bytes
from tests.storage.stray import meta_elements, meta_group_length
from tests.storage.test_store_scu_mislabelled import _mislabelled


@pytest.mark.parametrize("stray", [False, True], ids=["plain", "after-stray-meta"])
def test_relabel_file_names_the_data_sets_syntax(tmp_path: Path, stray: bool) -> None:
    ds = make_image(4)
    path = _mislabelled(tmp_path / "x.dcm", ds, stray=meta_elements(
        ds, ImplicitVRLittleEndian) if stray else b"")
    info = read_part10(path)
    assert info.relabelled_from == ExplicitVRLittleEndian
    size = relabel_file(info, durable=False)
    data = path.read_bytes()
    # One meta group, naming Implicit VR; the data set unchanged, without group 0002.
    assert size == len(data)
    assert data[meta_group_length(data):] == data_set_bytes(ds, ImplicitVRLittleEndian)
    again = read_part10(path)
    assert (again.transfer_syntax_uid, again.relabelled_from, again.stray_meta) == (
        ImplicitVRLittleEndian, None, ())
    assert dcmread(path).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]


def test_a_file_changed_since_it_was_read_is_left_as_it_is(tmp_path: Path) -> None:
    path = _mislabelled(tmp_path / "x.dcm", make_image(5))
    info = read_part10(path)
    with path.open("ab") as fp:
        fp.write(b"\0\0")
    before = path.read_bytes()
    with pytest.raises(StorageError, match="changed since it was read"):
        relabel_file(info, durable=False)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]


def test_a_relabelled_file_keeps_its_permissions_and_owner(tmp_path: Path) -> None:
    """The new file was the AtomicWriter's (mode 0600, owned by whoever ran
    reindex): a file the server's user owned, repaired by ``sudo dicomnet reindex
    --repair``, became root's and unreadable to the server (C-GET, C-MOVE of it
    failed); a read-only one (0444) became writable. Its mode is kept, and its
    owner and group (when reindex runs as root: else they are its own)."""
    path = _mislabelled(tmp_path / "x.dcm", make_image(6))
    path.chmod(0o440)
    owner = (1000, 1001) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    os.chown(path, *owner)
    relabel_file(read_part10(path), durable=False)
    after = path.stat()
    assert read_part10(path).transfer_syntax_uid == ImplicitVRLittleEndian
    assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_gid) == (0o440, *owner)


@pytest.mark.skipif(os.geteuid() != 0, reason="makes a file another user's")
def test_a_file_whose_owner_cannot_be_kept_is_left_as_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not root, and the file another user's in a folder we may write: relabelled,
    it would become ours (the kernel refuses to give it back: EPERM, as here). It
    is left as it is, and said."""
    path = _mislabelled(tmp_path / "x.dcm", make_image(7))
    os.chown(path, 1000, 1001)
    info = read_part10(path)
    before = path.read_bytes()

    def refused(fd: int, uid: int, gid: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", refused)
    with pytest.raises(StorageError, match="cannot keep its owner"):
        relabel_file(info, durable=False)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]


_KILLED_MID_COPY = """
import os, sys
from pathlib import Path
from typing import Any
from dicomnet.storage import relabel
from dicomnet.storage.part10 import read_part10

real = relabel.AtomicWriter.write
def write(self, data):
    real(self, data)
    if self.size > 200:  # the header is in, the data set on its way: killed (SIGKILL)
        os._exit(9)
relabel.AtomicWriter.write = write
relabel.relabel_file(read_part10(Path(sys.argv[1])), durable=False)
"""


@pytest.mark.skipif(not files_module._unnamed_files_supported(),
                    reason="no O_TMPFILE here: the named file stays until a server starts")
def test_a_repair_killed_mid_copy_leaves_the_file_and_nothing_else(tmp_path: Path) -> None:
    """Killed while it copies (SIGKILL, a SIGTERM without a handler: no clean-up
    runs), relabel_file left the original intact but also its temporary file, as
    large as the file, in the store's folder, until a server started on it: a
    repair of a large archive killed again and again piled them up. The new file
    has no name until its rename (O_TMPFILE, where the file system has it)."""
    path = _mislabelled(tmp_path / "x.dcm", make_image(8))
    before = path.read_bytes()
    done = subprocess.run([sys.executable, "-c", _KILLED_MID_COPY, str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 9, done.stderr
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]


def _same_size_other(path: Path, number: int) -> bytes:
    """Another mislabelled object's file bytes, as long as ``path``'s."""
    other = _mislabelled(path.with_name("other.dcm"), make_image(number)).read_bytes()
    path.with_name("other.dcm").unlink()
    assert len(other) == path.stat().st_size and other != path.read_bytes()
    return other


def _past_ctime(path: Path) -> None:
    """Return once the clock the kernel stamps a change time with has passed
    ``path``'s (it may tick coarsely, a jiffy on kernels before multigrain
    timestamps), so that a change made now gives it another."""
    probe = path.with_name("probe")
    probe.touch()
    while os.stat(probe).st_ctime_ns <= os.stat(path).st_ctime_ns:
        os.utime(probe)
    probe.unlink()


def _write_in_place(path: Path, other: bytes, how: str) -> None:
    """``other`` written over ``path``'s bytes, then its modification time set to
    one of its own, or given back (``touch -r``, ``cp -p``, ``rsync -t``)."""
    was = os.stat(path)
    with path.open("r+b") as fp:
        fp.write(other)
    if how == "written-in-place":
        os.utime(path, ns=(1, 1))  # a time of its own, however coarse the clock
    else:
        os.utime(path, ns=(was.st_atime_ns, was.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == (1 if how == "written-in-place" else was.st_mtime_ns)


_HOW = ["renamed-over", "written-in-place", "written-in-place-time-kept"]


@pytest.mark.parametrize("how", _HOW)
def test_a_same_size_file_swapped_in_after_it_was_read_is_left_as_it_is(
        tmp_path: Path, how: str) -> None:
    """Only the size was compared with what read_part10 saw: another file of the
    same size put there since (a copy renamed over it, or written in place)
    was rewritten with the first one's header and transfer syntax. Its device,
    inode, modification time and change time are compared too: written in
    place, its modification time given back, only the change time says so
    (no user-space call sets it)."""
    path = _mislabelled(tmp_path / "x.dcm", make_image(13))
    info = read_part10(path)
    other = _same_size_other(path, 14)
    if how == "renamed-over":
        (tmp_path / "new").write_bytes(other)
        os.replace(tmp_path / "new", path)
    else:
        _past_ctime(path)
        _write_in_place(path, other, how)
    with pytest.raises(StorageError, match=r"^changed since it was read; not relabelled$"):
        relabel_file(info, durable=False)
    assert path.read_bytes() == other
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]


@pytest.mark.parametrize("when", ["copying", "copied"])
@pytest.mark.parametrize("how", _HOW)
def test_a_file_swapped_while_it_is_copied_is_left_as_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, when: str) -> None:
    """Swapped while relabel_file copies it, or once copied, as the new file is
    given the old one's owner, mode and time, the file there was replaced by
    the old one's copy, relabelled: checked again just before the rename, on
    the open file and against the path, the new one stays; written in place
    with its modification time given back too (its change time tells)."""
    path = _mislabelled(tmp_path / "x.dcm", make_image(11))
    info = read_part10(path)
    other = _same_size_other(path, 12)
    _past_ctime(path)

    def swap() -> None:
        if how == "renamed-over":
            (tmp_path / "new").write_bytes(other)
            os.replace(tmp_path / "new", path)
        else:
            _write_in_place(path, other, how)

    if when == "copying":
        real = files_module.AtomicWriter.write

        def write(self: files_module.AtomicWriter,
                  data: bytes | bytearray | memoryview) -> None:
            real(self, data)
            if self.size == len(data):  # the header is written, the data set to come
                swap()

        monkeypatch.setattr(files_module.AtomicWriter, "write", write)
    else:
        real_access = relabel_module._keep_access

        def keep_access(fd: int, was: os.stat_result) -> None:
            swap()
            real_access(fd, was)

        monkeypatch.setattr(relabel_module, "_keep_access", keep_access)
    with pytest.raises(StorageError, match=r"^changed while relabelled; left as it was$"):
        relabel_file(info, durable=False)
    assert path.read_bytes() == other
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]


@pytest.mark.parametrize("exchange", [True, False], ids=["exchanged", "renamed"])
def test_a_relabelled_file_replaces_the_old_one_and_leaves_nothing_else(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool) -> None:
    """Exchanged with the old file (renameat2), or renamed over it where the
    system cannot exchange: the same file, and no temporary file left."""
    if not exchange:
        monkeypatch.setattr(relabel_module, "_exchange", lambda first, second: False)
    path = _mislabelled(tmp_path / "x.dcm", make_image(15))
    os.utime(path, ns=(5_000_000_000, 7_000_000_000))
    size = relabel_file(read_part10(path), durable=False)
    after = read_part10(path)
    assert (after.transfer_syntax_uid, after.relabelled_from, after.size) == (
        ImplicitVRLittleEndian, None, size)
    assert path.stat().st_mtime_ns == 7_000_000_000
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]


@pytest.mark.parametrize("how", _HOW)
def test_a_file_swapped_just_before_it_is_replaced_is_left_as_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Replaced or written in place (its modification time given back) after
    relabel_file's last look at it and before its rename over it: the rename
    discarded the other program's bytes. The new file is now exchanged with the
    old one (renameat2), what came out checked to be the file read and copied
    (same inode, size, modification time, bytes), and exchanged back when it
    is not: the other program's bytes stay, the repair is not done, and no
    temporary file is left."""
    if relabel_module._renameat2 is None:
        pytest.skip("no renameat2 here: the rename keeps its small gap")
    path = _mislabelled(tmp_path / "x.dcm", make_image(16))
    info = read_part10(path)
    other = _same_size_other(path, 17)
    _past_ctime(path)
    real = files_module.AtomicWriter.commit

    def commit(self: files_module.AtomicWriter, *args: Any,
               **kwargs: Any) -> files_module.CommitResult:
        # The last look is done: another program acts now.
        if how == "renamed-over":
            (tmp_path / "new").write_bytes(other)
            os.replace(tmp_path / "new", path)
        else:
            _write_in_place(path, other, how)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(files_module.AtomicWriter, "commit", commit)
    with pytest.raises(StorageError, match=r"^changed while relabelled; left as it was$"):
        relabel_file(info, durable=False)
    assert path.read_bytes() == other
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]
