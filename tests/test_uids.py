"""UIDs in messages: "Name (uid)" for those the registry names (PS3.6 Annex A),
the bare value otherwise, and never an exception or a warning for junk."""

from __future__ import annotations

import warnings

import pytest

from dicomnet.uids import named_uid, uid_name, uid_type


def test_a_known_uid_is_named_before_its_number() -> None:
    assert named_uid("1.2.840.10008.5.1.4.1.1.20") == (
        "Nuclear Medicine Image Storage (1.2.840.10008.5.1.4.1.1.20)")
    assert named_uid("1.2.840.10008.1.2.5") == "RLE Lossless (1.2.840.10008.1.2.5)"
    assert uid_name("1.2.840.10008.1.2") == "Implicit VR Little Endian"
    assert uid_type("1.2.840.10008.1.2.5") == "Transfer Syntax"
    assert uid_type("1.2.840.10008.5.1.4.1.1.7") == "SOP Class"


def test_padding_does_not_hide_the_name_nor_is_dropped_from_the_number() -> None:
    """The UI VR pads with NUL (PS3.5 9.1): the UID is still known."""
    assert uid_name("1.2.840.10008.1.2.1\0") == "Explicit VR Little Endian"


def test_an_unknown_uid_stays_bare() -> None:
    assert named_uid("1.2.826.0.1.3680043.8.498.1") == "1.2.826.0.1.3680043.8.498.1"
    assert uid_name("1.2.3") is None
    assert uid_type("1.2.3") is None
    assert named_uid("") == ""


@pytest.mark.parametrize("junk", ["abc\x00\x1b[31m", "1.2.\u202e3", "\udcff", "9" * 10_000,
                                  "1..2", " "])
def test_junk_from_a_file_neither_raises_nor_warns(junk: str) -> None:
    """pydicom's UID() warns of such values (an error under -W error): not used."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = named_uid(junk)
        assert uid_name(junk) is None and uid_type(junk) is None
    assert text == (junk if len(junk) <= 64 else junk[:64] + "...")


def test_not_a_string_is_shown_not_raised() -> None:
    assert named_uid(None) == "None"
    assert named_uid(b"1.2.840.10008.1.2") == "b'1.2.840.10008.1.2'"
    assert uid_name(42) is None
