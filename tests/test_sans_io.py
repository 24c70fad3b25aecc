"""The sans-I/O rule (ARCHITECTURE.md rule 1): ul/ and dimse/ never import I/O or the clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

FORBIDDEN = frozenset({"socket", "ssl", "asyncio", "threading", "selectors", "time"})
PACKAGE = Path(__file__).resolve().parent.parent / "src" / "dicomnet"
MODULES = sorted(path for layer in ("ul", "dimse") for path in (PACKAGE / layer).rglob("*.py"))


def imported_top_level_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def test_the_layers_have_modules() -> None:
    assert PACKAGE / "dimse" / "__init__.py" in MODULES
    assert PACKAGE / "ul" / "__init__.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_io_imports(path: Path) -> None:
    bad = imported_top_level_names(path.read_text(encoding="utf-8")) & FORBIDDEN
    assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "source",
    [
        "import socket",
        "import asyncio.streams",
        "from time import monotonic",
        "from ssl import SSLContext",
        "def f():\n    import threading",
        "import importlib\nimportlib.import_module('selectors')",
        "__import__('time')",
    ],
)
def test_the_checker_catches_each_form(source: str) -> None:
    assert imported_top_level_names(source) & FORBIDDEN


def test_the_checker_ignores_lookalikes() -> None:
    source = "import timeit\nfrom .time import x\nimport sslkeylog"
    assert not imported_top_level_names(source) & FORBIDDEN
