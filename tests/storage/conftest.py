"""Fixtures for the storage tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A storage root inside tmp_path, so escapes land in tmp_path and are seen."""
    path = tmp_path / "root"
    path.mkdir()
    return path
