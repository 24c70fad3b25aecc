"""The ``dicomnet`` command line: a user of the public API (click + rich), no protocol logic."""

from __future__ import annotations

from dicomnet.cli.main import main

__all__ = ["main"]
