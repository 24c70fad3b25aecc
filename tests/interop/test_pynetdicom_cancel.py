"""pynetdicom sends `dicomnet serve` a C-CANCEL-RQ (``send_c_cancel``) for an
operation it does not hold, then a C-ECHO, on plain DICOM.

A C-CANCEL-RQ has no response (PS3.7 9.3.2.3): the server answers nothing and
goes on (the echo succeeds), and its summary does not call it an unanswered
request. It had: "2 message(s) (1 success, 1 unanswered)", and "unanswered": 1
in --json, as if the server had left a request without its answer.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.aio.helpers import LOOPBACK
from tests.interop.conftest import dicomnet_serve_plain

pytestmark = pytest.mark.interop

VERIFICATION = "1.2.840.10008.1.1"


def test_a_c_cancel_is_not_an_unanswered_request(pynetdicom: ModuleType,
                                                 tmp_path: Path) -> None:
    with dicomnet_serve_plain(tmp_path / "store") as (port, events, stderr):
        ae = pynetdicom.AE(ae_title="CANCELLER")
        ae.add_requested_context(VERIFICATION)
        assoc = ae.associate(LOOPBACK, port)
        assert assoc.is_established
        context_id = assoc.accepted_contexts[0].context_id
        assoc.send_c_cancel(7, context_id)  # no operation 7 is in progress
        status = assoc.send_c_echo()
        assoc.release()
        released = assoc.is_released
        ae.shutdown()
    assert (int(status.Status), released) == (0x0000, True)
    ended = [e for e in events if e["event"] == "association_ended"]
    assert [(e["calling_aet"], e["how"], e["answers"], e["unanswered"]) for e in ended] == [
        ("CANCELLER", "released", {"0x0000": 1}, 0)]
    log = "".join(stderr)
    assert "association CANCELLER@127.0.0.1:" in log
    assert "unanswered" not in log
