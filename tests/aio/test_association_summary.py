"""The line a server logs when an association ends answers "did it all arrive?":
how many requests were answered with each status (failures and warnings by
code), and how long the association lasted. It said "released, 2 message(s)"
whether both objects were stored or neither."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.aio.client import associate
from dicomnet.services.storage import StorageSCP, store_paths
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import encode_pdata
from tests.aio.helpers import run, running_server, wait_until
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10
from tests.storage.helpers import data_set_bytes, make_dataset
from tests.storage.rawscu import RawAssociation, store_command

VERIFICATION = ContextRequest("1.2.840.10008.1.1", (ImplicitVRLittleEndian,))


def _summaries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "dicomnet.aio" and r.getMessage().startswith("association ")]


def test_the_summary_counts_answers_by_status(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_part10(tmp_path / "one.dcm", make_image(1), str(ExplicitVRLittleEndian))
    other = write_part10(tmp_path / "two.dcm", make_image(2), str(ExplicitVRLittleEndian))
    again = tmp_path / "one-again.dcm"  # the same SOP Instance UID: refused (0111H)
    again.write_bytes(path.read_bytes())

    async def scenario() -> list[int | None]:
        scp = StorageSCP(tmp_path / "store", duplicates="reject")
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                results = await store_paths("127.0.0.1", server.port, [path, other, again],
                                            calling_ae_title="CT01",
                                            max_async_operations=1)
        finally:
            scp.close()
        return [r.status for r in results]

    with caplog.at_level(logging.INFO, logger="dicomnet"):
        assert run(scenario()) == [0x0000, 0x0000, 0x0111]
    (line,) = _summaries(caplog)
    assert re.fullmatch(r"association CT01@127\.0\.0\.1:\d+ -> ANY-SCP: released, "
                        r"3 message\(s\) \(2 success, 1 failure 0x0111\), \d+\.\d\d s", line), line


def test_an_echo_says_its_success(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with (running_server(providers=[VerificationSCP()]) as server,
                    associate("127.0.0.1", server.port, calling_ae_title="MR02") as assoc):
            await assoc.echo()

    with caplog.at_level(logging.INFO, logger="dicomnet"):
        run(scenario())
    (line,) = _summaries(caplog)
    assert re.fullmatch(r"association MR02@127\.0\.0\.1:\d+ -> [A-Z-]+: released, "
                        r"1 message\(s\) \(1 success\), \d+\.\d\d s", line), line


def test_a_connection_aborted_before_it_associated_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    """An A-ASSOCIATE-RQ the server cannot take (here a calling AE title with a line
    feed in it, PS3.5 6.2) was aborted without a word in the log: the operator of
    a modality misconfigured so saw nothing at all."""
    async def scenario() -> None:
        async with running_server(providers=[VerificationSCP()]) as server:
            with pytest.raises(AssertionError, match="association not accepted"):
                await RawAssociation.open(server.port, [VERIFICATION],
                                          calling_ae_title=b"CT\nFAKE")
            await wait_until(lambda: not server._tasks, "the connection's end")

    with caplog.at_level(logging.INFO, logger="dicomnet"):
        run(scenario())
    lines = [r for r in caplog.records if r.name == "dicomnet.aio"
             and r.getMessage().startswith("connection refused: 127.0.0.1:")]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert lines[0].levelno == logging.WARNING
    assert re.fullmatch(r"connection refused: 127\.0\.0\.1:\d+: .+; A-ABORT sent, "
                        r"\d+\.\d\d s", lines[0].getMessage()), lines[0].getMessage()
    assert "\n" not in lines[0].getMessage()


def test_an_abort_says_which_object_it_left_unfinished(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A sender that aborts (or a server stopped) in the middle of a data set: the
    line said "aborted (...), 1 message(s) (1 success)", not that a second
    object had been arriving and was dropped."""
    uid = "1.2.826.0.1.3680043.8.498.7"
    big = make_dataset(sop_instance_uid=uid)
    big.PixelData = bytes(3 << 20)
    data = data_set_bytes(big, str(ExplicitVRLittleEndian))
    store = tmp_path / "store"
    first = data_set_bytes(make_dataset(), str(ExplicitVRLittleEndian))

    async def scenario() -> None:
        scp = StorageSCP(store)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                raw = await RawAssociation.open(
                    server.port, [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))])
                await raw.send_store(1, store_command(SECONDARY_CAPTURE.encode(),
                                                      b"1.2.826.0.1.3680043.8.498.1"), first)
                await raw.read_message()
                await raw.send(encode_pdata(1, True, True, store_command(
                    SECONDARY_CAPTURE.encode(), uid.encode(), 2)))
                # Past the spill threshold: the server has it under way once a
                # temporary file shows.
                await raw.send(*raw.data_pdus(1, data[:2 << 20])[:-1])
                await wait_until(lambda: any(store.glob(".*.dicomnet-part")), "the spill")
                await raw.abort()
                await wait_until(lambda: not server._tasks, "the association's end")
        finally:
            scp.close()

    with caplog.at_level(logging.INFO, logger="dicomnet"):
        run(scenario())
    (line,) = _summaries(caplog)
    assert re.fullmatch(rf"association RAWSCU@127\.0\.0\.1:\d+ -> DICOMNET: aborted \(.+; "
                        rf"the data set of a C-STORE-RQ for {re.escape(uid)} left unfinished, "
                        r"not stored\), 1 message\(s\) \(1 success\), \d+\.\d\d s", line), line
