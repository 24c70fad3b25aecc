"""dicomnet.tuning: glibc's malloc settings for a program moving large objects."""

from __future__ import annotations

import platform
import sys

import pytest

from dicomnet.tuning import tune_malloc_for_streaming


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_it_takes_effect_on_glibc() -> None:
    assert tune_malloc_for_streaming() is True
    # Large blocks now come from the heap: allocating and freeing one repeatedly
    # must still work (a smoke check that malloc is sane afterwards).
    for _ in range(20):
        block = bytearray(4 << 20)
        block[-1] = 1
        assert block[-1] == 1


def test_it_does_nothing_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert tune_malloc_for_streaming() is False
