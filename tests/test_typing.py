"""What a user's type checker sees of the public API, checked by mypy itself.

One mypy run (the project's own configuration, strict) over small files a test
writes: every name ``dicomnet`` exports lazily is typed (none is ``Any``) and a
misspelt one is an error; the blocking functions take their keywords by name,
so a misspelt keyword is an error; and the Python code blocks of the README and
of ``docs/*.md`` type-check as they are printed. A line that must fail carries
``# E: <error code>``; the errors found must be exactly those.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import dicomnet
from dicomnet import blocking
from dicomnet.aio.client import open_association
from dicomnet.services.storage import store_paths

ROOT = Path(dicomnet.__file__).resolve().parents[2]

#: mypy's lines: "file.py:12: error: Module has no attribute "x"  [attr-defined]".
_LINE = re.compile(r"^(?P<file>[^:]+\.py):(?P<line>\d+): (?P<kind>error|note): "
                   r"(?P<text>.*?)(?:  \[(?P<code>[a-z-]+)\])?$")
_EXPECTED = re.compile(r"#\s*E:\s*(?P<code>[a-z-]+)")
_PYTHON_BLOCK = re.compile(r"^```(?:python|py)[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)

BLOCKING_CALLS = '''\
from pathlib import Path

from dicomnet import blocking
from dicomnet.services.storage import StoreResult

def heard(result: StoreResult) -> None:
    print(result.path, result.ok)

status = blocking.echo("127.0.0.1", 104, called_ae_title="PACS", max_async_operations=1)
print(int(status))
results = blocking.store("127.0.0.1", 104, [Path("a.dcm")], on_progress=heard, retries=2)
print(results[0].error)
with blocking.associate("127.0.0.1", 104, calling_ae_title="ME") as assoc:
    print(assoc.echo())
if status == 0 or blocking.echo("127.0.0.1", 104) != status:  # Status == int: no comparison-overlap
    print(status)
blocking.echo("127.0.0.1", 104, called_ae="PACS")  # E: call-arg
blocking.store("127.0.0.1", 104, ["a.dcm"], retry=2)  # E: call-arg
blocking.associate("127.0.0.1", 104, calling_ae_title=b"ME")  # E: arg-type
blocking.store("127.0.0.1", 104, ["a.dcm"], on_progress=print, retries="2")  # E: arg-type
'''

#: A server author's module: the association request hook, sync or async, answering
#: by name, by codes or with a tuple, passes mypy --strict; a wrong answer does not.
ASSOCIATION_REQUEST_HOOK = '''\
from dicomnet import AssociationInfo, AssociationRequestHook, Rejection, serve

def admit(info: AssociationInfo) -> Rejection | None:
    if info.called_ae_title != "AI-NODE":
        return Rejection.CALLED_AE_TITLE_NOT_RECOGNIZED
    return None if info.peer[0] == "127.0.0.1" else Rejection(2, 1, 1)

async def admit_later(info: AssociationInfo) -> tuple[int, int, int] | None:
    return None if info.security is not None else (1, 1, 3)

def wrong(info: AssociationInfo) -> str:
    return "rejected"

hooks: list[AssociationRequestHook] = [admit, admit_later,
                                       lambda info: Rejection.TEMPORARY_CONGESTION]

async def main() -> None:
    server = await serve(port=0, on_association_request=admit_later)
    server.close()
    await serve(on_association_request=wrong)  # E: arg-type
    print(Rejection.CALLING_AE_TITLE.reason)  # E: attr-defined
'''


@dataclass(frozen=True)
class Message:
    file: str
    line: int
    kind: str
    text: str
    code: str | None


@dataclass
class MypyRun:
    folder: Path
    messages: list[Message]
    output: str

    def errors(self, name: str) -> set[tuple[int, str | None]]:
        return {(m.line, m.code) for m in self.messages
                if m.kind == "error" and Path(m.file).name == name}

    def expected(self, name: str) -> set[tuple[int, str | None]]:
        lines = (self.folder / name).read_text().splitlines()
        return {(number, found["code"]) for number, text in enumerate(lines, 1)
                if (found := _EXPECTED.search(text))}


def doc_blocks() -> dict[str, str]:
    """The Python code blocks of README.md and docs/*.md, by the file name each gets."""
    blocks: dict[str, str] = {}
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        stem = re.sub(r"\W", "_", doc.stem)
        for number, code in enumerate(_PYTHON_BLOCK.findall(doc.read_text()), 1):
            blocks[f"doc_{stem}_{number}.py"] = code
    return blocks


def exports_snippet() -> str:
    lines = ["import dicomnet", ""]
    lines += [f"reveal_type(dicomnet.{name})" for name in sorted(dicomnet.__all__)]
    lines.append("dicomnet.asociate  # E: attr-defined")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory: pytest.TempPathFactory) -> MypyRun:
    folder = tmp_path_factory.mktemp("typing")
    files = {"exports.py": exports_snippet(), "blocking_calls.py": BLOCKING_CALLS,
             "association_request_hook.py": ASSOCIATION_REQUEST_HOOK, **doc_blocks()}
    for name, text in files.items():
        (folder / name).write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(folder / ".mypy_cache"), "--no-error-summary",
         "--hide-error-context", *(str(folder / name) for name in files)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    messages = [Message(m["file"], int(m["line"]), m["kind"], m["text"], m["code"])
                for m in map(_LINE.match, done.stdout.splitlines()) if m]
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 2: mypy itself failed
    return MypyRun(folder, messages, done.stdout)


def test_every_public_name_is_typed_and_a_misspelt_one_is_an_error(mypy_run: MypyRun) -> None:
    """``dicomnet.__getattr__`` (the lazy import) returned Any: every exported name
    was untyped for users, and ``dicomnet.asociate`` passed as well."""
    revealed = {m.line: m.text for m in mypy_run.messages
                if Path(m.file).name == "exports.py" and m.text.startswith("Revealed type")}
    assert len(revealed) == len(dicomnet.__all__), mypy_run.output
    untyped = [text for text in revealed.values() if text == 'Revealed type is "Any"']
    assert untyped == []
    assert mypy_run.errors("exports.py") == mypy_run.expected("exports.py"), mypy_run.output


def test_a_misspelt_keyword_of_the_blocking_api_is_a_type_error(mypy_run: MypyRun) -> None:
    """They took ``**kwargs: Any``: ``echo(host, port, called_ae="PACS")`` passed
    mypy and failed only when run."""
    assert mypy_run.errors("blocking_calls.py") == mypy_run.expected("blocking_calls.py"), (
        mypy_run.output)


def test_an_association_request_hook_type_checks_from_the_public_api(
        mypy_run: MypyRun) -> None:
    """AssociationInfo and AssociationRequestHook were only in dicomnet.aio.server,
    and a rejection only a bare tuple of Table 9-21's codes."""
    name = "association_request_hook.py"
    assert mypy_run.errors(name) == mypy_run.expected(name), mypy_run.output


def test_the_documentation_code_type_checks(mypy_run: MypyRun) -> None:
    blocks = doc_blocks()
    assert "doc_leadtools_mapping_1.py" in blocks
    assert "doc_README_1.py" in blocks
    found = {m for m in mypy_run.messages if m.kind == "error" and Path(m.file).name in blocks}
    assert found == set(), mypy_run.output


@pytest.mark.parametrize(("facade", "engine"), [
    (blocking.associate, open_association), (blocking.echo, open_association),
    (blocking.store, store_paths)], ids=["associate", "echo", "store"])
def test_the_blocking_functions_take_what_the_async_ones_take(
        facade: object, engine: object) -> None:
    """Spelt out, the blocking signatures must not drift from the engine's: same
    names, kinds and defaults (the annotations are checked by mypy above)."""
    def shape(function: object) -> list[tuple[str, object, object]]:
        params = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
        return [(p.name, p.kind, p.default) for p in params]

    assert shape(facade) == shape(engine)
