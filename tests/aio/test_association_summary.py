"""The line a server logs when an association ends answers "did it all arrive?":
how many requests were answered with each status (failures and warnings by
code), and how long the association lasted. It said "released, 2 message(s)"
whether both objects were stored or neither."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import associate
from dicomnet.services.storage import StorageSCP, store_paths
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import make_image, write_part10


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
