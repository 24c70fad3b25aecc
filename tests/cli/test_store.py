"""dicomnet store into a library Storage SCP over mutual TLS."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from dicomnet.cli.demo import write_synthetic_ct
from dicomnet.security.certificates import DevPKI
from dicomnet.security.config import TLSConfig
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import run
from tests.aio.rawscp import EXPLICIT_LE, IMPLICIT_LE, RawPeer, Request, raw_scp, store_response

from .helpers import ServerThread, client_tls_args, error_line, json_out, run_cli, signalled

storage = pytest.importorskip("dicomnet.services.storage")

StartServer = Callable[..., ServerThread]
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def write_images(folder: Path, count: int) -> dict[str, Path]:
    study, series = generate_uid(), generate_uid()
    return {write_synthetic_ct(folder / f"img{i}.dcm", number=i, study_uid=study,
                               series_uid=series, size=16): folder / f"img{i}.dcm"
            for i in range(1, count + 1)}


def received(root: Path) -> dict[str, bytes]:
    out = {}
    for path in root.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        out[str(ds.SOPInstanceUID)] = bytes(ds.PixelData)
    return out


def test_store_folder_over_mutual_tls(start_server: StartServer, pki: DevPKI,
                                      tmp_path: Path) -> None:
    tls = TLSConfig(certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca_cert)
    root = tmp_path / "store"
    scp = storage.StorageSCP(root)
    server = start_server(tls=tls, providers=[VerificationSCP(), scp])
    sent = write_images(tmp_path / "in", 3)
    result = run_cli("store", "127.0.0.1", server.port, tmp_path / "in", "--json",
                     *client_tls_args(pki))
    scp.close()
    assert result.exit_code == 0, result.output
    doc = json_out(result)
    assert (doc["total"], doc["stored"], doc["failed"]) == (3, 3, 0)
    assert doc["tls"]["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert doc["tls"]["cipher_suite"]
    assert doc["tls"]["alpn"] == "dicom"
    assert {r["sop_instance_uid"] for r in doc["results"]} == set(sent)
    assert all(r["status"] == 0 and r["ok"] for r in doc["results"])
    got = received(root)
    assert set(got) == set(sent)
    for uid, path in sent.items():
        assert got[uid] == bytes(pydicom.dcmread(path).PixelData)


def test_store_reports_a_bad_file_and_exits_1(start_server: StartServer, tmp_path: Path) -> None:
    scp = storage.StorageSCP(tmp_path / "store")
    server = start_server(providers=[VerificationSCP(), scp])
    write_images(tmp_path / "in", 1)
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    result = run_cli("store", "127.0.0.1", server.port, tmp_path / "in")
    scp.close()
    assert result.exit_code == 1, result.output
    assert "Stored 1 of 2 objects" in result.stdout
    assert "notes.txt" in result.stdout


def test_store_json_counts_failures(start_server: StartServer, tmp_path: Path) -> None:
    scp = storage.StorageSCP(tmp_path / "store")
    server = start_server(providers=[VerificationSCP(), scp])
    write_images(tmp_path / "in", 2)
    (tmp_path / "in" / "junk.bin").write_bytes(b"\x00" * 10)
    result = run_cli("store", "127.0.0.1", server.port, tmp_path / "in", "--json")
    scp.close()
    assert result.exit_code == 1
    doc = json_out(result)
    assert (doc["stored"], doc["failed"]) == (2, 1)
    bad = next(r for r in doc["results"] if not r["ok"])
    assert bad["path"].endswith("junk.bin")
    assert bad["error"]


def test_store_to_closed_port_exits_3(tmp_path: Path) -> None:
    import socket

    write_images(tmp_path, 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli("store", "127.0.0.1", port, tmp_path, "--timeout", "5")
    assert result.exit_code == 3
    assert "cannot connect" in error_line(result)


def test_store_empty_folder_is_usage_error(tmp_path: Path) -> None:
    result = run_cli("store", "127.0.0.1", "104", tmp_path)
    assert result.exit_code == 2
    assert "no files found" in error_line(result)


def test_store_retries_what_a_dropped_link_lost(start_server: StartServer, pki: DevPKI,
                                                tmp_path: Path) -> None:
    """The first connection is cut before the server hears a byte (over TLS, in the
    handshake): ``--retries`` sends everything again on a new one; without it,
    nothing could be sent and the exit code says so."""
    from tests.relay import RelayThread

    tls = TLSConfig(certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca_cert)
    root = tmp_path / "store"
    scp = storage.StorageSCP(root)
    server = start_server(tls=tls, providers=[VerificationSCP(), scp])
    sent = write_images(tmp_path / "in", 3)
    args = ["--json", "--server-name", "localhost", *client_tls_args(pki)]
    with RelayThread(server.port, {0: 0}) as relay:
        result = run_cli("store", "127.0.0.1", relay.port, tmp_path / "in",
                         "--retries", "2", "--retry-delay", "0", *args)
        connections = relay.connections
    with RelayThread(server.port, {0: 0}) as relay:
        refused = run_cli("store", "127.0.0.1", relay.port, tmp_path / "in", *args)
    scp.close()
    assert result.exit_code == 0, result.output
    assert connections == 2
    doc = json_out(result)
    assert (doc["stored"], doc["failed"], doc["retried"]) == (3, 0, 3)
    assert [(r["attempts"], r["retryable"]) for r in doc["results"]] == [(2, False)] * 3
    assert "retrying 3 object(s) in 0 s (attempt 2 of 3)" in result.stderr
    assert set(received(root)) == set(sent)
    assert refused.exit_code == 3
    # Cut before any answer, as a plain server cuts it: said so (and transient).
    assert "closed the connection without answering our ClientHello" in error_line(refused)


def test_store_help_teaches_retries() -> None:
    result = run_cli("store", "--help")
    assert result.exit_code == 0
    assert "--retries" in result.stdout and "--retry-delay" in result.stdout
    assert "Out of Resources (A7xxH)" in " ".join(result.stdout.split())


@pytest.mark.parametrize(("signum", "exit_code", "error"), [
    (signal.SIGINT, 130, "error: interrupted"),
    # timeout(1), systemd, CI: SIGTERM killed it at once (-15, no JSON, no A-ABORT).
    (signal.SIGTERM, 143, "error: terminated (SIGTERM)"),
])
def test_an_interrupted_store_says_what_was_stored_and_what_is_unconfirmed(
        tmp_path: Path, signum: signal.Signals, exit_code: int, error: str) -> None:
    """Ctrl-C (or SIGTERM) during a transfer: exit 130 (143), the association
    aborted, and the summary (here --json) still says which objects the peer
    confirmed, for a resume."""
    sent = write_images(tmp_path / "in", 3)
    stalled = asyncio.Event()

    async def answer(peer: RawPeer, request: Request) -> None:
        if len(peer.requests) == 1:
            await peer.send(store_response(request, 0))
        else:
            stalled.set()  # the second gets no answer: the sender waits for it

    async def main() -> tuple[int | None, bytes, bytes, str]:
        async with raw_scp(answer, contexts={CT_IMAGE_STORAGE: [EXPLICIT_LE, IMPLICIT_LE]}
                           ) as (port, peers):
            code, out, err = await signalled(stalled, signum, "store", "127.0.0.1", port,
                                             tmp_path / "in", "--json", "--called-aet", "RAW")
            await asyncio.wait_for(peers[0].ended.wait(), 10)
            return code, out, err, peers[0].ending

    code, out, err, ending = run(main(), timeout=90)
    assert code == exit_code, err.decode()
    assert [line for line in err.decode().splitlines() if line.startswith("error:")] == [error]
    assert ending == "abort"  # the peer was told, not left hanging
    doc = json.loads(out)
    assert doc["interrupted"] is True
    assert (doc["error"], doc["exit_code"]) == (error.removeprefix("error: "), exit_code)
    assert (doc["total"], doc["stored"], doc["failed"]) == (3, 1, 2)
    first, *rest = doc["results"]
    assert first["ok"] and first["status"] == 0 and first["sop_instance_uid"] in sent
    assert {r["path"] for r in doc["results"]} == {str(p) for p in sent.values()}
    # The second went out and got no answer: the peer may hold it. The third was
    # never sent (one at a time): it was "unconfirmed" too, sent False.
    assert [(r["status"], r["ok"], r["status_text"], r["error"], r["sent"])
            for r in rest] == [
        (None, False, "unconfirmed", "interrupted before an answer", True),
        (None, False, "not sent", "interrupted before it was sent", False)]
    assert all(r["sop_instance_uid"] in sent for r in rest)


def test_a_store_interrupted_while_waiting_to_retry_says_each_last_answer(
        tmp_path: Path) -> None:
    """Ctrl-C during --retries' wait: every object was answered Out of Resources
    and nothing is on the wire. The summary said "not confirmed: interrupted
    before their answer (the peer may have stored the one being sent)"; it
    says each one's answer, and that it was not sent again."""
    sent = write_images(tmp_path / "in", 3)

    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(store_response(request, 0xA700))

    async def main() -> tuple[int | None, bytes, bytes, str]:
        async with raw_scp(answer, contexts={CT_IMAGE_STORAGE: [EXPLICIT_LE, IMPLICIT_LE]}
                           ) as (port, peers):
            waiting = asyncio.Event()

            async def released() -> None:
                while not peers:
                    await asyncio.sleep(0.01)
                await peers[0].ended.wait()
                # The sender released its association, then waits 60 s to retry:
                # a second puts the Ctrl-C well inside that wait.
                await asyncio.sleep(1)
                waiting.set()

            watch = asyncio.ensure_future(released())
            code, out, err = await signalled(waiting, signal.SIGINT, "store", "127.0.0.1",
                                             port, tmp_path / "in", "--json", "--called-aet",
                                             "RAW", "--retries", "2", "--retry-delay", "60")
            await watch
            return code, out, err, peers[0].ending

    code, out, err, ending = run(main(), timeout=90)
    assert code == 130, err.decode()
    assert ending == "release"  # the association was over before the Ctrl-C
    doc = json.loads(out)
    assert (doc["interrupted"], doc["total"], doc["stored"], doc["failed"]) == (True, 3, 0, 3)
    assert {r["path"] for r in doc["results"]} == {str(p) for p in sent.values()}
    for r in doc["results"]:
        assert (r["status"], r["ok"], r["sent"], r["retryable"]) == (0xA700, False, True, False)
        assert r["status_text"] == "0xA700 Refused: out of resources"
        assert r["error"].endswith("; interrupted before it was sent again")


def test_store_max_async_sets_the_window_it_proposes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-async N: the asynchronous operations window proposed (PS3.7 D.3.3.3;
    32 without it, 1 for a peer that mishandles windows); it could not be set."""
    from dicomnet.services import storage

    proposed: list[int] = []

    async def store_paths(*args: object, **kwargs: object) -> list[object]:
        proposed.append(kwargs["max_async_operations"])  # type: ignore[arg-type]
        return []

    monkeypatch.setattr(storage, "store_paths", store_paths)
    ds = tmp_path / "ct.dcm"
    write_synthetic_ct(ds, number=1, study_uid=generate_uid(), series_uid=generate_uid())
    run_cli("store", "127.0.0.1", 104, ds, "--max-async", "1", "--json")
    run_cli("store", "127.0.0.1", 104, ds, "--json")
    assert proposed == [1, 32]
    assert run_cli("store", "127.0.0.1", 104, ds, "--max-async", "0").exit_code == 2


def test_store_json_counts_the_tls_connections_and_those_resumed(
        start_server: StartServer, pki: DevPKI, tmp_path: Path) -> None:
    """130 presentation contexts take two associations (PS3.8 9.3.2.2): --json's
    tls_connections and tls_resumed say that the second resumed the first's TLS
    session (RFC 8446 2.2); its "tls" describes the first connection only."""
    from pydicom.uid import ExplicitVRLittleEndian

    from tests.storage.dicomfiles import make_image, uid, write_part10

    tls = TLSConfig(certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca_cert)
    scp = storage.StorageSCP(tmp_path / "store", accept_unknown_sop_classes=True)
    server = start_server(tls=tls, providers=[VerificationSCP(), scp])
    (tmp_path / "in").mkdir()
    for n in range(65):  # two contexts each
        write_part10(tmp_path / "in" / f"{n:02d}.dcm", make_image(n, sop_class_uid=uid(7, n)),
                     ExplicitVRLittleEndian)
    result = run_cli("store", "127.0.0.1", server.port, tmp_path / "in", "--json",
                     *client_tls_args(pki))
    scp.close()
    assert result.exit_code == 0, result.output
    doc = json_out(result)
    assert (doc["stored"], doc["tls_connections"], doc["tls_resumed"]) == (65, 2, 1)
    assert doc["tls"]["session_resumed"] is False
