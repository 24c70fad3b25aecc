"""An ``on_c_store`` handler that answers Success with a comment (``(0, "archived")``):
the C-STORE-RSP carries its Success alone. An Error Comment (0000,0902) belongs
to a Warning or a Failure (PS3.7 C.4, C.5); Success has its Status only (PS3.7
C.1.1; PS3.4 B.2.3, no related field). It had been sent as it came, and a peer
showing the Error Comment of every answer printed an error beside a Success.

Read by real peers (pynetdicom's SCU, DCMTK's storescu -d), and at the unit
level: ``run_hook``'s answer and the C-STORE-RSP's bytes."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.dimse.commands import ERROR_COMMENT, decode_command
from dicomnet.dimse.messages import CStoreRQ, encode_message, refusal
from dicomnet.services.storage import HookAnswer, StorageSCP, StoredInstance
from dicomnet.services.store_answers import response, run_hook
from tests.aio.helpers import LOOPBACK, run, running_server
from tests.interop.conftest import dcmtk_tool
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

#: The handler's answer by Instance Number: a Success with a comment, a Warning
#: with one (sent), a Failure with one (sent).
ANSWERS: dict[int, HookAnswer] = {
    1: (0x0000, "archived to tier 2"),
    2: (0xB000, "patient name coerced"),
    3: (0xA700, "queue full"),
}


def _hook(instance: StoredInstance) -> HookAnswer:
    return ANSWERS[int(instance.dataset(stop_before_pixels=True).InstanceNumber)]


def _files(folder: Path) -> list[Path]:
    return [write_part10(folder / f"{n}.dcm", make_image(n, rows=8, columns=8),
                         ExplicitVRLittleEndian) for n in ANSWERS]


def _serve_while(tmp_path: Path, client: object) -> object:
    """Run ``client(port)`` (blocking) in a thread while a dicomnet StorageSCP
    with :func:`_hook` serves on a free port; its result."""

    async def main() -> object:
        scp = StorageSCP(tmp_path / "store", on_c_store=_hook)
        try:
            async with running_server(providers=[scp]) as server:
                return await asyncio.get_running_loop().run_in_executor(
                    None, client, server.port)  # type: ignore[arg-type]
        finally:
            scp.close()

    return run(main(), timeout=60)


@pytest.mark.interop
def test_pynetdicom_reads_a_plain_success(pynetdicom: ModuleType, tmp_path: Path) -> None:
    files = _files(tmp_path / "in")

    def send(port: int) -> list[tuple[int, str | None]]:
        ae = pynetdicom.AE(ae_title="PYNETDICOM")
        ae.add_requested_context(SECONDARY_CAPTURE, ExplicitVRLittleEndian)
        assoc = ae.associate(LOOPBACK, port)
        try:
            assert assoc.is_established, "pynetdicom could not associate"
            answers = []
            for path in files:
                status = assoc.send_c_store(path)
                answers.append((int(status.Status), status.get("ErrorComment")))
            assoc.release()
        finally:
            ae.shutdown()
        return answers

    assert _serve_while(tmp_path, send) == [
        (0x0000, None), (0xB000, "patient name coerced"), (0xA700, "queue full")]


@pytest.mark.interop
def test_storescu_reads_no_error_comment_with_the_success(tmp_path: Path) -> None:
    storescu = dcmtk_tool("storescu")
    files = _files(tmp_path / "in")

    def send(port: int) -> str:
        outputs = []
        for path in files:  # one association each: each answer's dump is its own
            done = subprocess.run(
                [storescu, "-d", "-aec", "DICOMNET-SCP", LOOPBACK, str(port), str(path)],
                capture_output=True, text=True, timeout=30, check=False)
            outputs.append(done.stdout + done.stderr)
        return "\n=====\n".join(outputs)

    output = _serve_while(tmp_path, send)
    assert isinstance(output, str)
    success, warning, failure = output.split("\n=====\n")
    # storescu -d dumps each C-STORE-RSP it reads, an Error Comment included.
    assert "0x0000: Success" in success, success
    assert "(0000,0902)" not in success and "archived" not in success, success
    assert "(0000,0902) LO [patient name coerced]" in warning, warning
    assert "(0000,0902) LO [queue full]" in failure, failure


def test_run_hook_drops_the_comment_of_a_success_and_says_why(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    instance = StoredInstance(tmp_path / "x.dcm", SECONDARY_CAPTURE, "1.2.3.4", "1.2.840.10008.1.2",
                              "SCU", None, False)

    def answer(value: HookAnswer) -> tuple[int, str | None]:
        return asyncio.run(run_hook(lambda _i: value, instance))

    with caplog.at_level(logging.DEBUG, logger="dicomnet.services"):
        assert answer((0, "archived")) == (0, None)
    (record,) = [r for r in caplog.records if "archived" in r.getMessage()]
    assert record.levelno == logging.DEBUG
    assert "not sent with its Success (0000H)" in record.getMessage()
    assert "PS3.7 C.1.1" in record.getMessage()
    assert answer((0xB000, "coerced")) == (0xB000, "coerced")
    assert answer((0xC001, "not a CT")) == (0xC001, "not a CT")
    assert answer(0) == (0, None)


def test_a_store_response_has_no_error_comment_with_a_success() -> None:
    rq = CStoreRQ(message_id=7, affected_sop_class_uid=SECONDARY_CAPTURE,
                  affected_sop_instance_uid="1.2.3.4")
    success = decode_command(encode_message(response(rq, 0x0000, "archived")))
    assert ERROR_COMMENT not in success
    # (0000,0902) LO, 8 bytes: "archived" - with a Warning or a Failure, as it was.
    for status in (0xB000, 0xA700):
        raw = encode_message(response(rq, status, "archived"))
        assert b"\x00\x00\x02\x09\x08\x00\x00\x00archived" in raw
        assert decode_command(raw)[ERROR_COMMENT] == "archived"
    # The refusals an SCP answers by itself follow the same rule.
    refused = refusal(rq, 0x0000, "archived")
    assert refused is not None and getattr(refused, "error_comment", None) is None
    refused = refusal(rq, 0x0211, "not here")
    assert refused is not None and getattr(refused, "error_comment", None) == "not here"
