"""Path safety: hostile UIDs and labels through every function that builds a path."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomnet.errors import ConfigurationError
from dicomnet.storage import (
    AtomicWriter,
    Layout,
    StorageError,
    UnsafeNameError,
    join_relative,
    join_under,
    part10_header,
    safe_label,
    safe_relative_path,
    safe_uid,
)

from .helpers import tree

HOSTILE = [
    "../x",
    "..",
    ".",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "1.2\x00.3",
    "1.2.3/../../..",
    "1." + "2" * 63,  # 65 characters
    "",
    "\x00",
    "   ",
    "1\uff0e2\uff0e3",  # FULLWIDTH FULL STOP look-alikes
    "\u0661.\u0662",  # ARABIC-INDIC digits one and two
    "1.2\u2024.3",  # ONE DOT LEADER
    "1.02.3",  # leading zero
    "01.2",
    "1..2",
    ".1.2",
    "1.2.",
    "1.2.3\n",
    " 1.2.3",
    "1.2 .3",
    "C:\\x",
    "1.2.3/",
    "-1.2",
    "+1.2",
    "1e5",
]

VALID = [
    "0",
    "1.2.840.10008.1.2",
    "1.2.0.3",
    "2.25.329800735698586629295641978511506172918",
    "1." + "2" * 62,  # exactly 64 characters
]


@pytest.mark.parametrize("value", HOSTILE)
def test_safe_uid_refuses_hostile(value: str) -> None:
    with pytest.raises(UnsafeNameError):
        safe_uid(value)


def test_unsafe_name_error_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        safe_uid("../x")
    assert issubclass(UnsafeNameError, ValueError)


@pytest.mark.parametrize("value", VALID)
def test_safe_uid_accepts_valid(value: str) -> None:
    assert safe_uid(value) == value


@pytest.mark.parametrize("padding", ["\x00", " ", "\x00\x00", " \x00"])
def test_safe_uid_strips_trailing_padding(padding: str) -> None:
    assert safe_uid("1.2.3" + padding) == "1.2.3"


@given(st.text(max_size=80))
def test_safe_uid_output_is_always_a_plain_uid(value: str) -> None:
    try:
        uid = safe_uid(value)
    except UnsafeNameError:
        return
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)*", uid, re.ASCII)
    assert len(uid) <= 64
    assert value.startswith(uid)


# ---------------------------------------------------------------- safe_label


@pytest.mark.parametrize(
    "value", [*HOSTILE, "\uff21\uff25", "STORE\u200bSCP", ".hidden", "...", "-"]
)
def test_safe_label_maps_hostile_to_one_safe_component(value: str) -> None:
    label = safe_label(value)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", label, re.ASCII)
    assert label not in ("", ".", "..")
    assert not label.startswith(".")
    assert len(label) <= 64
    # And it really is usable as exactly one path component.
    assert join_under(Path("/srv/root"), label) == Path("/srv/root", label)


@pytest.mark.parametrize("value", ["STORESCP", "PACS_1", "my-ae.2", "P12345"])
def test_safe_label_keeps_clean_values(value: str) -> None:
    assert safe_label(value) == value


def test_safe_label_ignores_insignificant_spaces() -> None:
    # PS3.5: leading/trailing spaces are not significant in AE and LO values.
    assert safe_label("  STORESCP ") == "STORESCP"


def test_safe_label_exact_mappings() -> None:
    assert safe_label("../x") == "_._x-" + _digest("../x")
    assert safe_label("") == "_-" + _digest("")
    assert safe_label(".hidden") == "_hidden-" + _digest(".hidden")
    assert safe_label("a//\\b") == "a_b-" + _digest("a//\\b")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def test_safe_label_hostile_values_do_not_collide() -> None:
    values = ["a/b", "a\\b", "a:b", "a b", "a\x00b", "a//b", "a_b", "a\u00e9b", "a\ufffdb"]
    labels = [safe_label(v) for v in values]
    assert len(set(labels)) == len(values)


def test_safe_label_clean_value_cannot_impersonate_a_mapped_one() -> None:
    mapped = safe_label("a/b")
    assert safe_label(mapped) != mapped


def test_safe_label_truncates_with_hash() -> None:
    long_a = "A" * 100
    long_b = "A" * 99 + "B"
    assert len(safe_label(long_a)) == 64
    assert safe_label(long_a) != safe_label(long_b)
    assert len(safe_label("A" * 30, max_length=16)) == 16


def test_safe_label_rejects_tiny_max_length() -> None:
    with pytest.raises(ConfigurationError):
        safe_label("x", max_length=4)


@given(st.text(max_size=100))
def test_safe_label_properties(value: str) -> None:
    label = safe_label(value)
    assert label == safe_label(value)  # deterministic
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", label, re.ASCII)
    assert label not in (".", "..")
    assert not label.startswith(".")


@given(st.text(max_size=30), st.text(max_size=30))
def test_safe_label_injective_on_significant_text(a: str, b: str) -> None:
    if a.strip(" \x00") != b.strip(" \x00"):
        assert safe_label(a) != safe_label(b)


# ---------------------------------------------------------------- join_under


@pytest.mark.parametrize(
    "parts",
    [
        ("..",),
        (".",),
        ("",),
        ("/etc/passwd",),
        ("a/b",),
        ("a\\b",),
        ("a\x00b",),
        ("ok", "..", ".."),
        (".hidden",),
        ("C:",),
        (),
    ],
)
def test_join_under_refuses(tmp_path: Path, root: Path, parts: tuple[str, ...]) -> None:
    before = tree(tmp_path)
    with pytest.raises(UnsafeNameError):
        join_under(root, *parts)
    assert tree(tmp_path) == before


def test_join_under_refuses_symlink_escape(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(UnsafeNameError):
        join_under(root, "link", "x.dcm")


def test_join_under_accepts_plain_parts(root: Path) -> None:
    assert join_under(root, "1.2", "3.4.dcm") == root / "1.2" / "3.4.dcm"


@pytest.mark.parametrize("relative", ["../x", "a//b", "/etc/passwd", "a/./b", "a/../../b", ""])
def test_relative_paths_refused(root: Path, relative: str) -> None:
    with pytest.raises(UnsafeNameError):
        safe_relative_path(relative)
    with pytest.raises(UnsafeNameError):
        join_relative(root, relative)


def test_join_relative(root: Path) -> None:
    assert join_relative(root, "1.2/3.4/5.dcm") == root / "1.2" / "3.4" / "5.dcm"


# ---------------------------------------------------------------- Layout, AtomicWriter, header


@pytest.mark.parametrize("layout", list(Layout))
@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("where", ["sop", "study", "series"])
def test_layout_refuses_hostile_uids(
    tmp_path: Path, root: Path, layout: Layout, value: str, where: str
) -> None:
    uids = {"sop": "1.2.3", "study": "1.2.4", "series": "1.2.5"}
    uids[where] = value
    before = tree(tmp_path)
    if layout is Layout.FLAT and where != "sop":
        # The flat layout does not use these UIDs at all.
        assert layout.destination(
            root,
            sop_instance_uid=uids["sop"],
            study_instance_uid=uids["study"],
            series_instance_uid=uids["series"],
        ) == (root / "1.2.3.dcm")
        return
    with pytest.raises(UnsafeNameError):
        layout.destination(
            root,
            sop_instance_uid=uids["sop"],
            study_instance_uid=uids["study"],
            series_instance_uid=uids["series"],
        )
    with pytest.raises(UnsafeNameError):
        layout.relative_path(
            sop_instance_uid=uids["sop"],
            study_instance_uid=uids["study"],
            series_instance_uid=uids["series"],
        )
    assert tree(tmp_path) == before


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("where", ["sop", "study", "series"])
def test_layout_refuses_hostile_uids_next_to_a_known_folder(
    tmp_path: Path, root: Path, value: str, where: str
) -> None:
    """Folders are remembered by the UIDs they were made of (Layout.destination):
    a hostile UID beside the study and series of a folder known already, or
    the SOP Instance UID of an object going into one, is refused all the same."""
    uids = {"sop_instance_uid": "1.2.3", "study_instance_uid": "1.2.4",
            "series_instance_uid": "1.2.5"}
    assert Layout.HIERARCHICAL.destination(root, **uids) == root / "1.2.4" / "1.2.5" / "1.2.3.dcm"
    uids[f"{where}_instance_uid"] = value
    before = tree(tmp_path)
    with pytest.raises(UnsafeNameError):
        Layout.HIERARCHICAL.destination(root, **uids)
    assert tree(tmp_path) == before


def test_layout_paths(root: Path) -> None:
    uids = {
        "sop_instance_uid": "1.2.3\x00",
        "study_instance_uid": "1.2.4",
        "series_instance_uid": "1.2.5 ",
    }
    assert Layout.HIERARCHICAL.destination(root, **uids) == root / "1.2.4" / "1.2.5" / "1.2.3.dcm"
    assert Layout.HIERARCHICAL.relative_path(**uids) == "1.2.4/1.2.5/1.2.3.dcm"
    assert Layout.FLAT.destination(root, **uids) == root / "1.2.3.dcm"
    with pytest.raises(StorageError):
        Layout.HIERARCHICAL.destination(root, sop_instance_uid="1.2.3")


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_uid_never_reaches_the_disk(tmp_path: Path, root: Path, value: str) -> None:
    """The SCP's path: Layout -> AtomicWriter -> commit; a hostile UID stops at step one."""
    before = tree(tmp_path)
    with pytest.raises(UnsafeNameError):
        dest = Layout.HIERARCHICAL.destination(
            root, sop_instance_uid=value, study_instance_uid="1.2", series_instance_uid="1.3"
        )
        with AtomicWriter(dest) as writer:  # pragma: no cover - must not be reached
            writer.write(b"x")
            writer.commit()
    assert tree(tmp_path) == before


@pytest.mark.parametrize("value", HOSTILE)
def test_part10_header_refuses_hostile_uids(value: str) -> None:
    with pytest.raises(UnsafeNameError):
        part10_header(
            sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
            sop_instance_uid=value,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            implementation_class_uid="1.2.3",
            implementation_version_name="X",
            source_ae_title=None,
        )
