"""With --json anywhere on the command line, a usage error (exit 2) prints one JSON
document on stdout too, in the shape of the commands' own failures; click's text
stays on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import run_cli


def usage_error(*args: str | Path) -> tuple[dict[str, object], str]:
    """The document on stdout and the text on stderr of a run that must exit 2."""
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    return json.loads(result.stdout), result.stderr  # one document, nothing around it


@pytest.mark.parametrize(("args", "message"), [
    (["store", "--json", "127.0.0.1", "notaport", "x"],
     "Invalid value for 'PORT': 'notaport' is not a valid integer range."),
    (["echo", "--json", "--frobnicate"], "No such option '--frobnicate'."),
    (["echo", "--json"], "Missing argument 'HOST'."),
    (["store", "127.0.0.1", "104", "--json"], "Missing argument 'PATHS...'."),
    (["certs", "init", "--json"], "Missing argument 'DIRECTORY'."),
    (["reindex", "--json", "--frobnicate", "x"],
     "No such option '--frobnicate'. Did you mean '--create'?"),
    (["demo", "--count", "0", "--json"],
     "Invalid value for '--count': 0 is not in the range 1<=x<=100."),
    (["--json", "echo", "localhost"],  # not the group's option
     "No such option '--json'. Did you mean '--version'?"),
    (["echo", "localhost", "--json", "--key", __file__],  # found by the command itself
     "--key needs --cert (the certificate of that key)"),
])
def test_usage_errors_print_one_json_document(args: list[str], message: str) -> None:
    """A script reading stdout got nothing: click's usage text went to stderr and
    stdout was empty."""
    doc, err = usage_error(*args)
    assert doc == {"error": message, "exit_code": 2, "interrupted": False}
    assert "Usage: dicomnet" in err and f"Error: {message}" in err


def test_serve_usage_error_is_an_event_line() -> None:
    """serve --json prints one JSON line per event; the last says how it ended."""
    result = run_cli("serve", "--port", "abc", "--json")
    assert result.exit_code == 2
    assert result.stdout.count("\n") == 1
    assert json.loads(result.stdout) == {
        "event": "error", "error": "Invalid value for '--port': 'abc' is not a valid integer "
        "range.", "exit_code": 2, "interrupted": False}


def test_an_error_line_before_the_run_prints_the_document_too(tmp_path: Path) -> None:
    """Errors a command says in one ``error:`` line (exit 2) before its network
    work: the document holds that line's message."""
    (tmp_path / "empty").mkdir()
    result = run_cli("store", "127.0.0.1", "104", tmp_path / "empty", "--json")
    assert result.exit_code == 2
    assert result.stderr == f"error: no files found in {tmp_path / 'empty'}\n"
    assert json.loads(result.stdout) == {"error": f"no files found in {tmp_path / 'empty'}",
                                         "exit_code": 2, "interrupted": False}
    reindex = run_cli("reindex", tmp_path / "empty", "--json")
    assert reindex.exit_code == 2
    assert json.loads(reindex.stdout)["error"].endswith("not a dicomnet store "
                                                        "(--create builds a new index "
                                                        "from its files)")


@pytest.mark.parametrize("args", [
    ["store", "127.0.0.1", "notaport", "x"],
    ["echo", "localhost", "--", "--json"],  # after --: a value, not the flag
])
def test_without_json_stdout_stays_empty(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Usage: dicomnet" in result.stderr


def test_help_is_text_even_with_json() -> None:
    """--help asks for text: no document follows it."""
    result = run_cli("store", "--json", "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: dicomnet store")
    assert "{" not in result.stdout.splitlines()[-1]
