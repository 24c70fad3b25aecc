"""collect_files: what ``dicomnet store`` sends from the paths it is given, and in
which order (that of ``sorted(folder.rglob("*"))``, which it used to call)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dicomnet.errors import ConfigurationError
from dicomnet.services.storage import INDEX_NAME, StorageSCP
from dicomnet.services.store_scu import collect_files

FILES = ["a/x", "a-b/c", "a.b/q", "b", "d/.h/y", "d/z", "A/upper", "d/e/f/deep"]


def make_tree(root: Path) -> None:
    for rel in [*FILES, ".hidden", "DICOMDIR", "d/DICOMDIR", "d/.also-hidden"]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())
    (root / "empty").mkdir()
    os.symlink(root / "a", root / "link-to-folder")
    os.symlink(root / "b", root / "link-to-file")
    os.symlink(root / "nowhere", root / "broken-link")
    os.mkfifo(root / "fifo")


def relative(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_a_folder_gives_its_files_in_rglob_order(tmp_path: Path) -> None:
    make_tree(tmp_path)
    expected = sorted(f for f in tmp_path.rglob("*") if f.name != "DICOMDIR"
                      and not f.name.startswith(".") and not f.is_dir())
    got = collect_files([tmp_path])
    assert got == expected
    # Spelled out: parts order ("a/x" before "a-b/c", though "-" sorts before "/"),
    # links to files followed, links to folders, hidden files and DICOMDIRs left
    # out, hidden folders entered; broken links and FIFOs listed, to fail alone
    # with why (test_store_folder_oddities).
    assert relative(got, tmp_path) == [
        "A/upper", "a/x", "a-b/c", "a.b/q", "b", "broken-link", "d/.h/y", "d/e/f/deep", "d/z",
        "fifo", "link-to-file"]
    assert all(isinstance(p, Path) for p in got)


def test_files_named_are_kept_as_given_and_in_order(tmp_path: Path) -> None:
    make_tree(tmp_path)
    named: list[Path | str] = [tmp_path / "b", str(tmp_path / ".hidden"), tmp_path / "d"]
    assert relative(collect_files(named), tmp_path) == ["b", ".hidden", "d/.h/y", "d/e/f/deep",
                                                        "d/z"]


@pytest.mark.parametrize(("name", "message"), [
    ("missing", "no such file or folder"), ("broken-link", "no such file or folder"),
    ("fifo", "not a file or folder")])
def test_a_path_that_is_neither_file_nor_folder_is_refused(tmp_path: Path, name: str,
                                                           message: str) -> None:
    make_tree(tmp_path)
    with pytest.raises(ConfigurationError, match=f"{message}: .*{name}$"):
        collect_files([tmp_path / name])


def test_an_unreadable_folder_is_a_clear_error(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """(Made unreadable by refusing scandir: CI runs as root, who reads anything.)"""
    folder = tmp_path / "locked"
    folder.mkdir()

    def refuse(path: str) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "scandir", refuse)
    with pytest.raises(ConfigurationError, match=r"cannot read folder .*locked: Permission denied"):
        collect_files([folder])


def test_a_file_reached_twice_is_listed_once_where_first_reached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    # A folder and a file in it, the same file spelled two ways, the folder twice.
    got = collect_files(["a", "a/x", "./a/x", ".//a/./x", "b", "a"])
    assert [p.as_posix() for p in got] == ["a/x", "b"]
    # Through a link, "link-to-folder/../b" is another file than "b" could be: kept.
    assert [p.as_posix() for p in collect_files(["b", "link-to-folder/../b"])] == [
        "b", "link-to-folder/../b"]


def test_a_dicomnet_store_gives_its_objects_not_its_index(tmp_path: Path) -> None:
    """``dicomnet store pacs 104 dicomnet-store/`` (an archive forwarded, a study
    relayed with the folder it came in) sent index.sqlite too, and its -wal and
    -shm while the server ran: each 'not a DICOM Part 10 file', so the run ended
    with exit 1 though every object was stored. Named, such a file is still sent."""
    root = tmp_path / "store"
    StorageSCP(root).close()  # its index.sqlite
    obj = root / "1.2.3" / "1.2.3.4" / "1.2.3.4.5.dcm"
    obj.parent.mkdir(parents=True)
    obj.write_bytes(b"an object")
    for suffix in ("-wal", "-shm", "-journal"):  # as SQLite leaves them beside it
        (root / f"{INDEX_NAME}{suffix}").write_bytes(b"")
    assert (root / INDEX_NAME).is_file()
    assert collect_files([tmp_path]) == [obj]
    assert collect_files([root / INDEX_NAME]) == [root / INDEX_NAME]


def test_one_path_given_alone_is_that_path(tmp_path: Path) -> None:
    """A str is a Sequence[str]: ``collect_files("study")`` type-checks, and was
    read letter by letter ("no such file or folder: s"; "/" first for an
    absolute path, the whole disk listed). A str or Path alone is one path."""
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "a").write_bytes(b"x")
    expected = [tmp_path / "study" / "a"]
    assert collect_files(str(tmp_path / "study")) == expected
    assert collect_files(tmp_path / "study") == expected
    assert collect_files([str(tmp_path / "study")]) == expected


def test_the_current_folder_lists_texts_as_their_paths_spell_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """"." lists "./x" from scandir: spelled "x", as its Path spells it, by either
    listing; a file reached again by another spelling (absolute, "./", "//") is
    listed once, where first reached."""
    from dicomnet.services.store_listing import listed_texts

    make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    texts = listed_texts(["."])
    assert texts == [p.as_posix() for p in collect_files(["."])]
    assert texts[:2] == ["A/upper", "a/x"] and not any(t.startswith("./") for t in texts)
    assert listed_texts([str(tmp_path / "b"), "b", "./b", ".//b", "a//x", "a/x"]) == [
        str(tmp_path / "b"), "a/x"]
    assert listed_texts(["a/../b", "b"]) == ["a/../b", "b"]
