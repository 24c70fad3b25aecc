"""Review 29: Odil (Debian odil + python3-odil 0.12.2, C++11; no TLS) judges
dicomnet by use, both ways, over plain TCP. Odil runs under Debian's
/usr/bin/python3, driven by odil_peer.py; what arrives is compared element by
element and Pixel Data byte for byte with what was sent.

Found with it, ours (fixed):

- it sends an uncompressed image's data set as it is on an RLE Lossless
  context: dicomnet answered Success and stored an "RLE" file of native pixels
  (DCMTK refuses it); now 0xC000, PS3.5 A.4 (storage/test_native_pixels_encapsulated.py);
- it answers each C-STORE on the last accepted context of the request's SOP
  Class: dicomnet store (several contexts per class) aborted on the first
  answer; now taken, one warning (aio/test_response_context_twin.py, aio/response_context.py).

Odil's quirks, not ours (told apart with DCMTK's storescp and dcmdump):

- it does not deflate: on a Deflated Explicit VR LE context it sends the data
  set uncompressed (DCMTK's storescp aborts on it, dicomnet answers 0xC000
  naming the corrupt stream), and it cannot read a deflated file or data set
  (it closes the connection on one: "Unknown VR");
- it sends Pixel Data as it holds it, whatever the context (encapsulated
  fragments on a native one, native pixels on an encapsulated one);
- reading Implicit VR it takes Pixel Data for OW (as PS3.5 A.1 has it), so an
  8-bit image it read implicit and sends Big Endian has its bytes swapped in
  pairs: the inputs it sends are Explicit VR LE files;
- its Python SCP cannot set its own maximum PDU length or reject an
  association (the bindings take no acceptor).

Under CI=true a missing Odil fails (scripts/test installs it).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from dicomnet.aio.client import associate
from dicomnet.services.store_scu import store_paths
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import free_port, run
from tests.interop.conftest import _missing, dicomnet_serve_plain
from tests.storage.dicomfiles import assert_same_dataset, make_image, write_part10

pytestmark = pytest.mark.interop
PEER_TIMEOUT = 60
SYSTEM_PYTHON = Path("/usr/bin/python3")
PEER = Path(__file__).with_name("odil_peer.py")
VERIFICATION = "1.2.840.10008.1.1"


@pytest.fixture(scope="session")
def odil() -> Path:
    """Debian's python3 with the odil module; skip or, under CI, fail if absent."""
    found = SYSTEM_PYTHON.is_file() and subprocess.run(
        [SYSTEM_PYTHON, "-c", "import odil"], capture_output=True, timeout=30,
        check=False).returncode == 0
    if not found:
        _missing("Odil (apt-get install odil python3-odil)")
    return SYSTEM_PYTHON


def _run_peer(python: Path, tmp: Path, **config: Any) -> list[dict[str, Any]]:
    """odil_peer.py with ``config`` to its end: its JSON lines."""
    config_file = tmp / f"odil-{config['mode']}.json"
    config_file.write_text(json.dumps(config))
    done = subprocess.run([python, PEER, config_file], capture_output=True, text=True,
                          timeout=PEER_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@contextlib.contextmanager
def _odil_scp(python: Path, tmp: Path, **config: Any) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Odil's SCP for one association, listening: (its port, its JSON lines once
    it has ended)."""
    port = free_port()
    output = tmp / "odil-store"
    output.mkdir(parents=True)
    config_file = tmp / "odil-scp.json"
    config_file.write_text(json.dumps({"mode": "scp", "port": port, "output": str(output),
                                       **config}))
    lines: list[dict[str, Any]] = []
    with subprocess.Popen([python, PEER, config_file], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline() or "{}")
        assert first == {"listening": port}, (first, proc.stderr and proc.stderr.read())
        wait_listening(port, proc)
        try:
            yield port, lines
        finally:
            out, err = proc.communicate(timeout=PEER_TIMEOUT)
            lines.extend(json.loads(line) for line in out.splitlines() if line.startswith("{"))
            assert proc.returncode == 0, err


def wait_listening(port: int, proc: subprocess.Popen[str]) -> None:
    """Until ``port`` is in LISTEN state (0A in /proc/net/tcp): a test connection
    would take Odil's one association."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                return
        time.sleep(0.01)
    pytest.fail(f"Odil's SCP never listened on {port} (exit status {proc.poll()})")


def _stored(store: Path) -> dict[str, Path]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
            for p in store.rglob("*.dcm")}


# -- Odil's SCU into dicomnet serve ----------------------------------------------------------


def test_odil_scu_echo_and_store_into_dicomnet_serve(odil: Path, tmp_path: Path) -> None:
    """C-ECHO, then one association per proposed syntax (Odil encodes in it), a
    small image and a 2 MB one (multi-PDU); 4 KiB and 1 MiB maximum PDUs."""
    runs = {ImplicitVRLittleEndian: 4096, ExplicitVRLittleEndian: None,
            ExplicitVRBigEndian: 4096}
    sent: dict[str, Path] = {}
    with dicomnet_serve_plain(tmp_path / "store") as (port, events, _):
        assert _run_peer(odil, tmp_path, mode="echo", port=port) == [
            {"echo": "ok"}, {"done": "released"}]
        for n, (syntax, max_pdu) in enumerate(runs.items()):
            files = [write_part10(tmp_path / f"{n}-small.dcm", make_image(10 * n + 1),
                                  ExplicitVRLittleEndian),
                     write_part10(tmp_path / f"{n}-big.dcm",
                                  make_image(10 * n + 2, rows=1024, columns=1024, frames=2),
                                  ExplicitVRLittleEndian)]
            sent.update((str(pydicom.dcmread(f).SOPInstanceUID), f) for f in files)
            extra = {} if max_pdu is None else {"max_pdu": max_pdu}
            lines = _run_peer(odil, tmp_path, mode="store", port=port, syntaxes=[syntax],
                              files=[str(f) for f in files], **extra)
            assert lines[1:] == [{"file": f.name, "status": 0} for f in files] + [
                {"done": "released"}], lines
        rle = write_part10(tmp_path / "rle.dcm", make_image(40), RLELossless)
        sent[str(make_image(40).SOPInstanceUID)] = rle
        assert _run_peer(odil, tmp_path, mode="store", port=port, syntaxes=[RLELossless],
                         files=[str(rle)])[1:] == [{"file": "rle.dcm", "status": 0},
                                                   {"done": "released"}]
    stored = _stored(tmp_path / "store")
    assert sorted(stored) == sorted(sent)
    for uid, path in stored.items():
        assert_same_dataset(sent[uid], path)
    syntaxes = {e["sop_instance_uid"]: str(e["transfer_syntax_uid"]) for e in events
                if e["event"] == "stored"}
    assert sorted(syntaxes.values()) == sorted(
        [s for s in runs for _ in (1, 2)] + [RLELossless])
    ended = [e for e in events if e["event"] == "association_ended"]
    assert [e["how"] for e in ended] == ["released"] * 5
    assert all(e["calling_aet"] == "ODIL" for e in ended)


def test_odil_deflated_and_native_on_rle_are_refused(odil: Path, tmp_path: Path) -> None:
    """Odil sends a data set uncompressed on a deflated context, and native pixels
    on an RLE one: 0xC000 each, nothing stored."""
    small = write_part10(tmp_path / "small.dcm", make_image(50), ExplicitVRLittleEndian)
    with dicomnet_serve_plain(tmp_path / "store") as (port, events, stderr):
        for syntax in (DeflatedExplicitVRLittleEndian, RLELossless):
            lines = _run_peer(odil, tmp_path, mode="store", port=port, syntaxes=[syntax],
                              files=[str(small)])
            assert lines[-1] == {"done": "released"}, lines
            assert lines[1] == {"file": "small.dcm", "status": 0xC000}, lines
    assert _stored(tmp_path / "store") == {}
    refused = [(e["status"], str(e["reason"])) for e in events if e["event"] == "refused"]
    assert [status for status, _ in refused] == ["0xC000", "0xC000"]
    assert "its deflated stream is corrupt" in refused[0][1]
    assert ("native (7FE0,0010) in an encapsulated syntax: a defined length (768 bytes)"
            ) in refused[1][1]
    assert "PS3.5 A.4" in "".join(stderr)


def test_odil_rejected_and_aborting_scu(odil: Path, tmp_path: Path) -> None:
    """A wrong called AE title is rejected (--check-called-aet); an A-ABORT from
    Odil after one C-STORE ends the association as aborted by the peer."""
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(60 + n), ExplicitVRLittleEndian)
             for n in (1, 2)]
    with dicomnet_serve_plain(tmp_path / "store", "--check-called-aet") as (port, events, _):
        lines = _run_peer(odil, tmp_path, mode="store", port=port, called="WRONG",
                          syntaxes=[ExplicitVRLittleEndian], files=[str(files[0])])
        assert lines == [{"done": "error", "error": "Exception: Association rejected"}]
        lines = _run_peer(odil, tmp_path, mode="store", port=port, abort_after=1,
                          syntaxes=[ExplicitVRLittleEndian], files=[str(f) for f in files])
        assert lines[1:] == [{"file": "1.dcm", "status": 0}, {"done": "aborted"}]
    refused = [e for e in events if e["event"] == "connection_refused"]
    assert len(refused) == 1 and refused[0]["called_aet"] == "WRONG"
    assert "called AE title not recognized" in str(refused[0]["reason"])
    ended = [e for e in events if e["event"] == "association_ended"]
    assert [(e["how"], e["by"], e["objects"]) for e in ended] == [("aborted", "peer", 1)]
    assert list(_stored(tmp_path / "store")) == [make_image(61).SOPInstanceUID]


# -- dicomnet's SCU into Odil's SCP ----------------------------------------------------------


def test_dicomnet_store_and_echo_into_odil_scp(odil: Path, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Files in four syntaxes and a 2 MB one, as they are; Odil answers on another
    context of the SOP Class, taken with one warning (before: A-ABORT)."""
    inputs = [
        write_part10(tmp_path / "in" / "im.dcm", make_image(71), ImplicitVRLittleEndian),
        write_part10(tmp_path / "in" / "ex.dcm", make_image(72), ExplicitVRLittleEndian),
        write_part10(tmp_path / "in" / "be.dcm", make_image(73), ExplicitVRBigEndian),
        write_part10(tmp_path / "in" / "rle.dcm", make_image(74), RLELossless),
        write_part10(tmp_path / "in" / "big.dcm",
                     make_image(75, rows=1024, columns=1024, frames=2), ExplicitVRLittleEndian),
    ]
    with _odil_scp(odil, tmp_path / "a") as (port, lines):
        results = run(store_paths("127.0.0.1", port, inputs, called_ae_title="ODIL"),
                      timeout=PEER_TIMEOUT)
    assert [(r.path.name, r.status, r.error) for r in results] == [
        (p.name, 0, None) for p in inputs]
    assert lines[0]["calling"] == "DICOMNET" and lines[0]["called"] == "ODIL"
    assert lines[-1] == {"done": "released"}
    stored = _stored(tmp_path / "a" / "odil-store")
    sent = {str(pydicom.dcmread(p).SOPInstanceUID): p for p in inputs}
    assert sorted(stored) == sorted(sent)
    for uid, path in stored.items():
        assert_same_dataset(sent[uid], path)
    twins = [r.getMessage() for r in caplog.records if "a twin" in r.getMessage()]
    assert len(twins) == 1, twins

    async def echo(port: int) -> int:
        async with associate("127.0.0.1", port, called_ae_title="ODIL", contexts=[
                ContextRequest(VERIFICATION, (ExplicitVRLittleEndian,))]) as assoc:
            return int(await assoc.echo())

    with _odil_scp(odil, tmp_path / "b") as (port, lines):
        assert run(echo(port), timeout=PEER_TIMEOUT) == 0
    assert lines[-1] == {"done": "released"}


def test_odil_scp_aborting_after_one_store(odil: Path, tmp_path: Path) -> None:
    """Odil's A-ABORT after one C-STORE: that one stored, the next aborted by the
    peer, the last not sent."""
    inputs = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(80 + n),
                           ExplicitVRLittleEndian) for n in (1, 2, 3)]
    with _odil_scp(odil, tmp_path / "a", abort_after=1) as (port, lines):
        results = run(store_paths("127.0.0.1", port, inputs, called_ae_title="ODIL",
                                  max_async_operations=1), timeout=PEER_TIMEOUT)
    assert lines[-1] == {"done": "aborted"}
    assert results[0].ok and results[0].status == 0
    assert not any(r.ok for r in results[1:])
    assert all("association aborted by the peer (its A-ABORT: service-user)" in str(r.error)
               for r in results[1:]), [r.error for r in results]
