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
