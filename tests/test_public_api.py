"""The public API is what ``dicomnet.__all__`` says, every name in it exists, and
it is loaded lazily (PEP 562): importing dicomnet, or running one ``dicomnet``
command, does not import what that command does not use."""

from __future__ import annotations

import importlib
import socket
import subprocess
import sys
from pathlib import Path

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


def test_the_store_command_with_json_loads_no_rich(tmp_path: Path) -> None:
    """A script's run (``--json``) needs no progress bar or table: rich stays out."""
    from dicomnet.cli.demo import write_synthetic_ct

    write_synthetic_ct(tmp_path / "a.dcm", number=1, study_uid="1.2.3", series_uid="1.2.3.4",
                       size=8)
    with socket.socket() as sock:  # a port nobody listens on: the run fails at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    loaded = _modules_after(
        "from dicomnet.cli.main import main\n"
        "try:\n"
        f"    main(['store', '127.0.0.1', '{port}', {str(tmp_path / 'a.dcm')!r}, '--json'],"
        " standalone_mode=False)\n"
        "except BaseException:\n"
        "    pass")
    assert {"dicomnet.cli.store", "dicomnet.services.store_scu", "asyncio"} <= loaded
    assert "rich" not in loaded


def test_an_application_that_configured_no_logging_hears_nothing_from_the_library() -> None:
    """Python's last-resort handler printed dicomnet's warnings on stderr for an
    application that never asked (the logging HOWTO: libraries add a NullHandler);
    one that configures logging still gets them."""
    code = ("import logging, dicomnet; logging.getLogger('dicomnet.aio').warning('quiet')\n"
            "logging.basicConfig(); logging.getLogger('dicomnet.aio').warning('heard')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stderr == "WARNING:dicomnet.aio:heard\n"
