"""Smoke test of bench/senders.py with its real peers: DCMTK's storescu sending to
dicomnet's server and to Orthanc in alternating order (no timing checked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench_output import assert_on_disk_rounds
from tests.interop.conftest import Dcmtk

pytestmark = pytest.mark.interop

SENDERS = Path(__file__).resolve().parents[2] / "bench" / "senders.py"


def test_senders_alternates_the_servers_under_one_sender(
        dcmtk: Dcmtk, orthanc_binary: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SENDERS), "small", "--quick", "--no-wait",
         "--servers", "dicomnet,orthanc", "--rounds", "2"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # its files and stamp stay here
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "sender: DCMTK storescu" in done.stdout
    rounds = [line.split()[2] for line in done.stdout.splitlines() if line.startswith("round")]
    # Every server once per round (every object counted), the other order next round.
    assert rounds == ["dicomnet", "orthanc", "orthanc", "dicomnet"]
    assert "FAILED" not in done.stdout
    assert "orthanc          median" in done.stdout
    assert "x of dicomnet" in done.stdout
    # Every round, and the medians, also until the data is on disk.
    assert_on_disk_rounds(done.stdout, "obj/s", "orthanc", 2, "dicomnet")


def test_senders_runs_several_senders_at_once(
        dcmtk: Dcmtk, orthanc_binary: Path, tmp_path: Path) -> None:
    """--senders 3: the files dealt between three storescu processes; every object
    must arrive (each server's count is checked by the script), storescp with
    --fork to serve them at once."""
    done = subprocess.run(
        [sys.executable, str(SENDERS), "small", "--quick", "--no-wait",
         "--servers", "dicomnet,orthanc,dcmtk", "--rounds", "1", "--senders", "3"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "sender: 3 x DCMTK storescu at once" in done.stdout
    rounds = [line.split()[2] for line in done.stdout.splitlines() if line.startswith("round")]
    assert rounds == ["dicomnet", "orthanc", "dcmtk"]
    assert "FAILED" not in done.stdout
