"""Smoke test of the benchmark script: it runs and prints its table (no timing checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "store_bench.py"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_store_bench_quick_dicomnet_only() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", "dicomnet"],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "### TLS 1.3, mutual authentication" in out
    assert "### plain TCP" in out
    assert "| dicomnet |" in out
    assert "FAIL" not in out
