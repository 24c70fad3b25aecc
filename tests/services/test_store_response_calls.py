"""The C-STORE-RSP of an object stored, built per image on the event loop: its
values checked inline (no helper per UID, no status category for a Success),
the same response as before for every status and UID."""

from __future__ import annotations

import pytest

from dicomnet.dimse.messages import CStoreRQ
from dicomnet.dimse.status import PROCESSING_FAILURE, SUCCESS
from dicomnet.services.store_answers import response
from tests.aio.test_receive_path_calls import python_calls

CT = "1.2.840.10008.5.1.4.1.1.2"


def _rq(instance: str, sop_class: str = CT) -> CStoreRQ:
    return CStoreRQ(message_id=7, affected_sop_class_uid=sop_class,
                    affected_sop_instance_uid=instance)


def test_a_success_is_answered_in_two_python_calls() -> None:
    message = _rq("1.2.3.4")
    answers = []
    seen = python_calls(lambda: answers.append(response(message, SUCCESS, None)))
    (rsp,) = answers
    assert seen[0] == "response" and len(seen) == 2, seen
    assert (rsp.message_id_being_responded_to, rsp.status, rsp.affected_sop_class_uid,
            rsp.affected_sop_instance_uid, rsp.error_comment) == (7, SUCCESS, CT, "1.2.3.4", None)


@pytest.mark.parametrize(("instance", "echoed"), [
    ("1." * 31 + "12", "1." * 31 + "12"),  # 64 characters: echoed
    ("1." * 32 + "1", None),  # 65: not
    ("1.2.é", None),  # not ASCII: not
])
def test_only_an_encodable_uid_is_echoed(instance: str, echoed: str | None) -> None:
    rsp = response(_rq(instance, sop_class=instance), SUCCESS, "ignored with a Success")
    assert rsp.affected_sop_instance_uid == echoed
    assert rsp.affected_sop_class_uid == echoed
    assert rsp.error_comment is None


def test_a_failure_keeps_its_comment_and_a_warning_too() -> None:
    assert response(_rq("1.2"), PROCESSING_FAILURE, "disk\\full").error_comment == "disk?full"
    assert response(_rq("1.2"), 0xB000, "coerced").error_comment == "coerced"
    assert response(_rq("1.2"), PROCESSING_FAILURE, None).error_comment is None
    assert response(_rq("1.2"), 0xFF00, "pending").error_comment is None
