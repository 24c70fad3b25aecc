"""Smoke test of the benchmark script: it runs and prints its table (no timing checked)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench_output import assert_on_disk_rounds

BENCH = Path(__file__).resolve().parents[1] / "bench" / "store_bench.py"


def in_tmp(tmp_path: Path) -> dict[str, str]:
    """The environment for a benchmark run whose temporary files, and the stamp a
    run leaves for the next (store_bench.DELETED_STAMP), stay in ``tmp_path``."""
    return {**os.environ, "TMPDIR": str(tmp_path)}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def _pairs_small(tmp_path: Path, stacks: str, rounds: int
                 ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``pairs.py small --quick`` with these stacks, run to success; the stacks in
    the order their rounds ran."""
    done = subprocess.run(
        [sys.executable, str(BENCH.with_name("pairs.py")), "small", "--quick", "--no-wait",
         "--stacks", stacks, "--rounds", str(rounds)],
        capture_output=True, text=True, timeout=180, check=False, env=in_tmp(tmp_path),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    order = [line.split()[2] for line in done.stdout.splitlines() if line.startswith("round")]
    return done, order


def test_store_bench_quick_dicomnet_only(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", "dicomnet"],
        capture_output=True, text=True, timeout=180, check=False, env=in_tmp(tmp_path),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "### TLS 1.3, mutual authentication" in out
    assert "### plain TCP" in out
    assert "| dicomnet |" in out
    assert "FAIL" not in out
    # The CPU table: every dicomnet cell measured, server / client / their sum.
    assert "CPU seconds per run (tls, medians, start-up excluded):" in out
    row = next(line for line in out.split("CPU seconds per run (tls")[1].splitlines()
               if line.startswith("| dicomnet |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")][1:]
    assert len(cells) == 3
    for cell in cells:
        server, client, total = (float(x) for x in cell.split(" / "))
        assert server > 0 and client > 0 and abs(server + client - total) < 0.011
    # Until on disk: each case's rate over the run and the sync after it (no DCMTK
    # here, so no ratio), never above the rate of the run alone.
    rates = next(line for line in out.split("### TLS 1.3")[1].splitlines()
                 if line.startswith("| dicomnet |")).strip("| ").split(" | ")
    on_disk = next(line for line in out.split("Until the data is on disk (tls;")[1].splitlines()
                   if line.startswith("| dicomnet |")).strip("| ").split(" | ")
    assert on_disk[2::3] == ["n/a"] * 3
    for at, run_rate in ((1, rates[1]), (4, rates[3]), (7, rates[6])):
        assert 0 < float(on_disk[at]) <= float(run_rate)
        assert float(on_disk[at + 2]) >= 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_pairs_alternates_its_stacks_and_prints_medians(tmp_path: Path) -> None:
    done, rounds = _pairs_small(tmp_path, "dicomnet,dicomnet-nosync", 2)
    # Every stack once per round, in the other order in the second round.
    assert rounds == ["dicomnet", "dicomnet-nosync", "dicomnet-nosync", "dicomnet"]
    assert "FAILED" not in done.stdout
    assert "dicomnet-nosync  median" in done.stdout
    assert "x of dicomnet" in done.stdout
    # Each round, and the medians, also until the data is on disk.
    assert_on_disk_rounds(done.stdout, "obj/s", "dicomnet-nosync", 2, "dicomnet")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_pairs_measures_the_python_ssl_ceiling_beside_dicomnet(tmp_path: Path) -> None:
    """``python-ssl`` moves the large case's bytes over bare ``ssl`` sockets, in the
    same rounds; it is refused for any other case."""
    pairs = str(BENCH.with_name("pairs.py"))
    done = subprocess.run(
        [sys.executable, pairs, "large", "--quick", "--no-wait",
         "--stacks", "dicomnet,python-ssl", "--rounds", "1"],
        capture_output=True, text=True, timeout=180, check=False, env=in_tmp(tmp_path),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rounds = [line.split()[2] for line in done.stdout.splitlines() if line.startswith("round")]
    assert rounds == ["dicomnet", "python-ssl"]
    assert "python-ssl       median" in done.stdout
    refused = subprocess.run(
        [sys.executable, pairs, "small", "--quick", "--no-wait", "--stacks", "dicomnet,python-ssl"],
        capture_output=True, text=True, timeout=60, check=False, env=in_tmp(tmp_path),
    )
    assert refused.returncode == 2
    assert "large objects over TLS only" in refused.stderr


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_pairs_runs_pynetdicom_with_tcp_nodelay(tmp_path: Path) -> None:
    """The tuned pynetdicom row (its peer script's --nodelay) runs to the end."""
    done, rounds = _pairs_small(tmp_path, "dicomnet,pynetdicom-nodelay", 1)
    assert rounds == ["dicomnet", "pynetdicom-nodelay"]
    assert "FAILED" not in done.stdout


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_sched_wait_prints_run_and_wait_per_process(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH.with_name("sched_wait.py")), "large", "--quick",
         "--stacks", "dicomnet", "--rounds", "1", "--threads"],
        capture_output=True, text=True, timeout=180, check=False, env=in_tmp(tmp_path),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # --threads: the server's event loop (its main thread) and its store thread,
    # each with its own seconds on a CPU and waiting for one.
    per_thread = re.findall(r"^    dicomnet-0 (main|thread \d+) +run (\d+\.\d{3}) s wait "
                            r"(\d+\.\d{3}) s$", done.stdout, re.M)
    assert [name for name, _, _ in per_thread][:1] == ["main"], done.stdout
    assert len(per_thread) >= 2, done.stdout
    assert float(per_thread[0][1]) > 0, done.stdout
    line = next(line for line in done.stdout.splitlines() if line.startswith("round 1"))
    # The server was seen busy (a transfer of 64 MB), its figures in CPUs.
    figures = re.findall(r"\b(run|wait|idle) (\d+\.\d\d)", line)
    assert [name for name, _ in figures] == ["run", "wait", "run", "wait", "idle"], line
    # The server's run was seen at all: how much of a CPU it got depends on the
    # machine's load (0.18 once, beside another test run), so no bound on it.
    assert float(figures[0][1]) > 0, line
    assert all(0 <= float(value) <= 2.5 for _, value in figures), line


@pytest.mark.parametrize("fsync", [False, True])
def test_ssl_ceiling_objects_mode_stores_and_answers_every_object(
        tmp_path: Path, fsync: bool) -> None:
    """``ssl_ceiling.py --objects``: the images case's ceiling in bare Python ``ssl``;
    the script itself refuses a run whose server did not store every object whole."""
    done = subprocess.run(
        [sys.executable, str(BENCH.with_name("ssl_ceiling.py")), "--objects", "12",
         "--size", "40000", "--window", "4", "--runs", "1", *(["--fsync"] if fsync else [])],
        capture_output=True, text=True, timeout=120, check=False, env=in_tmp(tmp_path),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    line = done.stdout.strip()
    assert line.startswith("Python ssl ceiling, TLS 1.3 mutual auth, 12 x 39 KiB objects")
    assert ("fsynced" in line) is fsync
    rate = float(re.search(r"median (\d+) MB/s", line).group(1))  # type: ignore[union-attr]
    assert rate > 0
    assert not list(tmp_path.glob("ssl-ceiling-*"))  # its folder removed


def test_store_rounds_stores_every_object_in_each_mode(tmp_path: Path) -> None:
    """bench/store_rounds.py: every mode's objects stored (the script exits non-zero
    for one that is not), modes alternated per run, its folder removed after."""
    out = tmp_path / "rounds.json"
    done = subprocess.run(
        [sys.executable, str(BENCH.with_name("store_rounds.py")), "--count", "6",
         "--size", "64K", "--runs", "2", "--folder", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=180, check=False, env=in_tmp(tmp_path),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert (report["count"], report["size"]) == (6, 65536)
    assert [r["mode"] for r in report["runs"]] == [
        "durable", "nosync", "plain", "plain", "nosync", "durable"]
    assert all(r["wall"] > 0 and r["cpu"] > 0 for r in report["runs"])
    medians = [line.split()[0] for line in done.stdout.splitlines() if " median: " in line]
    assert medians == ["durable", "nosync", "plain"]
    assert not list(tmp_path.glob("store-rounds-*"))
