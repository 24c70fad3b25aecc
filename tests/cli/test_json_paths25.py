"""--json with file names whose bytes are not UTF-8 (b"b\\xff.dcm"): Python
decodes them as lone surrogates (PEP 383), which json.dumps wrote as "\\udcff";
strict JSON parsers (serde_json, Go, RFC 8259 8.2) reject a lone surrogate, and
Python's own reading of the document could not encode its strings to UTF-8.

Every string of the document is valid Unicode now, such a byte written as the
text \\xff; a path field holding one comes with ``<field>_bytes``, its exact
bytes in base64. The commands run as users run them (subprocesses)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from tests.interop.conftest import dicomnet_serve_plain
from tests.storage.dicomfiles import make_image, write_part10

from .helpers import ServerThread


def odd(folder: Path, name: bytes) -> Path:
    """``folder / name``, a name whose bytes are not all UTF-8."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + name))


def strings(value: Any) -> list[str]:
    """Every string of a parsed JSON document, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def strict(text: str) -> Any:
    """The document parsed, each of its strings valid UTF-8 (what a strict parser asks)."""
    doc = json.loads(text)
    for s in strings(doc):
        s.encode("utf-8")  # raises on a lone surrogate
    return doc


def dicomnet(*args: str | Path | int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dicomnet.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_store_json_paths_not_utf8(tmp_path: Path,
                                   start_server: Callable[..., ServerThread]) -> None:
    folder = tmp_path / "in"
    image = write_part10(odd(folder, b"b\xff.dcm"), make_image(1, rows=8, columns=8),
                         ExplicitVRLittleEndian)
    text = odd(folder, b"not\xfedicom.txt")
    text.write_bytes(b"hello")
    plain = write_part10(folder / "c.dcm", make_image(2, rows=8, columns=8),
                         ExplicitVRLittleEndian)
    scp = StorageSCP(tmp_path / "store")
    server = start_server(providers=[VerificationSCP(), scp])
    try:
        done = dicomnet("store", "127.0.0.1", server.port, folder, "--json")
    finally:
        scp.close()
    assert done.returncode == 1, done.stdout + done.stderr  # the text file: not DICOM
    doc = strict(done.stdout)
    by_name = {r["path"].rsplit("/", 1)[1]: r for r in doc["results"]}
    assert set(by_name) == {"b\\xff.dcm", "not\\xfedicom.txt", "c.dcm"}
    assert by_name["b\\xff.dcm"]["ok"] is True
    assert base64.b64decode(by_name["b\\xff.dcm"]["path_bytes"]) == os.fsencode(image)
    assert base64.b64decode(by_name["not\\xfedicom.txt"]["path_bytes"]) == os.fsencode(text)
    assert by_name["not\\xfedicom.txt"]["not_dicom"] is True
    assert "not\\xfedicom.txt has no DICOM preamble" in by_name["not\\xfedicom.txt"]["error"]
    assert "path_bytes" not in by_name["c.dcm"]  # a UTF-8 name is its path, as it was
    assert by_name["c.dcm"]["path"] == str(plain)
    assert len(list((tmp_path / "store").rglob("*.dcm"))) == 2


def test_store_text_shows_the_byte(tmp_path: Path,
                                   start_server: Callable[..., ServerThread]) -> None:
    """Without --json, the table says \\xff too (not a replacement character)."""
    folder = tmp_path / "in"
    write_part10(odd(folder, b"b\xff.dcm"), make_image(1, rows=8, columns=8),
                 ExplicitVRLittleEndian)
    odd(folder, b"not\xfedicom.txt").write_bytes(b"hello")
    server = start_server(providers=[VerificationSCP()])
    done = dicomnet("store", "127.0.0.1", server.port, folder)
    assert done.returncode == 1
    assert "not\\xfedicom.txt" in done.stdout, done.stdout
    assert "\ufffd" not in done.stdout


def test_store_json_usage_errors_name_the_path(tmp_path: Path) -> None:
    """The document of a usage error is strict JSON too: ours (an empty folder),
    and click's (a path that does not exist: its message shows the byte as
    U+FFFD, its own choice)."""
    empty = odd(tmp_path, b"empty\xff")
    empty.mkdir()
    done = dicomnet("store", "127.0.0.1", 104, empty, "--json")
    assert done.returncode == 2, done.stdout + done.stderr
    assert strict(done.stdout)["error"] == f"no files found in {tmp_path}/empty\\xff"
    assert done.stderr == f"error: no files found in {tmp_path}/empty\\xff\n"
    done = dicomnet("store", "127.0.0.1", 104, odd(tmp_path, b"gone\xff"), "--json")
    assert done.returncode == 2
    assert "gone\ufffd' does not exist" in strict(done.stdout)["error"]


def test_serve_json_stored_path_not_utf8(tmp_path: Path) -> None:
    store = odd(tmp_path, b"st\xe9re")  # Latin-1's é
    source = write_part10(tmp_path / "a.dcm", make_image(3, rows=8, columns=8),
                          ExplicitVRLittleEndian)
    with dicomnet_serve_plain(store) as (port, events, _stderr):
        sent = dicomnet("store", "127.0.0.1", port, source, "--json")
        assert sent.returncode == 0, sent.stdout + sent.stderr
    for event in events:
        for s in strings(event):
            s.encode("utf-8")
    assert events[0]["output"] == str(tmp_path) + "/st\\xe9re"
    [stored] = [e for e in events if e["event"] == "stored"]
    assert isinstance(stored["path"], str)
    assert stored["path"].startswith(str(tmp_path) + "/st\\xe9re/")
    raw = base64.b64decode(str(stored["path_bytes"]))
    assert raw.startswith(os.fsencode(store) + b"/")
    assert Path(os.fsdecode(raw)).read_bytes() != b""  # the file it names


def test_reindex_json_folder_not_utf8(tmp_path: Path) -> None:
    folder = odd(tmp_path, b"st\xe9re")
    scp = StorageSCP(folder)  # a store: its index created
    scp.close()
    done = dicomnet("reindex", folder, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = strict(done.stdout)
    assert doc["folder"] == str(tmp_path) + "/st\\xe9re"
    assert base64.b64decode(doc["folder_bytes"]) == os.fsencode(folder)
