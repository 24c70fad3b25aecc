"""The public API is what ``dicomnet.__all__`` says, and every name in it exists."""

from __future__ import annotations

import dicomnet


def test_all_names_exist() -> None:
    missing = [name for name in dicomnet.__all__ if not hasattr(dicomnet, name)]
    assert missing == []


def test_all_is_sorted_and_unique() -> None:
    assert len(set(dicomnet.__all__)) == len(dicomnet.__all__)


def test_no_public_name_left_out() -> None:
    public = {n for n in vars(dicomnet) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(dicomnet, n)).__name__ == "module"}
    assert public - modules - {"annotations"} == set(dicomnet.__all__) - {"__version__"}
