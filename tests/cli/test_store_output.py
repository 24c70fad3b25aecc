"""dicomnet store's human output: text that is not ours is printed as it is."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

import pytest
from click.testing import Result
from pydicom.uid import generate_uid

from dicomnet.aio.transport import SecureLinkEvent
from dicomnet.cli.common import NetworkOptions
from dicomnet.cli.demo import write_synthetic_ct
from dicomnet.dimse.messages import CStoreRSP
from dicomnet.security.certificates import CertificateInfo, DevPKI
from dicomnet.security.info import SecurityInfo
from tests.aio.helpers import run
from tests.aio.rawscp import EXPLICIT_LE, IMPLICIT_LE, RawPeer, Request, raw_scp, store_response

from .helpers import run_cli

storage = pytest.importorskip("dicomnet.services.storage")

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
#: An Error Comment as a PACS may word it: rich read "[/var/...]" as a closing tag.
COMMENT = "write failed [/var/pacs/incoming]"


def _store_to_a_failing_peer(*args: str | Path, comment: str = COMMENT) -> Result:
    """``dicomnet store ARGS`` (in a thread) against a peer that answers every
    C-STORE with 0xC000 and ``comment``."""

    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(store_response(request, 0xC000, comment))

    async def main() -> Result:
        async with raw_scp(answer, contexts={CT_IMAGE_STORAGE: [EXPLICIT_LE, IMPLICIT_LE]}
                           ) as (port, _):
            return await asyncio.to_thread(run_cli, "store", "127.0.0.1", port, *args,
                                           "--called-aet", "RAW")

    return run(main(), timeout=60)


def test_a_peer_comment_and_a_path_with_brackets_are_printed_as_they_are(
        tmp_path: Path) -> None:
    """A peer's Error Comment with ``[/...]`` raised rich's MarkupError (a traceback,
    no summary); a path's ``[link=...]`` became a hidden hyperlink, ``[x]`` vanished.
    Off a terminal nothing wraps at 80 columns: the path stays on one line."""
    folder = tmp_path / ("in [x] " + "long-folder-name-" * 4)
    image = folder / "[link=https:evil.example]ct[bold].dcm"
    write_synthetic_ct(image, number=1, study_uid=generate_uid(),
                       series_uid=generate_uid(), size=16)
    result = _store_to_a_failing_peer(image)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    row = next(line for line in lines if str(image) in line)
    status = f"0xC000 Error: cannot understand ({COMMENT})"
    assert re.fullmatch(rf"│ {re.escape(str(image))} │ {re.escape(status)} │ +[\d.]+ kB │", row)
    summary = lines[-1]
    assert re.fullmatch(r"Stored 0 of 1 objects \(0 B\) to RAW@127\.0\.0\.1:\d+ in \d+\.\d\d s "
                        r"\(0 B/s\), not encrypted", summary), summary
    assert "Traceback" not in result.stderr


def _network_options(*, called_aet: str, tls: bool) -> NetworkOptions:
    return NetworkOptions(
        role="client", aet="DICOMNET", called_aet=called_aet, tls=tls, cert=None, key=None,
        ca=None, crl=(), profile="bcp195-rfc9325", peer_cert="required", no_verify=False,
        server_name=None, ciphers=None, key_password_env=None, key_password_file=None,
        json=False, verbose=0, timeout=None)


def test_a_fingerprint_is_not_read_as_emoji_codes(pki: DevPKI, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``:CD:`` in a SHA-256 fingerprint printed as an emoji (and ``:AB:`` as
    another); off a terminal the line also wrapped at 80 columns."""
    from dicomnet.cli.store import _report
    from dicomnet.services.storage import StoreResult

    fingerprint = ":".join(["AB", "CD", "0B", "CD", "D7"] * 6 + ["EE", "FF"])
    cert = dataclasses.replace(CertificateInfo.from_pem_file(pki.server_cert),
                               sha256_fingerprint=fingerprint,
                               subject="CN=[link=https:evil.example]pacs [bold]:CD:")
    info = SecurityInfo(
        side="client", protocol="TLSv1.3", cipher_suite="TLS_AES_256_GCM_SHA384",
        openssl_cipher_name="TLS_AES_256_GCM_SHA384", key_exchange=None,
        authentication="ECDSA", authentication_key_bits=256, encryption="AES-256-GCM",
        encryption_key_bits=256, integrity="AEAD (GCM)", peer_certificates=(cert,),
        local_certificate=None, alpn="dicom", sni="[red]pacs:AB:", session_resumed=False)
    path = tmp_path / "a.dcm"
    _report([StoreResult(path=path, status=0, ok=True, size=1000)], host="pacs[x]",
            port=2762, net=_network_options(tls=True, called_aet="PACS:CD:"),
            sizes=[1000],
            links=[SecureLinkEvent(peer=("127.0.0.1", 2762), side="client", info=info)],
            seconds=1.0, exit_code=0)
    out = capsys.readouterr().out
    assert "Stored 1 of 1 objects (1.0 kB) to PACS:CD:@pacs[x]:2762 in 1.00 s (1.0 kB/s), " \
           "over TLS\n" in out
    assert f"\n    SHA-256     {fingerprint}\n" in out
    assert "\n    subject     CN=[link=https:evil.example]pacs [bold]:CD:\n" in out
    assert "\n  SNI             [red]pacs:AB:\n" in out


def test_a_peer_comment_cannot_send_the_terminal_escape_sequences_or_lines(
        tmp_path: Path) -> None:
    """ESC ] 52 writes the clipboard of many terminals, ESC [ 2J clears the screen, a
    newline forges a line of output: a peer's Error Comment is printed with its
    control characters as escapes, on its own row."""
    image = tmp_path / "ct.dcm"
    write_synthetic_ct(image, number=1, study_uid=generate_uid(),
                       series_uid=generate_uid(), size=16)
    hostile = "\x1b]52;c;cGF5bG9hZA==\x07\x1b[2J\nStored 1 of 1 objects"
    result = _store_to_a_failing_peer(image, comment=hostile)
    assert result.exit_code == 1, result.output
    for control in ("\x1b", "\x07"):
        assert control not in result.stdout and control not in result.stderr
    row = next(line for line in result.stdout.splitlines() if str(image) in line)
    assert r"\x1b]52;c;cGF5bG9hZA==\x07\x1b[2J\x0aStored 1 of 1 objects" in row
    assert not any(line.startswith("Stored 1 of 1") for line in result.stdout.splitlines())


def test_a_failed_row_says_the_status_its_comment_and_a_retrys_remark() -> None:
    from dicomnet.cli.store import _failure_text
    from dicomnet.services.storage import StoreResult
    from dicomnet.services.store_result import record as _record

    def failed(status: int, comment: str | None, attempts: int = 1) -> str:
        result = StoreResult(path=Path("x.dcm"), attempts=attempts)
        _record(result, CStoreRSP(message_id_being_responded_to=1, status=status,
                                  error_comment=comment), sent_before=attempts > 1)
        return _failure_text(result)

    assert failed(0xA700, "disk full") == "0xA700 Refused: out of resources (disk full)"
    assert failed(0xA900, None) == "0xA900 Error: data set does not match SOP Class"
    remark = (" (sent again after a lost answer: most likely stored by the earlier "
              "attempt)")
    assert failed(0x0111, None, 2) == "0x0111 Duplicate SOP Instance" + remark
    assert failed(0x0111, "have it", 2) == "0x0111 Duplicate SOP Instance (have it)" + remark
    assert _failure_text(StoreResult(path=Path("x.dcm"), error="not sent: refused")) == (
        "not sent: refused")


def test_after_a_ctrl_c_the_objects_never_sent_are_not_called_unconfirmed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """a.dcm stored, b.dcm sent and not answered, c.dcm not sent yet: the summary
    said "2 object(s) not confirmed", as if the peer might hold c.dcm."""
    from dicomnet.cli.store import _report, _unfinished_results
    from dicomnet.services.storage import StoreResult

    a, b, c = (tmp_path / f"{n}.dcm" for n in "abc")
    stored = StoreResult(path=a, sop_instance_uid="1.1", status=0, ok=True, sent=True)
    known = [stored, StoreResult(path=b, sop_instance_uid="1.2", sent=True),
             StoreResult(path=c, sop_instance_uid="1.3", size=7)]
    results = _unfinished_results([a, b, c], [stored], "interrupted", 130, sending=True,
                                  known=known)
    assert [(r.path, r.sop_instance_uid, r.error, r.sent) for r in results[1:]] == [
        (b, "1.2", "interrupted before an answer", True),
        (c, "1.3", "interrupted before it was sent", False)]
    _report(results, host="pacs", port=104, net=_network_options(tls=False, called_aet="P"),
            sizes=[10, 10, 10], links=[], seconds=1.0, exit_code=130,
            interrupted=True, error="interrupted")
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [
        "1 object(s) not confirmed: sent, then interrupted before their answer (the peer "
        "may hold them)",
        "1 object(s) not sent: interrupted before their turn"]
    assert not any(str(b) in line or str(c) in line for line in lines)


def test_after_a_ctrl_c_the_results_are_in_the_files_order(tmp_path: Path) -> None:
    """--json's results are one per file, in order (its --help): after a Ctrl-C
    they came in the order they were heard of (a file not DICOM, told as it was
    read, first), then the others."""
    from dicomnet.cli.store import _unfinished_results
    from dicomnet.services.storage import StoreResult

    a, b, c, d = (tmp_path / f"{n}.dcm" for n in "abcd")
    junk = StoreResult(path=d, error="not a DICOM Part 10 file: junk", not_dicom=True)
    stored = StoreResult(path=b, sop_instance_uid="1.2", status=0, ok=True, sent=True)
    known = [StoreResult(path=a, sop_instance_uid="1.1"), stored,
             StoreResult(path=c, sop_instance_uid="1.3", sent=True), junk]
    results = _unfinished_results([a, b, c, d], [junk, stored], "interrupted", 130,
                                  sending=True, known=known)
    assert [(r.path, r.error) for r in results] == [
        (a, "interrupted before it was sent"), (b, None), (c, "interrupted before an answer"),
        (d, "not a DICOM Part 10 file: junk")]
    # And so for a failure that ended the run (--json's document from on_exit).
    failed = _unfinished_results([a, b, c, d], [junk, stored], "boom", 3, sending=True)
    assert [(r.path, r.error) for r in failed] == [
        (a, "boom"), (b, None), (c, "boom"), (d, "not a DICOM Part 10 file: junk")]
