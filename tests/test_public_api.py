"""The public API is what ``dicomnet.__all__`` says, every name in it exists, and
it is loaded lazily (PEP 562): importing dicomnet, or running one ``dicomnet``
command, does not import what that command does not use."""

from __future__ import annotations

import importlib
import subprocess
import sys

import dicomnet


def test_all_names_exist() -> None:
    missing = [name for name in dicomnet.__all__ if not hasattr(dicomnet, name)]
    assert missing == []


def test_all_is_sorted_and_unique() -> None:
    assert len(set(dicomnet.__all__)) == len(dicomnet.__all__)


def test_no_public_name_left_out() -> None:
    exported = set(dicomnet._EXPORTS) | {"__version__"}
    assert exported == set(dicomnet.__all__)
    assert set(dicomnet.__all__) <= set(dir(dicomnet))
    for name, module in dicomnet._EXPORTS.items():  # each from the module it names
        assert getattr(dicomnet, name) is getattr(
            importlib.import_module(module, "dicomnet"), name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    assert not hasattr(dicomnet, "nothing_like_this")


def _modules_after(statement: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{statement}; import sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=60)
    return set(done.stdout.split())


def test_importing_dicomnet_loads_none_of_its_dependencies() -> None:
    loaded = _modules_after("import dicomnet")
    assert not loaded & {"asyncio", "ssl", "pydicom", "cryptography", "sqlite3", "rich", "click"}


def test_the_echo_command_loads_neither_pydicom_nor_the_store_nor_rich() -> None:
    loaded = _modules_after("import dicomnet.cli.main, dicomnet.cli.echo")
    assert {"asyncio", "ssl", "click"} <= loaded  # what echo needs
    assert not loaded & {"pydicom", "sqlite3", "rich", "dicomnet.services.storage",
                         "dicomnet.aio.server"}
