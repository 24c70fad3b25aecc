"""--json's document is written in pieces: dicomnet store of 20,000 files joined
its 10.7 MB whole first, its peak memory 139 MB where the text summary's was
77 MB (89 MB once written in pieces)."""

from __future__ import annotations

import io
import json
import sys

import pytest

from dicomnet.cli import output


class _Recorder(io.StringIO):
    """stdout, noting the length of each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []

    def write(self, s: str) -> int:
        self.writes.append(len(s))
        return super().write(s)


def test_a_large_document_is_written_in_pieces_as_json_dumps_writes_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {"total": 5000, "results": [{"path": f"in/{n}.dcm", "status": 0, "ok": True,
                                       "dropped_meta": [], "error": None}
                                      for n in range(5000)]}
    stdout = _Recorder()
    monkeypatch.setattr(sys, "stdout", stdout)
    output.print_json(doc)
    expected = json.dumps(doc, indent=2) + "\n"
    assert len(expected) > 8 * output._PIECE
    assert stdout.getvalue() == expected
    assert max(stdout.writes) < 2 * output._PIECE


def test_a_line_of_serve_is_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = _Recorder()
    monkeypatch.setattr(sys, "stdout", stdout)
    output.print_json({"event": "stored", "path": "a/b.dcm"}, line=True)
    assert stdout.getvalue() == '{"event": "stored", "path": "a/b.dcm"}\n'
