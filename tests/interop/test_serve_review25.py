"""Handlers that misbehave, driven by DCMTK 3.6.7 over TLS: a ``sys.exit()`` in an
``on_c_store`` handler costs that object Processing Failure (0110H), not the
server (it stopped it: asyncio re-raises SystemExit out of the event loop), and
an ``on_c_echo`` answering no C-ECHO status is answered 0110H (one past FFFFH
failed to encode, and the association was aborted as an internal error)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.server import ServerAssociation
from dicomnet.services.storage import StorageSCP, StoredInstance
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import LOOPBACK, Pki, PkiFactory, run, run_process, running_server
from tests.interop.conftest import dcmtk_tool
from tests.storage.dicomfiles import assert_same_dataset, make_image, uid, write_part10

pytestmark = pytest.mark.interop

SERVER_AE = "DICOMNET-SCP"


@pytest.fixture(scope="module")
def pki(pkis: PkiFactory) -> Pki:
    return pkis("ecdsa")


def _tls(pki: Pki) -> list[str]:
    return ["+tls", str(pki.client_key), str(pki.client_cert), "+cf", str(pki.ca_file), "-pw"]


def test_a_store_handler_calling_sys_exit_fails_its_object_and_the_server_goes_on(
        tmp_path: Path, pki: Pki) -> None:
    storescu = dcmtk_tool("storescu")
    sources = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
               for n in range(300, 303)]
    root = tmp_path / "out"
    exits = {uid(9, 300)}

    def on_c_store(instance: StoredInstance) -> None:
        if instance.sop_instance_uid in exits:
            sys.exit("this object is not for us")

    async def scenario() -> list[tuple[int, str]]:
        scp = StorageSCP(root, on_c_store=on_c_store)
        try:
            async with running_server(ae_title=SERVER_AE, tls=pki.server_tls(),
                                      providers=[VerificationSCP(), scp]) as server:
                runs = []
                for files in (sources, sources[:1]):  # the second: a new association
                    runs.append(await run_process(
                        storescu, *_tls(pki), "-nh", "-v", "-aec", SERVER_AE, LOOPBACK,
                        str(server.port), *files, timeout=30))
                    exits.clear()
                return runs
        finally:
            scp.close()

    (code, output), (again, again_output) = run(scenario(), timeout=60)
    assert code == 0, output
    # DCMTK's words for the status of each C-STORE-RSP, in order.
    statuses = [line for line in output.splitlines() if "Received Store Response" in line]
    assert len(statuses) == 3, output
    assert "Status: 0x110)" in statuses[0], statuses
    assert all("Success" in line for line in statuses[1:]), statuses
    assert again == 0, again_output
    assert "Success" in again_output
    # Stored all the same: the handler runs once the object is durable.
    for n, source in zip(range(300, 303), sources, strict=True):
        assert_same_dataset(source, root / uid(1, n) / uid(2, n) / f"{uid(9, n)}.dcm")


def test_an_echo_handler_answering_past_ffff_is_answered_processing_failure(
        pki: Pki) -> None:
    echoscu = dcmtk_tool("echoscu")

    def on_c_echo(assoc: ServerAssociation) -> int:
        return 0x10000

    async def scenario() -> tuple[int, str]:
        async with running_server(ae_title=SERVER_AE, tls=pki.server_tls(),
                                  providers=[VerificationSCP(on_c_echo=on_c_echo)]) as server:
            return await run_process(echoscu, *_tls(pki), "-v", "--repeat", "2", "-aec",
                                     SERVER_AE, LOOPBACK, str(server.port), timeout=30)

    code, output = run(scenario(), timeout=60)
    answers = [line for line in output.splitlines() if "Received Echo Response" in line]
    assert len(answers) == 2, output
    assert all("Status: 0x110)" in line for line in answers), answers
    assert "Aborted" not in output and "abort" not in output.lower(), output
    assert code == 0, output
