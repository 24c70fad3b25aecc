"""A C-STORE's answer is recorded without a ``Status`` per object: ``Status`` is a
frozen dataclass whose ``__init__`` and ``__post_init__`` ran twice per sent image
(``record``, then ``StoreResult.warning`` for dicomnet store's summary), ~160 byte
code instructions of the client's ~11,000 per image (bench/client_calls.py
--opcodes). The outcome is the same: ok, warning, error, retryable; a code out
of range still raises ValueError."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomnet.dimse.messages import CStoreRSP
from dicomnet.dimse.status import Status
from dicomnet.services import store_result
from dicomnet.services.store_result import StoreResult, record


class _Counted(Status):
    __slots__ = ()
    made = 0

    def __post_init__(self) -> None:
        type(self).made += 1
        Status.__post_init__(self)


@pytest.mark.parametrize(("code", "ok", "warning"), [
    (0x0000, True, False), (0xB000, True, True), (0x0001, True, True), (0x0107, True, True),
    (0x0116, True, True), (0xA700, False, False), (0xC000, False, False),
    (0x0110, False, False), (0xFF00, False, False), (0xFE00, False, False),
    (0x1234, False, False)])
def test_an_answer_is_recorded_as_its_status_class_says(code: int, ok: bool,
                                                        warning: bool) -> None:
    result = StoreResult(path=Path("a.dcm"))
    record(result, CStoreRSP(message_id_being_responded_to=1, status=code))
    assert (result.status, result.ok, result.warning) == (code, ok, warning)
    assert result.ok == (Status(code).category in ("success", "warning"))
    assert result.retryable == (code >> 8 == 0xA7)
    assert (result.error is None) == ok


def test_a_stored_object_is_recorded_without_a_status_object(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_result, "Status", _Counted)
    _Counted.made = 0
    for code in (0x0000, 0xB000):
        result = StoreResult(path=Path("a.dcm"))
        record(result, CStoreRSP(message_id_being_responded_to=1, status=code))
        assert result.ok
        assert result.warning == (code != 0)
    assert _Counted.made == 0


def test_a_code_out_of_range_still_raises() -> None:
    class Odd:
        status = 0x10000

    with pytest.raises(ValueError, match="out of range"):
        record(StoreResult(path=Path("a.dcm")), Odd())
    with pytest.raises(ValueError, match="out of range"):
        _ = StoreResult(path=Path("a.dcm"), status=-1, ok=True).warning


def test_a_success_is_recorded_in_few_python_calls() -> None:
    """A Success (most answers) is recorded without a status class looked up
    (0000H is the success class, PS3.7 C.1.1) nor an empty list of offending
    elements made through ``tag_texts`` (four calls fewer), the offending
    elements put in their slot without their setter's call: ``record`` and the
    check that the answer names its object.
    Its outcome as before."""
    from dataclasses import dataclass as _dataclass

    from tests.aio.test_receive_path_calls import python_calls

    @_dataclass
    class Named:
        sop_instance_uid: str = "1.2.3"
        sop_class_uid: str = "1.2.840.10008.5.1.4.1.1.7"

    rsp = CStoreRSP(message_id_being_responded_to=1, status=0,
                    affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                    affected_sop_instance_uid="1.2.3")
    result = StoreResult(path=Path("a.dcm"), offending_elements=["(0010,0010)"])
    named = Named()
    calls = python_calls(lambda: record(result, rsp, named))
    assert calls == ["record", "_other_object"], calls
    assert (result.status, result.ok, result.warning, result.error, result.error_comment,
            result.offending_elements, result.retryable) == (0, True, False, None, None, [],
                                                             False)


def test_a_success_is_no_warning_without_a_lookup() -> None:
    """``warning``, read per object by ``dicomnet store``'s summary: 0000H is no
    Warning, told without ``_category`` and ``category_of`` (two calls)."""
    from tests.aio.test_receive_path_calls import python_calls

    stored_ok = StoreResult(path=Path("a.dcm"), status=0, ok=True)
    seen: list[bool] = []
    assert python_calls(lambda: seen.append(stored_ok.warning)) == ["StoreResult.warning"]
    assert seen == [False]
    assert StoreResult(path=Path("a.dcm"), status=0xB000, ok=True).warning
    assert not StoreResult(path=Path("a.dcm"), status=0xC000, ok=False).warning


def test_a_result_is_made_in_one_python_call() -> None:
    """``StoreResult(path=...)``, one per file: its ``__init__`` puts the path's
    text and the empty lists (None) in their slots itself, not through the
    properties' setters (store_compact: three calls per object). Read, compared,
    replaced and pickled as before."""
    import dataclasses
    import pickle

    from dicomnet.services.store_compact import stored
    from tests.aio.test_receive_path_calls import python_calls

    made: list[StoreResult] = []
    calls = python_calls(lambda: made.append(StoreResult(path="a/b.dcm")))  # type: ignore[arg-type]
    assert calls == ["StoreResult.__init__"], calls
    result = made[0]
    assert (stored(result, "path"), stored(result, "dropped_meta"),
            stored(result, "offending_elements")) == ("a/b.dcm", None, None)
    assert result.path == Path("a/b.dcm") and result.dropped_meta == []
    assert result == StoreResult(path=Path("a/b.dcm"), dropped_meta=[], offending_elements=[])
    full = StoreResult(Path("c.dcm"), "1.2", 0, True, None, None, 5, "1.2.840.10008.1.2.1",
                       None, True, 2, False, False, False, False, ["(0002,0001)"],
                       ["(0010,0010)"], "note")
    assert (full.path, full.attempts, full.dropped_meta, full.offending_elements,
            full.note) == (Path("c.dcm"), 2, ["(0002,0001)"], ["(0010,0010)"], "note")
    assert repr(full).startswith("StoreResult(path=PosixPath('c.dcm'), sop_instance_uid='1.2'")
    assert pickle.loads(pickle.dumps(full)) == full
    assert dataclasses.replace(full, status=3) == StoreResult(
        **{**dataclasses.asdict(full), "status": 3})
    assert StoreResult(path=Path("d.dcm"), dropped_meta=[]).dropped_meta == []
    with pytest.raises(TypeError):
        StoreResult()  # type: ignore[call-arg]
