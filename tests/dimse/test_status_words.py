"""How a status code the service does not define is worded (PS3.7 Annex C; PS3.4
B.2.3), wherever a status is printed: its class, and what is wrong with it. It
was "Failure: unknown status", which read as "a failure we know nothing of" for
0xA123 (a C-STORE Axxx, a failure by its class) and for 0x1234 (in no class at
all), and the str() of a status said its class twice ("failure: Failure: ...")."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomnet.dimse.messages import CEchoRSP, CStoreRSP
from dicomnet.dimse.status import Service, Status
from dicomnet.errors import StatusError


@pytest.mark.parametrize(
    ("code", "service", "description", "text"),
    [
        # In a class, not in the service's table nor its ranges (PS3.4 B.2.3: A7xx,
        # A9xx, Cxxx, B000, B006, B007).
        (0xA123, "storage", "Failure: a code C-STORE does not define",
         "0xA123 (failure: a code C-STORE does not define)"),
        (0xB123, "storage", "Warning: a code C-STORE does not define",
         "0xB123 (warning: a code C-STORE does not define)"),
        (0x0125, "storage", "Failure: a code C-STORE does not define",
         "0x0125 (failure: a code C-STORE does not define)"),
        # A C-STORE has one response and no C-CANCEL (PS3.7 9.1.1).
        (0xFF00, "storage", "Pending: a code C-STORE does not define",
         "0xFF00 (pending: a code C-STORE does not define)"),
        (0xFE00, "storage", "Cancel: a code C-STORE does not define",
         "0xFE00 (cancel: a code C-STORE does not define)"),
        (0xC123, "echo", "Failure: a code C-ECHO does not define",
         "0xC123 (failure: a code C-ECHO does not define)"),
        (0xFF01, "echo", "Pending: a code C-ECHO does not define",
         "0xFF01 (pending: a code C-ECHO does not define)"),
        (0xA801, "get", "Failure: a code C-GET does not define",
         "0xA801 (failure: a code C-GET does not define)"),
        # In no class: not allowed (PS3.7 Annex C), taken as a failure.
        (0x1234, "storage", "Failure: a code in no status class (PS3.7 Annex C)",
         "0x1234 (failure: a code in no status class (PS3.7 Annex C))"),
        (0xFF02, None, "Failure: a code in no status class (PS3.7 Annex C)",
         "0xFF02 (failure: a code in no status class (PS3.7 Annex C))"),
        # No service given: only the general table (PS3.7 C) can word it.
        (0xC123, None, "Failure: not a general code (PS3.7 Annex C); its service may "
                       "define it",
         "0xC123 (failure: not a general code (PS3.7 Annex C); its service may define it)"),
        # Defined ones: unchanged words, the class said once in str().
        (0xC123, "storage", "Error: cannot understand",
         "0xC123 (failure: Error: cannot understand)"),
        (0xB000, "storage", "Warning: coercion of data elements",
         "0xB000 (warning: coercion of data elements)"),
        (0xFF00, "find", "Pending: matches are continuing",
         "0xFF00 (pending: matches are continuing)"),
        (0x0122, "echo", "Refused: SOP Class not supported",
         "0x0122 (failure: Refused: SOP Class not supported)"),
        (0x0000, "echo", "Success", "0x0000 (success: Success)"),
    ],
)
def test_a_code_is_worded_by_its_class_and_its_service(
        code: int, service: Service | None, description: str, text: str) -> None:
    status = Status(code, service)
    assert status.description == description
    assert str(status) == text
    assert "unknown" not in text


def test_raise_for_status_says_the_code_its_class_and_service() -> None:
    with pytest.raises(StatusError) as caught:
        Status(0xA123, "storage").raise_for_status()
    assert str(caught.value) == "DIMSE status 0xA123: Failure: a code C-STORE does not define"


def test_responses_word_their_codes_by_their_operation() -> None:
    """A C-ECHO-RSP's status is worded as C-ECHO's (general codes only: PS3.7
    9.1.5.1.4), a C-STORE-RSP's as C-STORE's."""
    echo = CEchoRSP(message_id_being_responded_to=1, status=0xC123)
    store = CStoreRSP(message_id_being_responded_to=1, status=0xA123)
    assert echo.status_info.description == "Failure: a code C-ECHO does not define"
    assert store.status_info.description == "Failure: a code C-STORE does not define"


def test_the_store_table_and_json_error_say_the_same_words() -> None:
    """``dicomnet store``'s table row (``_failure_text``) and its --json ``error``
    (``StoreResult.error``) for a C-STORE-RSP of 0xA123 without a comment."""
    from dicomnet.cli.store import _failure_text
    from dicomnet.services.storage import StoreResult
    from dicomnet.services.store_result import record as _record

    result = StoreResult(path=Path("x.dcm"))
    _record(result, CStoreRSP(message_id_being_responded_to=1, status=0xA123))
    assert result.error == "0xA123 (failure: a code C-STORE does not define)"
    assert result.to_dict()["error"] == result.error
    assert _failure_text(result) == "0xA123 Failure: a code C-STORE does not define"
    assert result.dimse_status is not None
    assert result.dimse_status.description == "Failure: a code C-STORE does not define"


def test_the_echo_client_words_an_undefined_code_as_c_echo() -> None:
    """``assoc.echo()`` (what ``dicomnet echo`` prints: description, then code)."""
    from dicomnet.aio.client import associate
    from dicomnet.config import Timeouts
    from tests.aio.helpers import LOOPBACK, run
    from tests.aio.rawscp import VERIFICATION, RawPeer, Request, raw_scp, response_pdu

    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(response_pdu(request.context_id, CEchoRSP(
            message_id_being_responded_to=request.message.message_id,  # type: ignore[union-attr]
            status=0xC123, affected_sop_class_uid=VERIFICATION)))

    async def main() -> Status:
        async with raw_scp(answer) as (port, _peers), associate(
                LOOPBACK, port, timeouts=Timeouts(dimse=30)) as assoc:
            return await assoc.echo()

    status = run(main(), timeout=10)
    assert status == 0xC123
    assert f"{status.description} (0x{int(status):04X})" == (
        "Failure: a code C-ECHO does not define (0xC123)")
