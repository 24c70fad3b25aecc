"""``dicomnet demo``: the secure round trip in one command, on this machine only.

Dev PKI -> mutually authenticated TLS server (port 0) -> C-ECHO -> synthetic CT
images -> C-STORE -> received pixel data compared byte for byte.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from dicomnet.aio.client import associate
from dicomnet.aio.server import ServiceProvider
from dicomnet.aio.server import serve as start_server
from dicomnet.aio.transport import SecureLinkEvent
from dicomnet.cli.common import (
    EXIT_CODES_EPILOG,
    EXIT_FAILURE_STATUS,
    EXIT_OK,
    cli_session,
    command_name,
    is_interruption,
    print_json,
    run_async,
)
from dicomnet.cli.describe import describe_security
from dicomnet.cli.serve import stop_server, storage_scp
from dicomnet.errors import ConfigurationError
from dicomnet.security.certificates import DevPKI, key_is_encrypted, make_dev_pki
from dicomnet.security.config import TLSConfig
from dicomnet.security.info import SecurityInfo
from dicomnet.services.verification import VerificationSCP

__all__ = ["demo", "write_synthetic_ct"]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


@dataclass
class DemoReport:
    """What the demo did and saw."""

    directory: Path
    pki_reused: bool = False
    port: int = 0
    echo_status: int | None = None
    echo_ms: float = 0.0
    client_view: SecurityInfo | None = None
    server_views: list[SecurityInfo] = field(default_factory=list)
    handshake_errors: list[str] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)
    stored: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    storage_available: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems and self.echo_status == 0

    def to_json(self, *, exit_code: int, error: str | None = None) -> dict[str, Any]:
        """The ``--json`` document: the same keys whether the demo ended, failed
        (``error``) or was interrupted."""
        return {
            "ok": self.ok and error is None,
            "directory": str(self.directory),
            "pki_reused": self.pki_reused,
            "port": self.port,
            "echo_status": self.echo_status,
            "echo_ms": round(self.echo_ms, 3),
            "tls_client_view": self.client_view.to_dict() if self.client_view else None,
            "tls_server_views": [s.to_dict() for s in self.server_views],
            "handshake_errors": self.handshake_errors,
            "stored": self.stored,
            "problems": self.problems,
            "interrupted": is_interruption(exit_code),
            "error": error,
            "exit_code": exit_code,
        }


def _pki(directory: Path) -> tuple[DevPKI, bool]:
    """Reuse DIR/pki when complete and unencrypted, else make it."""
    names = ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")
    paths = [directory / n for n in names]
    if all(p.is_file() for p in paths):
        if any(key_is_encrypted(p.read_bytes()) for p in paths if p.suffix == ".key"):
            raise ConfigurationError(
                f"the keys in {directory} are encrypted; the demo needs its own unencrypted "
                f"development keys: remove {directory} or use another --dir")
        ca, ca_key, server, server_key, client, client_key = paths
        return DevPKI(directory, ca, ca_key, server, server_key, client, client_key), True
    return make_dev_pki(directory), False


def write_synthetic_ct(path: Path, *, number: int, study_uid: str, series_uid: str,
                       size: int = 64) -> str:
    """Write a small CT image (size x size, 16-bit, random pixels); returns its SOP UID."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(CT_IMAGE_STORAGE)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = UID(EXPLICIT_LE)
    ds = Dataset()
    ds.file_meta = meta
    now = dt.datetime.now()
    ds.SOPClassUID = UID(CT_IMAGE_STORAGE)
    ds.SOPInstanceUID = UID(sop_uid)
    ds.StudyInstanceUID = UID(study_uid)
    ds.SeriesInstanceUID = UID(series_uid)
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientName = "DEMO^DICOMNET"
    ds.PatientID = "DICOMNET-DEMO"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.Modality = "CT"
    ds.Manufacturer = "dicomnet demo (synthetic, not a real patient)"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.ImagePositionPatient = [0, 0, number * 5]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.SliceThickness = 5
    ds.KVP = 120
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = os.urandom(size * size * 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return sop_uid


def _pixels_by_uid(files: list[Path]) -> dict[str, bytes]:
    import pydicom

    found: dict[str, bytes] = {}
    for f in files:
        try:
            ds = pydicom.dcmread(f)
        except Exception:  # not DICOM (e.g. the SCP's index): not ours to compare
            continue
        if "PixelData" in ds and "SOPInstanceUID" in ds:
            found[str(ds.SOPInstanceUID)] = bytes(ds.PixelData)
    return found


async def _demo(report: DemoReport, count: int, say: Any) -> None:
    """The round trip, noting in ``report`` what it did and saw as it goes (a
    failure or a Ctrl-C later leaves what was done to report)."""
    directory = report.directory
    pki, report.pki_reused = _pki(directory / "pki")
    say("PKI", f"{'reused' if report.pki_reused else 'made'} {pki.directory} "
               "(development CA, server and client certificates)")
    server_tls = TLSConfig(certfile=pki.server_cert, keyfile=pki.server_key,
                           cafile=pki.ca_cert, peer_certificate="required")
    # Connected to by address, the server is named as its certificate names it
    # (a reused pki/ may not): the client then sends SNI, which it sends for no IP
    # address (RFC 6066 3), and both sides show it.
    server_cert = server_tls.local_certificate_info()  # ConfigurationError if unreadable
    named = server_cert is not None and "localhost" in server_cert.sans
    client_tls = TLSConfig(certfile=pki.client_cert, keyfile=pki.client_key,
                           cafile=pki.ca_cert, server_hostname="localhost" if named else None)

    def on_link(event: SecureLinkEvent) -> None:
        if event.info is not None:
            report.server_views.append(event.info)
        elif event.error is not None:
            report.handshake_errors.append(str(event.error))

    store_dir = directory / "store"
    providers: list[ServiceProvider] = [VerificationSCP()]
    storage = storage_scp(store_dir)
    report.storage_available = storage is not None
    if storage is not None:
        providers.append(storage)
    try:
        server = await start_server(ae_title="DEMO-SCP", host="127.0.0.1", port=0,
                                    tls=server_tls, providers=providers,
                                    on_secure_link_ready=on_link)
    except BaseException:
        _close(storage)  # the index, had the server not started (a Ctrl-C, SIGTERM)
        raise
    report.port = server.port
    try:
        say("server", f"listening on 127.0.0.1:{server.port} (TLS, profile {server_tls.profile}, "
                      "client certificate required)"
                      + (f", storing into {store_dir}" if storage is not None else ""))
        async with associate("127.0.0.1", server.port, tls=client_tls,
                             calling_ae_title="DEMO-SCU", called_ae_title="DEMO-SCP") as assoc:
            report.client_view = assoc.security
            sent = time.perf_counter()
            status = await assoc.echo()
            report.echo_ms = (time.perf_counter() - sent) * 1000
            report.echo_status = int(status)
        say("C-ECHO", f"{status.description} (0x{int(status):04X}) in {report.echo_ms:.1f} ms")
        if not status.is_success:
            report.problems.append(f"C-ECHO answered {status}")
        if storage is None:
            report.problems.append("storage service not available: C-STORE skipped")
            return
        await _store_and_verify(report, client_tls, server.port, count, say)
    finally:
        # Also after a Ctrl-C or SIGTERM, and whole even if one comes meanwhile:
        # the server's associations aborted, its temporary files removed, its
        # index closed (the server closes the storage SCP).
        if await stop_server(server):
            raise asyncio.CancelledError  # the signal that came during the stop


def _close(provider: ServiceProvider | None) -> None:
    close = getattr(provider, "close", None)
    if callable(close):
        close()


async def _store_and_verify(report: DemoReport, tls: TLSConfig, port: int, count: int,
                            say: Any) -> None:
    from pydicom.uid import generate_uid

    from dicomnet.services.storage import store_paths

    input_dir = report.directory / "input"
    study, series = generate_uid(), generate_uid()
    originals: dict[str, Path] = {}
    for i in range(1, count + 1):
        path = input_dir / f"ct-{i}.dcm"
        originals[write_synthetic_ct(path, number=i, study_uid=study, series_uid=series)] = path
        report.inputs.append(path)
    say("images", f"{count} synthetic CT images (64x64, 16-bit) in {input_dir}")
    results = await store_paths("127.0.0.1", port, report.inputs, tls=tls,
                                calling_ae_title="DEMO-SCU", called_ae_title="DEMO-SCP")
    failed = [r for r in results if not r.ok]
    for r in failed:
        report.problems.append(f"C-STORE of {r.path} failed: {r.error}")
    say("C-STORE", f"{len(results) - len(failed)} of {len(results)} stored")
    sent = _pixels_by_uid(report.inputs)
    store_dir = report.directory / "store"
    received_files = [p for p in store_dir.rglob("*.dcm") if p.is_file()]
    by_uid: dict[str, Path] = {}
    import pydicom

    for p in received_files:
        try:
            uid = str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
        except Exception:
            continue
        if uid in originals:
            by_uid[uid] = p
    received = _pixels_by_uid(list(by_uid.values()))
    identical = 0
    for uid, pixels in sent.items():
        got = by_uid.get(uid)
        same = received.get(uid) == pixels
        identical += same
        if got is None:
            report.problems.append(f"{originals[uid]} was not found in {store_dir}")
        elif not same:
            report.problems.append(f"pixel data of {got} differs from {originals[uid]}")
        report.stored.append({"sent": str(originals[uid]), "received": str(got) if got else None,
                              "sop_instance_uid": uid, "pixel_data_identical": same,
                              "bytes": len(pixels)})
    say("verify", f"{identical} of {len(sent)} received files hold byte-identical pixel data")


def _print_report(report: DemoReport) -> None:
    click.echo("")
    if report.client_view is not None:
        click.echo(click.style("Secure link, as the client saw it", bold=True)
                   + " (peer certificate = the server's)")
        click.echo("\n".join(describe_security(report.client_view)))
    if report.server_views:
        click.echo(click.style("Secure link, as the server saw it", bold=True)
                   + f" ({len(report.server_views)} connection(s); peer certificate = the "
                     "client's)")
        click.echo("\n".join(describe_security(report.server_views[0])))
    for error in report.handshake_errors:
        click.echo(f"server-side handshake failure: {error}")
    if report.stored:
        click.echo(click.style("Stored files", bold=True))
        for item in report.stored:
            mark = "identical" if item["pixel_data_identical"] else "DIFFERENT"
            click.echo(f"  {item['received']}  ({item['bytes']} bytes of pixel data, {mark})")
    d = report.directory
    pki = d / "pki"
    click.echo(click.style("Try it by hand", bold=True))
    dicomnet = command_name()
    client = ["--tls", "--cert", str(pki / "client.pem"), "--key", str(pki / "client.key"),
              "--ca", str(pki / "ca.pem")]
    # Quoted: pasted, a --dir "my demo" must stay one word.
    for words in (["serve", "--tls", "--cert", str(pki / "server.pem"), "--key",
                   str(pki / "server.key"), "--ca", str(pki / "ca.pem"), "--output",
                   str(d / "store")],
                  ["echo", "localhost", *client],
                  ["store", "localhost", "2762", str(d / "input"), *client]):
        click.echo(f"  {dicomnet} {shlex.join(words)}")
    click.echo("")
    if report.ok:
        click.echo(click.style("Demo passed: ", fg="green", bold=True)
                   + "mutual TLS, C-ECHO and C-STORE all worked.")
    else:
        for problem in report.problems:
            click.echo(click.style("problem: ", fg="red", bold=True) + problem, err=True)


@click.command(epilog=EXIT_CODES_EPILOG,
               short_help="Show the secure round trip on this machine, in one command.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("dicomnet-demo"), show_default=True,
              help="Working folder: pki/ (reused if present), input/, store/.")
@click.option("--count", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Synthetic images to send.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON: one document whatever happens (its \"ok\", "
                   "\"error\" and \"exit_code\" say how the demo ended).")
@click.option("-v", "--verbose", count=True, help="-v: INFO logs on stderr; -vv: DEBUG.")
def demo(*, directory: Path, count: int, as_json: bool, verbose: int) -> None:
    """Show the whole secure DICOM round trip on this machine, in one command.

    Makes a development PKI (pki/ in --dir), starts a TLS server on 127.0.0.1
    that requires client certificates (mutual authentication), sends a
    C-ECHO, writes a few synthetic CT images and C-STOREs them, checks the
    received pixel data is byte-identical, and prints what TLS negotiated on
    both sides, then the commands to do it by hand. Nothing leaves this
    machine. Ctrl-C or SIGTERM stops it, its server closed (exit 130, 143).

    \b
    Examples:
      dicomnet demo
      dicomnet demo --dir /tmp/demo --count 10 --json
    """
    def say(step: str, text: str) -> None:
        if not as_json:
            click.echo(f"{click.style(f'{step:<8}', fg='cyan', bold=True)} {text}")

    report = DemoReport(directory=directory)

    def on_exit(message: str, code: int) -> None:
        if as_json:  # a script reads one document, whatever happened
            print_json(report.to_json(exit_code=code, error=message))

    with cli_session(verbose):
        run_async(lambda: _demo(report, count, say), verbose=verbose, on_exit=on_exit,
                  sigterm_interrupts=True)
    code = EXIT_OK if report.ok else EXIT_FAILURE_STATUS
    if as_json:
        print_json(report.to_json(exit_code=code))
    else:
        _print_report(report)
    if code != EXIT_OK:
        raise SystemExit(code)
