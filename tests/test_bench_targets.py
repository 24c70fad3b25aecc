"""bench/store_bench.py's verdicts on the issue's targets: the ratio of the medians
decides, and with two runs or more the fastest runs' ratio is printed beside it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def store_bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("store_bench")
    finally:
        sys.path.remove(str(BENCH))


def _results(store_bench: ModuleType, seconds: dict[str, list[float]]) -> dict[
        tuple[str, str, str], object]:
    images = store_bench.cases(False)[0]
    out = {}
    for variant, runs in seconds.items():
        m = store_bench.Measurement("tls", variant, images.name, images.count, 100_000_000)
        m.seconds.extend(runs)
        out[("tls", variant, images.name)] = m
    return out


def _images_line(store_bench: ModuleType, results: dict[tuple[str, str, str], object]) -> str:
    report = sys.modules["report"]  # bench/report.py, imported by store_bench
    lines: list[str] = report.targets(results, "tls", store_bench.cases(False))
    return next(line for line in lines if "512 KB vs DCMTK" in line)


def test_a_slow_run_of_dcmtk_shows_beside_the_median_verdict(store_bench: ModuleType) -> None:
    # Medians 0.3 against 0.4 s: met (1.33x); fastest runs 0.3 against 0.2 s: 0.67x.
    results = _results(store_bench, {"dicomnet": [0.3, 0.3], "dcmtk": [0.2, 0.6]})
    line = _images_line(store_bench, results)
    assert line == ("- 200 x 512 KB vs DCMTK: 1.33x (target >= 1.0x) met; "
                    "fastest run against fastest run 0.67x")


def test_one_run_each_prints_the_verdict_alone(store_bench: ModuleType) -> None:
    results = _results(store_bench, {"dicomnet": [0.5], "dcmtk": [0.4]})
    assert _images_line(store_bench, results) == (
        "- 200 x 512 KB vs DCMTK: 0.80x (target >= 1.0x) MISSED")


def test_a_stack_not_measured_is_said(store_bench: ModuleType) -> None:
    results = _results(store_bench, {"dicomnet": [0.3, 0.3]})
    assert _images_line(store_bench, results) == "- 200 x 512 KB vs DCMTK: not measured"


def test_the_on_disk_table_adds_each_run_s_sync_to_it(store_bench: ModuleType) -> None:
    """Beyond the issue: the rate until the data is on disk is over each run plus
    the ``sync`` after it; the medians are of those sums, the base DCMTK's."""
    results = _results(store_bench, {"dicomnet": [0.30, 0.32], "dcmtk": [0.25, 0.27]})
    results[("tls", "dicomnet", "images")].sync_seconds.extend([0.01, 0.01])  # type: ignore[attr-defined]
    results[("tls", "dcmtk", "images")].sync_seconds.extend([0.15, 0.17])  # type: ignore[attr-defined]
    variants = [v for v in store_bench.VARIANTS if v.key in ("dicomnet", "dcmtk")]
    report = sys.modules["report"]
    lines: list[str] = report.on_disk_table(results, "tls", variants,
                                            store_bench.cases(False))
    assert lines[0].startswith("Until the data is on disk (tls;")
    rows = {line.split(" | ")[0]: line.strip("| ").split(" | ") for line in lines
            if line.startswith("| dicomnet |") or line.startswith("| DCMTK 3.6.7 |")}
    # 100 MB over the medians of 0.31, 0.33 s (dicomnet: 0.32) and 0.40, 0.44 s (DCMTK: 0.42).
    assert rows["| dicomnet"][1:4] == ["312", "1.31x", "0.010"]
    assert rows["| DCMTK 3.6.7"][1:4] == ["238", "1.00x", "0.160"]
    # The cases not measured say so.
    assert rows["| dicomnet"][4:] == ["n/a"] * 6


def test_a_run_without_its_sync_has_no_on_disk_rate(store_bench: ModuleType) -> None:
    results = _results(store_bench, {"dicomnet": [0.3, 0.3]})
    m = results[("tls", "dicomnet", "images")]
    assert m.rate("MB/s", on_disk=True) is None  # type: ignore[attr-defined]
    m.sync_seconds.extend([0.1, 0.3])  # type: ignore[attr-defined]
    assert m.rate("MB/s", on_disk=True) == pytest.approx(100 / 0.5)  # type: ignore[attr-defined]
    assert m.rate("MB/s", on_disk=True, best=True) == pytest.approx(100 / 0.4)  # type: ignore[attr-defined]
