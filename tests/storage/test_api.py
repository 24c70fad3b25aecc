"""The public surface of dicomnet.storage is what ``__all__`` says it is."""

from __future__ import annotations

import importlib

import pytest

import dicomnet.storage

MODULES = ["names", "files", "layout", "part10", "index", "header", "syncfs"]


def test_package_all_is_importable_and_complete() -> None:
    exported = set(dicomnet.storage.__all__)
    for name in exported:
        assert hasattr(dicomnet.storage, name), name
    for module_name in MODULES:
        module = importlib.import_module(f"dicomnet.storage.{module_name}")
        assert set(module.__all__) <= exported, module_name


@pytest.mark.parametrize("module_name", MODULES)
def test_module_all_names_exist(module_name: str) -> None:
    module = importlib.import_module(f"dicomnet.storage.{module_name}")
    for name in module.__all__:
        assert hasattr(module, name), name


def test_errors_hang_from_the_tree() -> None:
    from dicomnet.errors import ConfigurationError, DicomNetError

    assert issubclass(dicomnet.storage.StorageError, DicomNetError)
    assert issubclass(dicomnet.storage.NotPart10Error, dicomnet.storage.StorageError)
    assert issubclass(dicomnet.storage.UnsafeNameError, ConfigurationError)
