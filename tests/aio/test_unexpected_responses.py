"""A response naming a request that is not outstanding (PS3.7 9.1), as the users
of the client see it: the blocking API, ``store_paths`` and ``dicomnet store``
fail at once, saying which ID came and which were outstanding, where they
waited out the DIMSE timeout (60 s by default) before. The client's own path
is in test_client_responses."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet import blocking
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CEchoRSP, CStoreRQ, CStoreRSP
from dicomnet.errors import AssociationAborted
from dicomnet.services.storage import store_paths
from tests.aio.helpers import LOOPBACK, run, wait_until
from tests.aio.rawscp import VERIFICATION, RawPeer, Request, raw_scp, response_pdu, store_into
from tests.aio.test_dimse_timeout_abort import A_ABORT_BY_USER, _raw_scp_thread
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

#: Long enough that a test waiting it out fails by its own bound first.
TIMEOUTS = Timeouts(dimse=120)


class _WrongID:
    """An ``answer`` for raw_scp: request number ``wrong`` (from 1) is answered
    with message ID 7; the others with their own, Success. What the client sent
    after the wrong one is kept (up to its A-ABORT, or b"" for a close)."""

    def __init__(self, wrong: int) -> None:
        self.wrong = wrong
        self.after: list[bytes] = []

    async def __call__(self, peer: RawPeer, request: Request) -> None:
        message = request.message
        responded = 7 if len(peer.requests) == self.wrong else message.message_id  # type: ignore[union-attr]
        if isinstance(message, CStoreRQ):
            rsp: CStoreRSP | CEchoRSP = CStoreRSP(
                message_id_being_responded_to=responded, status=0,
                affected_sop_class_uid=message.affected_sop_class_uid,
                affected_sop_instance_uid=message.affected_sop_instance_uid)
        else:
            rsp = CEchoRSP(message_id_being_responded_to=responded, status=0,
                           affected_sop_class_uid=VERIFICATION)
        await peer.send(response_pdu(request.context_id, rsp))
        if len(peer.requests) != self.wrong:
            return
        while True:
            try:
                pdu = await peer.read_pdu()
            except (asyncio.IncompleteReadError, ConnectionError):
                pdu = b""
            self.after.append(pdu)
            if pdu[:1] in (b"", b"\x07"):
                return


def test_blocking_echo_answered_with_another_id_aborts_at_once() -> None:
    answer = _WrongID(1)
    with (_raw_scp_thread(answer) as (port, _),
          blocking.associate(LOOPBACK, port, timeouts=TIMEOUTS) as assoc,
          pytest.raises(AssociationAborted, match=(
              r"invalid DIMSE data from peer: CEchoRSP to message 7, which is not "
              r"outstanding \(outstanding: 1\)"))):
        assoc.echo()
    assert answer.after == [A_ABORT_BY_USER]


@pytest.mark.parametrize("window", [1, 3], ids=["synchronous", "window-3"])
def test_store_paths_answered_with_another_id_fails_the_batch_at_once(
        tmp_path: Path, window: int) -> None:
    """Three files; the second C-STORE is answered with ID 7: the first is stored,
    the second fails with the reason (sent: the peer may hold it), the third is
    not sent (window 1) or fails by the same abort (window 3: it was out)."""
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n, rows=8, columns=8),
                          ExplicitVRLittleEndian) for n in range(3)]
    answer = _WrongID(2)

    async def main() -> list[tuple[bool, int | None, bool, str | None]]:
        stored, _ending = await store_into(answer, files, window=window, timeouts=TIMEOUTS)
        return [(r.ok, r.status, r.sent, r.error) for r in stored]

    results = run(main())
    assert answer.after[-1] == A_ABORT_BY_USER
    assert results[0] == (True, 0, True, None)
    ok, status, sent, error = results[1]
    assert (ok, status, sent) == (False, None, True)
    assert error is not None and "CStoreRSP to message 7, which is not outstanding" in error
    assert "(outstanding: 2)" in error or window > 1
    assert results[2][:2] == (False, None)
    assert results[2][3] is not None and "message 7" in results[2][3]


def test_dicomnet_store_answered_with_another_id_exits_at_once(tmp_path: Path) -> None:
    """``dicomnet store --json``: one object stored, then an answer naming
    message 7: exit 1 (objects not stored), each failed object says why."""
    from tests.cli.helpers import json_out, run_cli  # the CLI only here

    (tmp_path / "in").mkdir()
    for n in range(3):
        write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n, rows=8, columns=8),
                     ExplicitVRLittleEndian)

    async def main() -> Any:
        async with raw_scp(_WrongID(2),
                           contexts={SECONDARY_CAPTURE: [str(ExplicitVRLittleEndian)]}
                           ) as (port, _):
            return await asyncio.to_thread(run_cli, "store", LOOPBACK, port, tmp_path / "in",
                                           "--json")

    result = run(main(), timeout=40)  # the DIMSE timeout is 60 s
    assert result.exit_code == 1, result.output
    doc = json_out(result)
    assert (doc["stored"], doc["failed"], doc["exit_code"]) == (1, 2, 1)
    failed = [r["error"] for r in doc["results"] if not r["ok"]]
    assert len(failed) == 2
    assert all("CStoreRSP to message 7, which is not outstanding" in e for e in failed)


def test_a_peer_answering_another_id_is_not_tried_again(tmp_path: Path) -> None:
    """``retries`` is for failures that may pass (PS3.8 aborts, a dropped link); an
    SCP whose response names no request of ours answers so again: our abort for
    its protocol error is not retried (it was, ``retryable`` and all, so every
    attempt sent the object again, which the peer may have stored each time)."""
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n, rows=8, columns=8),
                          ExplicitVRLittleEndian) for n in range(2)]

    async def main() -> int:
        async with raw_scp(_WrongID(1),
                           contexts={SECONDARY_CAPTURE: [str(ExplicitVRLittleEndian)]}
                           ) as (port, peers):
            with pytest.raises(AssociationAborted) as raised:
                await store_paths(LOOPBACK, port, files, timeouts=TIMEOUTS, retries=3,
                                  retry_delay=0)
            await wait_until(lambda: all(p.ended.is_set() for p in peers), "the peer's end")
        assert "CStoreRSP to message 7, which is not outstanding" in str(raised.value)
        return len(peers)

    assert run(main()) == 1  # one association: no attempt more
