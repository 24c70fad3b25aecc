"""``dicomnet reindex``: the index of a store made to agree with its files again."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage import files as files_module
from dicomnet.storage import relabel as relabel_module
from dicomnet.storage.files import Layout
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.lock import StoreLock
from dicomnet.storage.part10 import part10_header, read_part10
from dicomnet.storage.rows import row_from_file
from tests.storage.dicomfiles import make_image, uid, write_part10
from tests.storage.helpers import data_set_bytes
from tests.storage.test_store_scu_mislabelled import _mislabelled

from .helpers import error_line, json_out, run_cli


def _store(root: Path, *numbers: int) -> dict[int, str]:
    """Stored objects as a C-STORE SCP lays them out, without rows; their paths."""
    relative = {}
    for n in numbers:
        ds = make_image(n)
        path = Layout.HIERARCHICAL.destination(
            root, sop_instance_uid=ds.SOPInstanceUID, study_instance_uid=ds.StudyInstanceUID,
            series_instance_uid=ds.SeriesInstanceUID)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_part10(path, ds, ExplicitVRLittleEndian)
        relative[n] = path.relative_to(root).as_posix()
    return relative


def _damaged_store(tmp_path: Path) -> tuple[Path, dict[int, str]]:
    """Objects 1 to 3 stored; only 1 indexed, plus the row of 4, whose file is gone;
    and a file that is not DICOM."""
    root = tmp_path / "store"
    paths = _store(root, 1, 2, 3, 4)
    with StorageIndex(root / INDEX_NAME) as index:
        index.add_instances([row_from_file(root, paths[1]), row_from_file(root, paths[4])])
    (root / paths[4]).unlink()
    (root / "notes.txt").write_text("not DICOM")
    return root, paths


def _indexed(root: Path) -> dict[str, str | None]:
    with StorageIndex(root / INDEX_NAME) as index:
        return {uid(9, n): index.locate(uid(9, n)) for n in (1, 2, 3, 4)}


def test_reindex_adds_the_missing_rows_and_drops_those_of_files_gone(tmp_path: Path) -> None:
    root, paths = _damaged_store(tmp_path)
    result = run_cli("reindex", root, "--json")
    assert result.exit_code == 0, result.stderr
    assert json_out(result) == {"folder": str(root), "added": 2, "removed": 1, "skipped": 1,
                                "instances": 3, "stores_skipped": [], "mislabelled": [],
                                "relabelled": [], "not_relabelled": [], "temporaries_removed": 0,
                                "updated": 0}
    assert _indexed(root) == {uid(9, 1): paths[1], uid(9, 2): paths[2], uid(9, 3): paths[3],
                              uid(9, 4): None}
    again = run_cli("reindex", root)
    assert again.exit_code == 0, again.stderr
    assert again.stdout == (f"{root}: 0 row(s) added, 0 removed, 1 file(s) skipped; "
                            "3 instance(s) indexed\n")


def test_no_prune_keeps_the_rows_of_files_gone(tmp_path: Path) -> None:
    root, paths = _damaged_store(tmp_path)
    result = run_cli("reindex", root, "--no-prune", "--json")
    assert result.exit_code == 0, result.stderr
    assert json_out(result)["removed"] == 0
    assert _indexed(root)[uid(9, 4)] == paths[4]


def test_a_deleted_index_is_rebuilt_with_create_only(tmp_path: Path) -> None:
    root = tmp_path / "store"
    paths = _store(root, 1, 2)
    refused = run_cli("reindex", root, "--json")
    assert refused.exit_code == 2
    assert error_line(refused) == (f"error: {root} holds no {INDEX_NAME}: not a dicomnet store "
                                   "(--create builds a new index from its files)")
    assert not (root / INDEX_NAME).exists()
    result = run_cli("reindex", root, "--create", "--json")
    assert result.exit_code == 0, result.stderr
    assert json_out(result) == {"folder": str(root), "added": 2, "removed": 0, "skipped": 0,
                                "instances": 2, "stores_skipped": [],
                                "mislabelled": [], "relabelled": [],
                                "not_relabelled": [], "temporaries_removed": 0, "updated": 0}
    assert stat.S_IMODE(os.stat(root / INDEX_NAME).st_mode) == 0o600
    assert _indexed(root) == {uid(9, 1): paths[1], uid(9, 2): paths[2], uid(9, 3): None,
                              uid(9, 4): None}


def test_what_is_not_a_store_exits_2(tmp_path: Path) -> None:
    missing = run_cli("reindex", tmp_path / "nowhere")
    assert missing.exit_code == 2
    assert error_line(missing) == f"error: {tmp_path / 'nowhere'} is not a folder"
    (tmp_path / INDEX_NAME).write_bytes(b"not a database, but as long as its header" * 4)
    damaged = run_cli("reindex", tmp_path)
    assert damaged.exit_code == 2
    assert error_line(damaged).startswith(f"error: cannot reindex {tmp_path}: ")


def test_help_says_to_stop_the_server_first() -> None:
    reindex = run_cli("reindex", "--help").stdout
    for text in ("--no-prune", "--create", "--json", "with the server stopped", "Exit codes"):
        assert text in reindex, text
    assert "dicomnet reindex" in " ".join(run_cli("serve", "--help").stdout.split())
    assert "reindex" in run_cli("--help").stdout


def test_a_damaged_index_says_how_to_rebuild_it(tmp_path: Path) -> None:
    """An index.sqlite that is no database (or damaged) stopped serve and reindex with
    SQLite's words alone ('file is not a database'); it now says the way out, and
    that way works."""
    root = tmp_path / "store"
    paths = _store(root, 1, 2)
    (root / INDEX_NAME).write_bytes(b"not a database, but as long as its header" * 4)
    damaged = run_cli("reindex", root)
    assert damaged.exit_code == 2
    assert error_line(damaged) == (
        f"error: cannot reindex {root}: cannot open index {root / INDEX_NAME}: file is not a "
        f"database (damaged: move it aside, then 'dicomnet reindex --create {root}' builds "
        "a new one from the files)")
    (root / INDEX_NAME).rename(tmp_path / "damaged.sqlite")
    result = run_cli("reindex", root, "--create", "--json")
    assert result.exit_code == 0, result.stderr
    assert json_out(result)["added"] == 2
    assert _indexed(root)[uid(9, 2)] == paths[2]


def test_stores_nested_in_the_folder_are_skipped_and_said(tmp_path: Path) -> None:
    """reindex of an archive holding a store per modality: the files of the nested
    stores (another server's, with an index and lock of their own) were indexed
    into the outer one's. A folder holding its own index, or held by another
    server (one without an index), is now skipped, and said, one line each."""
    root = tmp_path / "archive"
    paths = _store(root, 1, 2)
    ct, mr = root / "ct", root / "mr"
    inner = _store(ct, 3)
    with StorageIndex(ct / INDEX_NAME) as index:
        index.add_instances([row_from_file(ct, inner[3])])
    _store(mr, 4)
    held = StoreLock(mr)  # a server storing into it, without an index
    try:
        result = run_cli("reindex", root, "--create", "--json")
        again = run_cli("reindex", root)
    finally:
        held.release()
    assert result.exit_code == 0, result.stderr
    assert json_out(result) == {"folder": str(root), "added": 2, "removed": 0, "skipped": 0,
                                "instances": 2, "stores_skipped": ["ct", "mr"],
                                "mislabelled": [], "relabelled": [],
                                "not_relabelled": [], "temporaries_removed": 0, "updated": 0}
    assert _indexed(root) == {uid(9, 1): paths[1], uid(9, 2): paths[2], uid(9, 3): None,
                              uid(9, 4): None}
    assert again.exit_code == 0, again.stderr
    assert again.stdout == (
        f"{ct}: skipped, a store of its own (its own {INDEX_NAME}, or in use by another "
        "server): reindex it on its own\n"
        f"{mr}: skipped, a store of its own (its own {INDEX_NAME}, or in use by another "
        "server): reindex it on its own\n"
        f"{root}: 0 row(s) added, 0 removed, 0 file(s) skipped; 2 instance(s) indexed\n")
    with StorageIndex(ct / INDEX_NAME) as index:  # the nested store's own index, untouched
        assert index.count()["instances"] == 1


def test_a_file_mislabelled_explicit_vr_is_said_and_relabelled_with_repair(
        tmp_path: Path) -> None:
    """A file an older server stored as a peer sent it: its header names Explicit
    VR Little Endian, its data set is in Implicit VR. reindex indexed it as
    Implicit VR and left the header saying otherwise, without a word in its
    summary: the index and the file disagreed, and DCMTK misreads the file.
    Now it is named (mislabelled), the file left as it is; --repair rewrites
    its header (a new file renamed over it, its time kept), indexed or not,
    and its row follows."""
    root = tmp_path / "store"
    paths = _store(root, 1)
    ds = make_image(2)
    mislabelled = root / "old" / "2.dcm"
    mislabelled.parent.mkdir()
    header = part10_header(sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
                           transfer_syntax_uid=ExplicitVRLittleEndian,
                           implementation_class_uid="1.2.3.4", implementation_version_name="OLD",
                           source_ae_title=None)
    data_set = data_set_bytes(ds, ImplicitVRLittleEndian)
    mislabelled.write_bytes(header + data_set)
    os.utime(mislabelled, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    (root / INDEX_NAME).touch()

    first = run_cli("reindex", root, "--json")
    assert first.exit_code == 0, first.stderr
    assert json_out(first) == {"folder": str(root), "added": 2, "removed": 0, "skipped": 0,
                               "instances": 2, "stores_skipped": [],
                               "mislabelled": ["old/2.dcm"], "relabelled": [],
                               "not_relabelled": [], "temporaries_removed": 0, "updated": 0}
    assert mislabelled.read_bytes() == header + data_set  # not touched without --repair
    with StorageIndex(root / INDEX_NAME) as index:
        row = index.get_instance(ds.SOPInstanceUID)
    assert row is not None and row.transfer_syntax_uid == ImplicitVRLittleEndian
    text = run_cli("reindex", root, "--no-prune")
    assert text.exit_code == 0
    assert "(--repair relabels it)" not in text.stdout  # indexed now: not read again

    repaired = run_cli("reindex", root, "--repair")
    assert repaired.exit_code == 0, repaired.stderr
    assert f"{mislabelled}: relabelled Implicit VR Little Endian" in repaired.stdout
    data = mislabelled.read_bytes()
    assert data.endswith(data_set) and b"1.2.840.10008.1.2.1" not in data[:len(header)]
    read = dcmread(mislabelled)
    assert read.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert read.file_meta.ImplementationVersionName == "OLD"
    assert read.PatientName == ds.PatientName
    assert mislabelled.stat().st_mtime_ns == 1_000_000_000_000_000_000
    assert not [p for p in mislabelled.parent.iterdir() if p.name != "2.dcm"]
    with StorageIndex(root / INDEX_NAME) as index:
        row = index.get_instance(ds.SOPInstanceUID)
    assert row is not None
    assert (row.transfer_syntax_uid, row.size) == (ImplicitVRLittleEndian, len(data))
    again = run_cli("reindex", root, "--repair", "--json")
    assert (json_out(again)["mislabelled"], json_out(again)["relabelled"]) == ([], [])
    assert (root / paths[1]).is_file()


@pytest.mark.skipif(os.geteuid() != 0, reason="makes a file another user's")
def test_repair_that_cannot_relabel_a_file_exits_1_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file --repair could not relabel (its owner not ours to keep, here; a
    read-only folder, a file changed meanwhile) stayed mislabelled with the
    reason in the log only, and reindex exited 0 as if repaired: a script
    running it saw success. It now exits 1 (as store does when an object was
    not stored), and the summary names the file and why; the others are
    relabelled all the same."""
    root = tmp_path / "store"
    _store(root, 1)
    kept = _mislabelled(root / "old" / "2.dcm", make_image(2))
    fixed = _mislabelled(root / "old" / "3.dcm", make_image(3))
    os.chown(kept, 1000, 1001)
    (root / INDEX_NAME).touch()
    real = os.fchown

    def fchown(fd: int, uid: int, gid: int) -> None:
        if uid == 1000:  # as for a reindex run as another user than the file's
            raise PermissionError(errno.EPERM, "Operation not permitted")
        real(fd, uid, gid)

    monkeypatch.setattr(os, "fchown", fchown)
    before = kept.read_bytes()
    result = run_cli("reindex", root, "--repair", "--json")
    assert result.exit_code == 1, result.stderr
    why = ("cannot keep its owner and group (1000:1001) in a new file; not "
           "relabelled (run reindex as the file's owner, or as root)")
    assert json_out(result) == {
        "folder": str(root), "added": 3, "removed": 0, "skipped": 0, "instances": 3,
        "stores_skipped": [], "mislabelled": ["old/2.dcm", "old/3.dcm"],
        "relabelled": ["old/3.dcm"],
        "not_relabelled": [{"file": "old/2.dcm", "reason": why}],
        "temporaries_removed": 0, "updated": 0}
    assert kept.read_bytes() == before
    assert read_part10(fixed).relabelled_from is None

    text = run_cli("reindex", root, "--repair")
    assert text.exit_code == 1
    assert text.stdout.splitlines()[0] == (
        f"{kept}: its header says Explicit VR over an Implicit VR data set: indexed as "
        f"Implicit VR Little Endian, the file left as it is; not relabelled: {why}")
    help_text = run_cli("reindex", "--help").stdout
    assert "1  --repair: one or more files could not be relabelled" in help_text


def test_repair_leaves_a_file_written_in_place_its_time_given_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another program rewrote the file in place while --repair copied it and
    gave back its modification time (``touch -r``, ``cp -p``, ``rsync -t``):
    relabel compared device, inode and modification time only, saw the same
    file, and renamed its copy of the old bytes over the program's. The change
    time, which user space cannot set, tells: the file is not relabelled, and
    said so with why; the program's bytes stay."""
    root = tmp_path / "store"
    _store(root, 1)
    path = _mislabelled(root / "old" / "2.dcm", make_image(2))
    other = _mislabelled(tmp_path / "other.dcm", make_image(3)).read_bytes()
    assert len(other) == path.stat().st_size and other != path.read_bytes()
    (root / INDEX_NAME).touch()
    probe = tmp_path / "probe"  # the change time's clock past the file's, however coarse
    probe.touch()
    while probe.stat().st_ctime_ns <= path.stat().st_ctime_ns:
        os.utime(probe)
    real = relabel_module._keep_access

    def keep_access(fd: int, was: os.stat_result) -> None:
        before = os.stat(path)
        with path.open("r+b") as fp:
            fp.write(other)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        real(fd, was)

    monkeypatch.setattr(relabel_module, "_keep_access", keep_access)
    _repair_refused(root, path, other)


def test_repair_leaves_a_file_replaced_just_before_its_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another program renamed its file over the mislabelled one after --repair's
    last look and before its rename: the rename threw the program's file away.
    The new file is exchanged with the old (renameat2), found not to be it, and
    exchanged back: not relabelled, said with why, the program's bytes stay."""
    if relabel_module._renameat2 is None:
        pytest.skip("no renameat2 here: the rename keeps its small gap")
    root = tmp_path / "store"
    _store(root, 1)
    path = _mislabelled(root / "old" / "2.dcm", make_image(2))
    other = _mislabelled(tmp_path / "other.dcm", make_image(3)).read_bytes()
    (root / INDEX_NAME).touch()
    real = files_module.AtomicWriter.commit

    def commit(self: files_module.AtomicWriter, *args: Any,
               **kwargs: Any) -> files_module.CommitResult:
        if self.destination.name != INDEX_NAME and path.read_bytes() != other:
            (tmp_path / "new").write_bytes(other)
            os.replace(tmp_path / "new", path)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(files_module.AtomicWriter, "commit", commit)
    _repair_refused(root, path, other)


def _repair_refused(root: Path, path: Path, other: bytes) -> None:
    """``reindex --repair`` of a store whose old/2.dcm another program changed while
    it was relabelled: exit 1, the file listed as not relabelled with why, the
    program's bytes at its path, nothing else left beside it."""
    result = run_cli("reindex", root, "--repair", "--json")
    assert result.exit_code == 1, result.stderr
    assert json_out(result)["relabelled"] == []
    assert json_out(result)["not_relabelled"] == [
        {"file": "old/2.dcm", "reason": "changed while relabelled; left as it was"}]
    assert path.read_bytes() == other
    assert sorted(p.name for p in path.parent.iterdir()) == ["2.dcm"]
