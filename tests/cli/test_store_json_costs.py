"""Each object of dicomnet store's --json "results" is made without a ``Path``
(its result keeps the path as text already: the ``Path`` the property made was
parsed only to be printed again, ~390 byte code instructions per sent image)
and without a ``Status`` (its code's words are looked up once per code). The
fields are those written before."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path

from dicomnet.cli.jsontext import path_fields
from dicomnet.cli.store import _json_result
from dicomnet.dimse.messages import CStoreRSP
from dicomnet.dimse.status import Status
from dicomnet.services.store_result import StoreResult, record
from dicomnet.services.store_scu import collect_files


def _made(function: Callable[..., object], *args: object) -> tuple[object, set[str]]:
    """What ``function(*args)`` returns, and the pathlib and status functions it called."""
    called: set[str] = set()

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        name = frame.f_code.co_filename
        if event == "call" and (name.endswith("pathlib.py") or name.endswith("status.py")):
            called.add(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        value = function(*args)
    finally:
        sys.setprofile(None)
    return value, called


def test_a_result_is_written_without_a_path_or_a_status(tmp_path: Path) -> None:
    (tmp_path / "in" / "x").mkdir(parents=True)
    for name in ("a.dcm", "b\udcff.dcm"):
        (tmp_path / "in" / "x" / name).write_bytes(b"")
    listed = [str(p) for p in collect_files([f"{tmp_path}//in/./x/"])]
    assert len(listed) == 2
    for code, text in ((0x0000, "0x0000 Success"),
                       (0xB000, f"0xB000 {Status(0xB000, 'storage').description}")):
        for given in listed:
            result = StoreResult(path=Path(given))
            record(result, CStoreRSP(message_id_being_responded_to=1, status=code))
            _json_result(result)  # a first call may look the words up
            fields, called = _made(_json_result, result)
            assert called == set()
            assert isinstance(fields, dict)
            assert {k: fields[k] for k in ("path", "status_text")} | {
                k: v for k, v in fields.items() if k == "path_bytes"} == (
                path_fields("path", str(result.path)) | {"status_text": text})
            assert ("path_bytes" in fields) == ("\udcff" in given)


def test_writing_a_result_keeps_no_empty_list_in_it(tmp_path: Path) -> None:
    """Reading ``offending_elements`` through its property keeps an empty list in a
    result that had none (a list per object of a run of 100,000): the status
    text reads what the result holds instead."""
    from dicomnet.services.store_compact import stored

    result = StoreResult(path=tmp_path / "a.dcm")
    record(result, CStoreRSP(message_id_being_responded_to=1, status=0xB000,
                             error_comment="coerced"))
    assert stored(result, "offending_elements") is None
    fields = _json_result(result)
    assert isinstance(fields, dict) and "coerced" in str(fields["status_text"])
    assert stored(result, "offending_elements") is None
