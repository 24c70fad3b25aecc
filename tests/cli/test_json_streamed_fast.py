"""--json's streamed results are written by the C encoder, one call per object,
where json's indenting encoder (pure Python: ``indent`` is not in 3.11's C
encoder) made ~390 Python calls per object of ``dicomnet store``: more than half
of the client's Python calls per sent image (bench/client_calls.py). The bytes
stay those of ``json.dumps(..., indent=2, default=str)`` of the safe document."""

from __future__ import annotations

import enum
import functools
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from dicomnet.cli import output
from dicomnet.cli.jsontext import Streamed, json_safe


class _Kind(enum.IntEnum):
    A = 7


def _result(n: int) -> dict[str, Any]:
    """A flat result as ``dicomnet store --json`` writes one (its field kinds)."""
    return {"path": f"in/{n}.dcm", "sop_instance_uid": f"1.2.3.{n}", "status": 0,
            "status_text": "Success", "ok": True, "sent": True, "attempts": 1,
            "size": 524288 + n, "error": None, "note": None, "dropped_meta": [],
            "converted_to": None, "warning": False, "not_dicom": False,
            "dicomdir": False, "retryable": False}


#: Items that take every path: flat, nested, empty, surrogates (a file name's byte
#: that is not UTF-8; a non-BMP character's pair), a text spelling "\ud", floats,
#: an int enum, non-str keys, objects for ``default=str``.
_ODD: list[Any] = [
    {}, [], (), {"a": []}, {"a": {}}, {"a": ()}, {"a": [1, "x", None]},
    {"a": {"b": {"c": [True, {"d": 1.5}]}}, "e": "f"},
    {"path": "in/\udcff.dcm", "ok": True}, {"\udcfe": 1},
    {"t": "emoji \U0001f600 and \u00e9"}, {"t": "C:\\udir\\x"},
    {"f": 1.0e300, "g": float("nan"), "h": float("inf"), "i": -float("inf"), "j": 0.1},
    {"k": _Kind.A, "l": True, "m": False, "n": None, "o": -5},
    {1: "int key", 2.5: "float key", None: "none key"}, {True: "bool key", False: 0},
    {"p": Path("a/b"), "q": b"bytes"}, {"r": Path("in/\udcff")},
    "a string item", 12, None, [1, [2, [3]]], {"s": "line\nbreak\t\"quoted\""},
]


def _expected(doc: dict[str, Any]) -> str:
    safe = json_safe(doc)
    assert isinstance(safe, dict)
    plain = {k: [json_safe(i) for i in v] if isinstance(v, Streamed) else v
             for k, v in safe.items()}
    return json.dumps(plain, indent=2, default=str) + "\n"


def _printed(monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any]) -> str:
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    output.print_json(doc)
    return stdout.getvalue()


@pytest.mark.parametrize("items", [_ODD, [_result(n) for n in range(3)], []],
                         ids=["odd", "results", "none"])
def test_a_streamed_array_is_written_as_json_dumps_writes_it(
        monkeypatch: pytest.MonkeyPatch, items: list[Any]) -> None:
    doc = {"total": len(items), "tls": {"version": "TLSv1.3", "list": [1, 2]},
           "results": Streamed(lambda: iter(items), len(items)), "seconds": 0.25,
           "empty": {}, "error": None}
    assert _printed(monkeypatch, doc) == _expected(doc)


def test_each_item_alone_is_written_as_json_dumps_writes_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for item in _ODD:
        doc = {"results": Streamed(functools.partial(iter, [item]), 1)}
        assert _printed(monkeypatch, doc) == _expected(doc), item


def test_a_streamed_array_shorter_than_said_is_written_as_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {"results": Streamed(lambda: iter([]), 3), "x": 1}
    assert _printed(monkeypatch, doc) == '{\n  "results": [\n  ],\n  "x": 1\n}\n'


def test_a_flat_result_costs_a_few_python_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    count = 500
    items = [_result(n) for n in range(count)]
    doc = {"total": count, "results": Streamed(lambda: iter(items), count)}
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    calls = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(profile)
    try:
        output.print_json(doc)
    finally:
        sys.setprofile(None)
    assert stdout.getvalue() == _expected(doc)
    # Before: ~160 Python and ~200 built-in calls per result.
    assert calls / count < 12
