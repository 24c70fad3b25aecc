"""Status values (PS3.7 Annex C; PS3.4 B.2.3, C.4.1-C.4.3)."""

from __future__ import annotations

import pytest

from dicomnet.dimse.status import SUCCESS, Category, Service, Status, category_of
from dicomnet.errors import StatusError


@pytest.mark.parametrize(
    ("code", "category"),
    [
        (0x0000, "success"),
        (0x0001, "warning"),
        (0x0107, "warning"),  # attribute list error: a warning despite 01xx
        (0x0116, "warning"),  # attribute value out of range: likewise
        (0xB000, "warning"),
        (0xB006, "warning"),
        (0xB007, "warning"),
        (0xBFFF, "warning"),
        (0x0105, "failure"),
        (0x0110, "failure"),
        (0x0122, "failure"),
        (0x0124, "failure"),
        (0x0210, "failure"),
        (0x0213, "failure"),
        (0xA700, "failure"),
        (0xA7FF, "failure"),
        (0xA801, "failure"),
        (0xA900, "failure"),
        (0xC000, "failure"),
        (0xCFFF, "failure"),
        (0xFE00, "cancel"),
        (0xFF00, "pending"),
        (0xFF01, "pending"),
        (0x1234, "failure"),  # outside every class: never mistaken for success
        (0xFF02, "failure"),
        (0xFE01, "failure"),
    ],
)
def test_category(code: int, category: Category) -> None:
    assert category_of(code) == category
    assert Status(code).category == category


@pytest.mark.parametrize(
    ("code", "service", "text"),
    [
        (0x0000, None, "Success"),
        (0x0122, "storage", "Refused: SOP Class not supported"),
        (0xA700, "storage", "Refused: out of resources"),
        (0xA7F3, "storage", "Refused: out of resources"),  # A7xx range
        (0xA912, "storage", "Error: data set does not match SOP Class"),  # A9xx range
        (0xC211, "storage", "Error: cannot understand"),  # Cxxx range
        (0xB000, "storage", "Warning: coercion of data elements"),
        (0xB006, "storage", "Warning: elements discarded"),
        (0xB007, "storage", "Warning: data set does not match SOP Class"),
        (0xB000, "move", "Warning: sub-operations complete, one or more failures or warnings"),
        (0xA700, "find", "Refused: out of resources"),
        (0xA701, "get", "Refused: out of resources, unable to calculate number of matches"),
        (0xA702, "move", "Refused: out of resources, unable to perform sub-operations"),
        (0xA801, "move", "Refused: move destination unknown"),
        (0xA900, "find", "Error: identifier does not match SOP Class"),
        (0xC001, "find", "Failed: unable to process"),
        (0xFE00, "find", "Cancel: matching terminated due to cancel request"),
        (0xFF01, "find", "Pending: matches are continuing, optional keys not supported"),
        (0xFF00, "move", "Pending: sub-operations are continuing"),
        (0x1234, None, "Failure: a code in no status class (PS3.7 Annex C)"),
        (0xB123, None, "Warning: not a general code (PS3.7 Annex C); its service may "
                       "define it"),
    ],
)
def test_description(code: int, service: Service | None, text: str) -> None:
    assert Status(code, service).description == text


def test_predicates() -> None:
    assert Status(0).is_success and Status(0).is_final and not Status(0).is_failure
    assert Status(0xFF00).is_pending and not Status(0xFF00).is_final
    assert Status(0xFE00).is_cancel and not Status(0xFE00).is_failure
    assert Status(0xB000).is_warning and not Status(0xB000).is_failure
    assert Status(0xC000).is_failure and not Status(0xC000).is_success
    assert int(Status(0xA700)) == 0xA700
    assert str(Status(0xA801, "move")) == "0xA801 (failure: Refused: move destination unknown)"


def test_a_status_equals_its_code() -> None:
    """``await assoc.store(ds) == 0`` was False for a Success (a dataclass equals only
    its own class), and so was ``status == SUCCESS``, the constant beside it: a
    script that checked its result that way saw every object fail."""
    assert Status(0) == 0 and Status(0) == SUCCESS and 0 == Status(0)  # noqa: SIM300 (int first)
    assert Status(0xA700, "storage") == 0xA700 and Status(0xA700, "storage") != 0
    assert Status(0xA700, "storage") == Status(0xA700, "find") == Status(0xA700)
    assert Status(0xB000) != Status(0xB006) and Status(1) != True  # noqa: E712
    assert Status(0) != "0" and Status(0) != 0.5
    table: dict[object, str] = {Status(0xC000): "x"}
    assert table[0xC000] == "x" and 0x0110 in {Status(0x0110, "storage")}
    assert hash(Status(0xA700, "storage")) == hash(Status(0xA700)) == hash(0xA700)


@pytest.mark.parametrize("code", [0x0000, 0x0001, 0xB000, 0xFE00, 0xFF00, 0xFF01])
def test_raise_for_status_passes_non_failures(code: int) -> None:
    Status(code).raise_for_status()


@pytest.mark.parametrize("code", [0x0110, 0xA700, 0xC000, 0x0213, 0x4242])
def test_raise_for_status_raises_on_failure(code: int) -> None:
    with pytest.raises(StatusError) as exc:
        Status(code, "storage").raise_for_status()
    assert exc.value.status == code
    assert f"0x{code:04X}" in str(exc.value)


@pytest.mark.parametrize("code", [-1, 0x10000])
def test_code_must_be_us(code: int) -> None:
    with pytest.raises(ValueError):
        Status(code)


def test_the_storage_statuses_have_public_names() -> None:
    # PS3.4 B.2.3 and PS3.7 C: what an on_c_store handler may answer, by name.
    from dicomnet.dimse import status

    named = {name: getattr(status, name) for name in (
        "PROCESSING_FAILURE", "DUPLICATE_SOP_INSTANCE", "SOP_CLASS_NOT_SUPPORTED",
        "OUT_OF_RESOURCES", "DATASET_DOES_NOT_MATCH_SOP_CLASS", "CANNOT_UNDERSTAND",
        "COERCION_OF_DATA_ELEMENTS", "ELEMENTS_DISCARDED",
        "DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING")}
    assert named == {
        "PROCESSING_FAILURE": 0x0110, "DUPLICATE_SOP_INSTANCE": 0x0111,
        "SOP_CLASS_NOT_SUPPORTED": 0x0122, "OUT_OF_RESOURCES": 0xA700,
        "DATASET_DOES_NOT_MATCH_SOP_CLASS": 0xA900, "CANNOT_UNDERSTAND": 0xC000,
        "COERCION_OF_DATA_ELEMENTS": 0xB000, "ELEMENTS_DISCARDED": 0xB006,
        "DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING": 0xB007}
    assert set(named) <= set(status.__all__)
    assert [status.Status(v, "storage").category for v in named.values()] == (
        ["failure"] * 6 + ["warning"] * 3)
