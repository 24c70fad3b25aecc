"""dicomnet serve: an object answered with a failure and not stored has its line
on stderr and, with --json, a "refused" event, a duplicate rejected
(--duplicates reject, 0111H) among them; with --duplicates keep, the second copy
is a "stored" event with duplicate true and an INFO line, and nothing refused.
The same file is sent twice through the real CLI (dicomnet store)."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

from tests.storage.helpers import make_dataset, write_part10_file

from .helpers import run_cli
from .test_help import _help
from .test_json_documented import _undocumented

UID = "1.2.826.0.1.3680043.8.498.27"


def _serve_and_send_twice(serve_process: Any, tmp_path: Path, policy: str
                          ) -> tuple[list[dict[str, Any]], str]:
    (tmp_path / "in").mkdir()
    write_part10_file(tmp_path / "in" / "a.dcm", make_dataset(sop_instance_uid=UID))
    proc, listening = serve_process("--aet", "ARCHIVE", "--duplicates", policy)
    exits = [run_cli("store", "127.0.0.1", listening["port"], tmp_path / "in" / "a.dcm",
                     "--aet", "SENDER", "--called-aet", "ARCHIVE").exit_code for _ in range(2)]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert exits == [0, 1 if policy == "reject" else 0]
    events = [json.loads(line) for line in out.splitlines()]
    return [e for e in events if e["event"] in ("stored", "refused")], err


def test_a_duplicate_rejected_has_a_log_line_and_a_refused_event(
        serve_process: Any, tmp_path: Path) -> None:
    events, err = _serve_and_send_twice(serve_process, tmp_path, "reject")
    stored, refused = events
    assert (stored["event"], refused["event"]) == ("stored", "refused")
    relative = Path(stored["path"]).relative_to(tmp_path / "store").as_posix()
    reason = f"duplicate SOP Instance UID, already stored at {relative} (duplicates policy reject)"
    assert refused == {
        "event": "refused", "sop_class_uid": stored["sop_class_uid"],
        "sop_instance_uid": UID, "peer": refused["peer"], "calling_aet": "SENDER",
        "called_aet": "ARCHIVE", "status": "0x0111", "reason": reason,
        "path": stored["path"], "move_originator": None, "tls": None}
    assert re.fullmatch(r"127\.0\.0\.1:\d+", refused["peer"])
    assert refused["peer"] != stored["peer"]  # its own association
    assert re.search(rf"\d{{4}} C-STORE {re.escape(UID)} from SENDER@127\.0\.0\.1:\d+ "
                     rf"refused, status 0x0111: {re.escape(reason)}\n", err), err
    # That one line, not an INFO line besides.
    assert len([line for line in err.splitlines() if UID in line]) == 1, err
    # Scripts are written from --help: the event and each of its keys are there.
    text = " ".join(_help("serve").split())
    assert " refused " in text
    assert _undocumented(refused, text) == []


def test_a_duplicate_kept_is_a_stored_event_and_an_info_line(
        serve_process: Any, tmp_path: Path) -> None:
    events, err = _serve_and_send_twice(serve_process, tmp_path, "keep")
    assert [(e["event"], e["duplicate"]) for e in events] == [("stored", False),
                                                            ("stored", True)]
    assert events[0]["path"] == events[1]["path"]  # the first copy, kept
    assert re.search(rf"C-STORE {re.escape(UID)} from SENDER@127\.0\.0\.1:\d+: already stored "
                     r"at \S+, kept \(duplicates policy keep\)\n", err), err
    assert "refused" not in err
    assert err.count("released, 1 message(s) (1 success)") == 2  # Success, both times


