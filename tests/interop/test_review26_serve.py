"""Review of ``dicomnet serve`` by use (session 26), with DCMTK as the sender
over mutually authenticated TLS."""

from __future__ import annotations

import logging

import pytest

from dicomnet.cli.serve import allow_only
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import LOOPBACK, Pki, PkiFactory, log_lines, run, run_process, running_server
from tests.interop.conftest import dcmtk_tool

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def pki(pkis: PkiFactory) -> Pki:
    return pkis("ecdsa")


def test_a_rejection_line_says_whose_certificate_and_what_was_expected(
        pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    """The line of an association rejected by AE title lacked what the line of
    an accepted one has and the help promises ("who, how it ended, how long it
    lasted and its TLS link"): with mutual TLS, which client certificate asked
    for an AE title it may not use went unsaid; and a called AE title refused
    did not say which this server answers to. DCMTK reads the same rejection."""
    caplog.set_level(logging.INFO, logger="dicomnet.aio")
    echoscu = dcmtk_tool("echoscu")
    tls = ["+tls", str(pki.client_key), str(pki.client_cert), "+cf", str(pki.ca_file)]

    async def scenario() -> list[tuple[int, str]]:
        async with running_server(ae_title="ARCHIVE", tls=pki.server_tls(),
                                  providers=[VerificationSCP()],
                                  require_called_ae_title=True,
                                  on_association_request=allow_only(frozenset({"GOOD"}))
                                  ) as server:
            return [await run_process(echoscu, *tls, "-aet", calling, "-aec", called,
                                      LOOPBACK, str(server.port), timeout=30)
                    for calling, called in (("BAD", "ARCHIVE"), ("GOOD", "OTHER"))]

    (bad, bad_out), (other, other_out) = run(scenario(), timeout=60)
    assert bad != 0 and "Reason: Calling AE Title Not Recognized" in bad_out, bad_out
    assert other != 0 and "Reason: Called AE Title Not Recognized" in other_out, other_out
    lines = log_lines(caplog, level=logging.INFO, contains="rejected")
    assert len(lines) == 2, lines
    certificate = "client certificate dicomnet test client (SHA-256 "
    assert lines[0].startswith("association from BAD@127.0.0.1:"), lines
    assert "-> ARCHIVE rejected (rejected-permanent) by service-user: calling AE title " \
           "not recognized (1, 1, 3)" in lines[0], lines
    assert lines[1].startswith("association from GOOD@127.0.0.1:"), lines
    assert "-> OTHER rejected (rejected-permanent) by service-user: called AE title not " \
           "recognized (1, 1, 7): this server is ARCHIVE (require_called_ae_title)" in lines[1]
    for line in lines:
        assert ", TLSv1.3 " in line and certificate in line, line
