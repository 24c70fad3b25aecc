"""bench/instructions.py's reading of callgrind output: self costs by object and
function, names decompressed, the inclusive cost of calls left to the callee."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def instructions() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # it imports store_bench, its neighbour
    try:
        return importlib.import_module("instructions")
    finally:
        sys.path.remove(str(BENCH))


# Hand-written in callgrind's format: ids are per kind (objects, files, functions),
# so file (3) and function (3) are different names; "calls=" is followed by the
# call's inclusive cost, which is the callee's, not the caller's.
SAMPLE = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 1610

ob=(2) /usr/lib/x86_64-linux-gnu/libc.so.6
fl=(2) ./string/memcpy.S
fn=(3) __memcpy_avx_unaligned_erms
0 1000
fn=(4) helper'2
0 3

ob=(1) /usr/lib/x86_64-linux-gnu/libssl.so.3
fl=(1) ???
fn=(1) SSL_read
0 100
cob=(2)
cfi=(3) ./ssl/record/rec_layer_s3.c
cfn=(3)
calls=35 0
0 1000
+2 7

ob=(2)
fl=(2)
fn=(3)
0 500
"""


def test_self_costs_by_object_and_function(instructions: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "cg.out.1"
    path.write_text(SAMPLE)
    costs = instructions.parse_callgrind(path)
    libssl, libc = "/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libc.so.6"
    assert costs == {(libssl, "SSL_read"): 107,
                     (libc, "__memcpy_avx_unaligned_erms"): 1500,
                     (libc, "helper"): 3}  # a recursion level is the same function
    assert sum(costs.values()) == 1610  # the summary: nothing counted twice
    assert dict(instructions.by_group(costs)) == {"libssl": 107, "libc": 1503}


def test_it_prints_its_usage() -> None:
    done = subprocess.run([sys.executable, str(BENCH / "instructions.py"), "--help"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PYTHONPATH": str(BENCH.parent / "src"), "PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr
    assert "callgrind" in done.stdout and "--syscalls" in done.stdout


def test_quickening_is_warm_up_out_of_the_per_image_total(instructions: ModuleType) -> None:
    # A 21-image run quickens code objects that a 1-image run never does: that
    # one-off cost gets its own row and stays out of the per-image total.
    py = "/usr/lib/libpython3.11.so.1.0"
    one = Counter({(py, "_PyEval_EvalFrameDefault"): 1_000})
    many = Counter({(py, "_PyEval_EvalFrameDefault"): 21_000, (py, "_PyCode_Quicken"): 4_000})
    assert dict(instructions.by_group(many)) == {
        "libpython": 21_000, instructions.WARM_UP: 4_000}
    costs = {"dicomnet": {"one": one, "images": many, "large": one}}
    text = instructions.report(costs, ["dicomnet"], 21, top=3)
    per_image = text.split("Instructions per MiB")[0]
    assert "| libpython | 1,000 |" in per_image
    assert f"| {instructions.WARM_UP} | 200 |" in per_image
    assert "| **total** (less warm-up) | **1,000** |" in per_image
