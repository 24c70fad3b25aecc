"""docs/storage.md keeps the promises an operator or a library user checks: every
field of StoredInstance, StoreResult and reindex --json is described, every status
the C-STORE SCP can answer is listed with its meaning, each serve --json example
line has the fields serve prints, and the sqlite3 query returns what the guide
says, against a store a real `dicomnet serve` made."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dicomnet
from dicomnet.aio import server_dispatch
from dicomnet.dimse import status as dimse_status
from dicomnet.dimse.status import Status
from dicomnet.services.storage import StoredInstance, StoreResult
from tests.cli.helpers import json_out, read_line, reaped, run_cli, terminated
from tests.storage.helpers import CT_IMAGE_STORAGE, make_dataset, write_part10_file

ROOT = Path(dicomnet.__file__).resolve().parents[2]
GUIDE_TEXT = (ROOT / "docs" / "storage.md").read_text()
UID = "1.2.826.0.1.3680043.8.498."


def section(heading: str) -> str:
    """The guide's text from ``heading`` to the next heading of any level."""
    start = GUIDE_TEXT.index(f"\n{heading}\n")
    end = GUIDE_TEXT.find("\n#", start + len(heading) + 2)
    return GUIDE_TEXT[start:end if end != -1 else None]


def first_column(text: str) -> list[str]:
    """The first cell of each row of the tables in ``text``, back quotes removed."""
    return [row.split("|")[1].strip().strip("`") for row in text.splitlines()
            if row.startswith("| ") and not row.startswith("|---")]


def test_every_stored_instance_field_is_described() -> None:
    table = first_column(section("### `StoredInstance`"))[1:]  # after the header row
    assert sorted(table) == sorted(f.name for f in dataclasses.fields(StoredInstance))


def test_every_store_result_field_is_described() -> None:
    table = first_column(section("### `StoreResult`").split("`to_dict()`")[0])[1:]
    fields = {f.name for f in dataclasses.fields(StoreResult)}
    properties = {name for name, value in vars(StoreResult).items()
                  if isinstance(value, property)} - fields  # some fields are stored compact
    assert properties == {"warning", "dimse_status"}
    assert set(table) == fields | properties
    assert len(table) == len(set(table))
    assert set(StoreResult(path=Path("x")).to_dict()) == fields


def _status_names(module: str) -> set[str]:
    """The names a module of the SCP imports from dicomnet.dimse.status."""
    tree = ast.parse((ROOT / "src" / "dicomnet" / module).read_text())
    return {alias.name for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "dimse.status"
            for alias in node.names}


def test_every_status_the_scp_answers_is_listed_with_its_meaning() -> None:
    """The codes are those the SCP's modules take from dicomnet.dimse.status, and
    the server's answer to a request no service performs: a status added there
    and not here fails this test."""
    names = set().union(*(_status_names(m) for m in (
        "services/storage.py", "services/store_disk.py", "services/store_sink.py",
        "services/store_answers.py")))
    codes = {getattr(dimse_status, name) for name in names
             if isinstance(getattr(dimse_status, name), int)}
    codes.add(server_dispatch.UNRECOGNIZED_OPERATION)
    assert codes == {0x0000, 0x0110, 0x0111, 0x0122, 0xA700, 0xA900, 0xC000, 0x0211}
    rows = {row.split("|")[1].strip(): row.split("|")[2].strip()
            for row in section("## What the sender is answered").splitlines()
            if row.startswith("| `0x")}
    assert rows == {f"`0x{code:04X}`": Status(code, "storage").description for code in codes}


@dataclasses.dataclass
class Served:
    """What a real `dicomnet serve --json` printed, and the store it made."""

    events: list[dict[str, Any]]
    refused: dict[str, Any]  # the "error" line of a second serve on the same folder
    store: Path
    sent: dict[str, Any]  # dicomnet store --json's document
    reindexed: dict[str, Any]  # dicomnet reindex --create --json's, after it stopped


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Two studies (two instances, then one), a duplicate, a hostile Study
    Instance UID, a rejected calling AE title; stopped by SIGTERM."""
    tmp = tmp_path_factory.mktemp("served")
    files = [
        write_part10_file(tmp / "in" / "a1.dcm", make_dataset(
            sop_instance_uid=UID + "1", study_uid=UID + "10", series_uid=UID + "100",
            patient_name="Doe^Jane", study_date="20240115", sop_class_uid=CT_IMAGE_STORAGE,
            modality="CT")),
        write_part10_file(tmp / "in" / "a2.dcm", make_dataset(
            sop_instance_uid=UID + "2", study_uid=UID + "10", series_uid=UID + "101",
            patient_name="Doe^Jane", study_date="20240115")),
        write_part10_file(tmp / "in" / "b1.dcm", make_dataset(
            sop_instance_uid=UID + "3", study_uid=UID + "20", series_uid=UID + "200",
            patient_id="PID-2", patient_name="Roe^Rick", study_date="20230301")),
        write_part10_file(tmp / "in" / "dup.dcm", make_dataset(sop_instance_uid=UID + "1")),
    ]
    hostile = make_dataset(sop_instance_uid=UID + "4")
    with pytest.warns(UserWarning, match="Invalid value for VR UI"):  # pydicom's
        hostile.StudyInstanceUID = "../../evil"
        write_part10_file(tmp / "in" / "hostile.dcm", hostile)
    store = tmp / "store"
    command = [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
               "--output", str(store), "--allow-aet", "SENDER"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp)
    with reaped(proc):
        assert proc.stdout is not None
        listening = json.loads(read_line(proc.stdout, 30))
        port = listening["port"]
        sent = run_cli("store", "127.0.0.1", port, *files, tmp / "in" / "hostile.dcm",
                       "--aet", "SENDER", "--json")
        assert sent.exit_code == 1, sent.output  # the hostile one
        assert run_cli("echo", "127.0.0.1", port, "--aet", "OTHER").exit_code == 3
        second = subprocess.run(command, capture_output=True, text=True, cwd=tmp,
                                timeout=60, check=False)
        assert second.returncode == 2, second.stderr
        out, err = terminated(proc, 30)
    assert proc.returncode == 0, err
    for index in store.glob("index.sqlite*"):  # stopped: reindex --create rebuilds it
        index.unlink()
    reindexed = run_cli("reindex", store, "--create", "--json")
    assert reindexed.exit_code == 0, reindexed.output
    yield Served([listening, *map(json.loads, out.splitlines())],
                 json.loads(second.stdout), store, json_out(sent), json_out(reindexed))


def test_each_serve_json_example_has_the_fields_serve_prints(served: Served) -> None:
    [block] = re.findall(r"```json\n(.*?)```", section("### `--json` events"), re.DOTALL)
    examples = {line["event"]: line for line in map(json.loads, block.splitlines())}
    printed: dict[str, dict[str, Any]] = {}
    for event in served.events:
        printed.setdefault(event["event"], event)
    printed["error"] = served.refused
    # Only a reader 8 MiB behind gets it (tests/cli/test_outqueue.py, test_serve_slow_reader.py).
    assert list(examples.pop("output_dropped")) == ["event", "stream", "lines"]
    assert set(examples) == set(printed)
    for name, line in printed.items():
        assert list(examples[name]) == list(line), name
    table = {row.split("|")[1].strip().strip("`"): row.split("|")[3]
             for row in section("### `--json` events").splitlines()
             if row.startswith("| `")}
    assert set(table) == set(examples) | {"output_dropped"}
    for name, example in examples.items():
        described = set(re.findall(r"`([a-z_]+)`", table[name]))
        assert set(example) - {"event"} <= described, name
    assert served.refused["error"].endswith("one server per folder")


def test_the_stored_lines_and_answers_are_as_the_guide_says(served: Served) -> None:
    stored = sorted((e for e in served.events if e["event"] == "stored"),
                    key=lambda e: (e["sop_instance_uid"], e["duplicate"]))
    assert [(e["sop_instance_uid"], e["duplicate"], e["replaced"]) for e in stored] == [
        (UID + "1", False, False), (UID + "1", True, False), (UID + "2", False, False),
        (UID + "3", False, False)]  # keep: the duplicate is told, its path the first copy's
    assert stored[0]["path"] == stored[1]["path"] == str(
        served.store / (UID + "10") / (UID + "100") / (UID + "1.dcm"))
    [ended] = [e for e in served.events if e["event"] == "association_ended"]
    assert ended["answers"] == {"0x0000": 4, "0xC000": 1}
    hostile = served.sent["results"][-1]
    assert hostile["status"] == 0xC000
    assert hostile["error_comment"].startswith(
        "cannot place the object: not a valid UID (PS3.5 9.1): '../")
    assert len(hostile["error_comment"]) == 64  # one LO value: cut there
    assert ('| a Study or Series Instance UID that is no UID (`../../evil`) | C000, '
            '"cannot place the object: not a valid UID (PS3.5 9.1): ..."') in GUIDE_TEXT
    assert not list(served.store.rglob("*evil*"))
    assert sorted(p.name for p in served.store.rglob("*.dcm")) == [
        UID + "1.dcm", UID + "2.dcm", UID + "3.dcm"]


def test_the_sqlite_example_lists_studies_with_their_instance_counts(served: Served) -> None:
    [query] = re.findall(r"```sql\n(.*?)```", GUIDE_TEXT, re.DOTALL)
    [shown] = re.findall(r"^```\n(\$ sqlite3 -readonly .*?)^```", GUIDE_TEXT,
                         re.MULTILINE | re.DOTALL)
    db = sqlite3.connect(f"file:{served.store / 'index.sqlite'}?mode=ro", uri=True)
    try:
        cursor = db.execute(query)
        rows = cursor.fetchall()
        columns = [d[0] for d in cursor.description]
    finally:
        db.close()
    assert columns == shown.splitlines()[1].split()  # the header the guide prints
    # One row per study, oldest first, with its instances over all its series.
    assert rows == [(UID + "20", "Roe^Rick", "20230301", 1),
                    (UID + "10", "Doe^Jane", "20240115", 2)]


def test_every_reindex_json_field_is_described(served: Served) -> None:
    table = first_column(section("### `dicomnet reindex`: when the index and the files disagree")
                         .split("`--json` prints one document:")[1])[1:]
    assert list(served.reindexed) == table
    # The rows a deleted index lost come back, read from the files.
    assert (served.reindexed["added"], served.reindexed["instances"]) == (3, 3)
    assert served.reindexed["temporaries_removed"] == 0


def test_the_complete_server_example_answers_as_it_says(tmp_path: Path) -> None:
    """Its handler (type-checked by tests/test_typing.py) answers C000 with its
    comment for an object that is not a CT, and Success for a CT."""
    [block] = [code for code in re.findall(r"```python\n(.*?)```", GUIDE_TEXT, re.DOTALL)
               if "def only_ct" in code]
    example: dict[str, object] = {}
    exec(compile(block.replace("asyncio.run(main())", ""), "storage.md", "exec"), example)
    only_ct = example["only_ct"]
    assert callable(only_ct)

    def stored(name: str, modality: str) -> StoredInstance:
        path = write_part10_file(tmp_path / name, make_dataset(modality=modality))
        return StoredInstance(path, "1.2", "1.2.3", "1.2.840.10008.1.2.1", "CT01", None, False)

    assert only_ct(stored("ct.dcm", "CT")) is None
    assert only_ct(stored("mr.dcm", "MR")) == (0xC000, "this node takes CT only")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_guide_links_resolve_and_the_readme_points_at_it() -> None:
    links = re.findall(r"\]\(([^)]+)\)", GUIDE_TEXT)
    assert links
    for link in links:
        target, _, anchor = link.partition("#")
        path = (ROOT / "docs" / target).resolve()
        assert path.is_file(), link
        if anchor:
            headings = re.findall(r"^#+ (.*)$", path.read_text(), re.MULTILINE)
            assert anchor in {_anchor(h) for h in headings}, link
    readme = (ROOT / "README.md").read_text()
    here = readme[readme.index("## What is here"):readme.index("## Command line")]
    assert "`docs/storage.md`" in here


def test_the_guide_names_every_key_of_store_json_in_order(served: Served) -> None:
    """It left out `dicomdirs`, which `dicomnet store --json` prints and --help names."""
    text = " ".join(section("### `StoreResult`").split())
    listing = text[text.index("`--json` prints one document whatever happens:"):]
    listing = listing[:listing.index("`dicomnet store --help` describes each key")]
    assert re.findall(r"`([a-z_]+)`", listing) == list(served.sent)


@pytest.mark.parametrize(("umask", "mode"), [(0o000, 0o755), (0o022, 0o755), (0o077, 0o700)])
def test_the_folder_modes_are_those_the_docs_give(tmp_path: Path, umask: int,
                                                  mode: int) -> None:
    """Both said "0755 whatever the umask"; a umask can only take bits away (umask
    077 gives 0700, which an operator who sets it wants), never add write for all."""
    import os
    import stat

    root = tmp_path / "store"
    previous = os.umask(umask)
    try:
        dicomnet.StorageSCP(root).close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(root.stat().st_mode) == mode
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert ("Folders are 0755, or less under a stricter umask (0700 under umask 077; "
            "never writable by others, umask 000 included: they name only UIDs)") in readme
    assert "0755, as every folder (less under a stricter umask: 0700 under 077)" in GUIDE_TEXT
