"""Names of a package imported on first use (PEP 562), for ``dicomnet`` and
``dicomnet.security``: importing the package, or one of its modules, loads none
of the others (``cryptography``, ``pydicom``, ``sqlite3`` come with them)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``, whose
    public ``name`` lives in the module ``exports[name]`` (relative to it), or is
    that module when it is ``"." + name``."""
    namespace = sys.modules[package].__dict__

    def getattr_(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        imported = importlib.import_module(module, package)
        # A subpackage exported as itself ("blocking": ".blocking"): the module.
        value = imported if module == f".{name}" else getattr(imported, name)
        namespace[name] = value  # once: later lookups do not come here
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return getattr_, dir_
