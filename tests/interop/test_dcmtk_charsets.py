"""Patient names in other character sets (PS3.5 6.1.2.5; the examples of PS3.5
Annex H, I and J) sent by DCMTK's storescu over TLS into the `dicomnet serve`
command run with Python's warnings as errors: each object stored as sent, in
the syntax it travelled in (Big Endian and Deflated included), and indexed with
its names decoded."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from tests.aio.helpers import PkiFactory, peer_env
from tests.interop.conftest import Dcmtk, _missing, dicomnet_serve
from tests.interop.test_dcmtk_cli import _tls_args
from tests.storage.dicomfiles import assert_same_dataset, make_image, uid, write_part10

pytestmark = pytest.mark.interop

#: Specific Character Set, Patient's Name, Study Description.
NAMES: dict[int, tuple[str | list[str], str, str]] = {
    110: ("ISO_IR 192", "Wang^XiaoDong=王^小東", "Müller Straße"),
    111: (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう", "山田"),
    112: (["", "ISO 2022 IR 149"], "Hong^Gildong=洪^吉洞=홍^길동", "홍길동"),
    113: ("ISO_IR 100", "Buc^Jérôme", "Ça va"),
}


@pytest.mark.parametrize(("option", "syntax"), [("-xb", ExplicitVRBigEndian),
                                                ("-xd", DeflatedExplicitVRLittleEndian)],
                         ids=["big-endian", "deflated"])
def test_storescu_sends_names_in_other_character_sets_into_dicomnet_serve(
        *, dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        option: str, syntax: str) -> None:
    storescu = shutil.which("storescu")
    if storescu is None:
        _missing("DCMTK storescu")
    monkeypatch.setenv("PYTHONWARNINGS", "error")  # dicomnet serve inherits it
    pki = pkis("rsa")
    sources = {}
    for n, (charset, name, description) in NAMES.items():
        ds = make_image(n, rows=256, columns=200)
        ds.SpecificCharacterSet = charset
        ds.PatientName = name
        ds.StudyDescription = description
        sources[n] = write_part10(tmp_path / "in" / f"{n}.dcm", ds, syntax)
    store = tmp_path / "store"
    with dicomnet_serve(pki, store) as (port, stderr):
        done = subprocess.run([str(storescu), *_tls_args(pki.directory), option, "-R",
                               "127.0.0.1", str(port), *map(str, sources.values())],
                              capture_output=True, text=True, timeout=60, env=peer_env(),
                              check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in stderr[0] and "WARNING" not in stderr[0], stderr[0]
    for n, source in sources.items():
        [stored] = store.rglob(f"{uid(9, n)}.dcm")
        assert dcmread(stored).file_meta.TransferSyntaxUID == syntax
        assert_same_dataset(source, stored)
    with sqlite3.connect(store / "index.sqlite") as index:
        rows = dict(index.execute(
            "SELECT p.patient_id, p.patient_name || '|' || s.study_description "
            "FROM patient p JOIN study s ON s.patient_id = p.patient_id"))
    assert rows == {f"PID{n:04d}": f"{name}|{description}"
                    for n, (_, name, description) in NAMES.items()}
