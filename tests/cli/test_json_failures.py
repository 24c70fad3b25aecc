"""store --json and echo --json print one document whatever happens: the same keys
when the connection, TLS or the association fails (exit 3) as on success."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dicomnet.cli.serve import allow_only
from dicomnet.security.certificates import DevPKI
from dicomnet.security.config import TLSConfig
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import run
from tests.aio.rawscp import EXPLICIT_LE, IMPLICIT_LE, RawPeer, Request, raw_scp, store_response

from .helpers import ServerThread, client_tls_args, error_line, json_out, run_cli
from .test_store import write_images

storage = pytest.importorskip("dicomnet.services.storage")

StartServer = Callable[..., ServerThread]
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

STORE_KEYS = {"peer", "calling_aet", "called_aet", "tls", "tls_connections", "tls_resumed",
              "total", "stored", "failed", "dicomdirs",
              "retried", "stored_with_warnings", "skipped", "bytes", "seconds", "interrupted",
              "error", "exit_code", "results"}
ECHO_KEYS = {"status", "status_text", "status_category", "peer", "calling_aet", "called_aet",
             "tls", "associate_ms", "rtt_ms", "rtts_ms", "count", "interrupted", "error",
             "exit_code"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peer(how: str, start_server: StartServer, pki: DevPKI, other_pki: DevPKI,
          tmp_path: Path) -> tuple[int, list[str | Path], str]:
    """A peer that fails the client ``how``: its port, the client's flags, and the
    start of the error message."""
    if how == "refused":
        return _closed_port(), ["--timeout", "5"], "cannot connect to 127.0.0.1:"
    if how == "retries exhausted":
        return (_closed_port(), ["--timeout", "5", "--retries", "1", "--retry-delay", "0"],
                "cannot connect to 127.0.0.1:")
    scp = storage.StorageSCP(tmp_path / "store")
    providers = [VerificationSCP(), scp]
    if how == "TLS":
        tls = TLSConfig(certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca_cert)
        server = start_server(tls=tls, providers=providers)
        return (server.port, ["--tls", "--ca", other_pki.ca_cert, "--cert", pki.client_cert,
                              "--key", pki.client_key], "TLS handshake")
    assert how == "rejected"
    server = start_server(providers=providers,
                          on_association_request=allow_only(frozenset({"SOMEONE-ELSE"})))
    return server.port, [], "association rejected"


HOW = ["refused", "retries exhausted", "TLS", "rejected"]


@pytest.mark.parametrize("how", HOW)
def test_store_json_when_the_association_fails(how: str, start_server: StartServer,
                                               pki: DevPKI, other_pki: DevPKI,
                                               tmp_path: Path) -> None:
    """Exit 3 printed nothing on stdout, only the error: line on stderr (a link
    lost mid-transfer gave JSON and exit 1): a script needed two code paths."""
    sent = write_images(tmp_path / "in", 2)
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    port, flags, reason = _peer(how, start_server, pki, other_pki, tmp_path)
    result = run_cli("store", "127.0.0.1", port, tmp_path / "in", "--json", *flags)
    assert result.exit_code == 3, result.output
    doc: dict[str, Any] = json_out(result)
    assert set(doc) == STORE_KEYS
    message = error_line(result).removeprefix("error: ")
    assert reason in message
    assert (doc["error"], doc["exit_code"], doc["interrupted"]) == (message, 3, False)
    assert (doc["total"], doc["stored"], doc["failed"], doc["bytes"]) == (3, 0, 3, 0)
    assert doc["retried"] == (2 if how == "retries exhausted" else 0)
    results = {Path(r["path"]).name: r for r in doc["results"]}
    assert results["notes.txt"]["error"].startswith("not a DICOM Part 10 file")
    assert results["notes.txt"]["not_dicom"] and doc["skipped"] == 1
    for path in sent.values():
        r = results[path.name]
        assert (r["ok"], r["status"], r["status_text"]) == (False, None, "not sent")
        assert reason in r["error"]


def test_store_json_says_no_error_on_success_and_exit_1_for_a_failed_object(
        start_server: StartServer, tmp_path: Path) -> None:
    scp = storage.StorageSCP(tmp_path / "store")
    server = start_server(providers=[VerificationSCP(), scp])
    write_images(tmp_path / "in", 1)
    ok = run_cli("store", "127.0.0.1", server.port, tmp_path / "in", "--json")
    (tmp_path / "in" / "junk.bin").write_bytes(b"\x00" * 10)
    failed = run_cli("store", "127.0.0.1", server.port, tmp_path / "in", "--json")
    scp.close()
    assert (ok.exit_code, failed.exit_code) == (0, 1)
    for result, code in ((ok, 0), (failed, 1)):
        doc = json_out(result)
        assert set(doc) == STORE_KEYS
        assert (doc["error"], doc["exit_code"], doc["interrupted"]) == (None, code, False)


@pytest.mark.parametrize("how", ["refused", "TLS", "rejected"])
def test_echo_json_when_the_association_fails(how: str, start_server: StartServer,
                                              pki: DevPKI, other_pki: DevPKI,
                                              tmp_path: Path) -> None:
    port, flags, reason = _peer(how, start_server, pki, other_pki, tmp_path)
    result = run_cli("echo", "127.0.0.1", port, "--json", "--count", "2", *flags)
    assert result.exit_code == 3, result.output
    doc = json_out(result)
    message = error_line(result).removeprefix("error: ")
    assert reason in message
    assert doc == {
        "status": None, "status_text": None, "status_category": None,
        "peer": f"127.0.0.1:{port}", "calling_aet": "DICOMNET", "called_aet": "ANY-SCP",
        "tls": None, "associate_ms": None, "rtt_ms": None, "rtts_ms": [], "count": 2,
        "interrupted": False, "error": message, "exit_code": 3,
    }


def test_echo_json_on_success_has_the_same_keys(start_server: StartServer,
                                                pki: DevPKI) -> None:
    tls = TLSConfig(certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca_cert)
    server = start_server(tls=tls)
    result = run_cli("echo", "127.0.0.1", server.port, "--json", *client_tls_args(pki))
    assert result.exit_code == 0, result.output
    doc = json_out(result)
    assert set(doc) == ECHO_KEYS
    assert (doc["status"], doc["error"], doc["exit_code"], doc["interrupted"]) == (
        0, None, 0, False)
    assert doc["tls"]["alpn"] == "dicom"


@pytest.mark.parametrize(("answered", "exit_code"), [(1, 1), (0, 3)])
def test_store_link_lost_mid_transfer_exits_1_once_an_object_was_stored(
        answered: int, exit_code: int, tmp_path: Path) -> None:
    """What the exit codes epilog says: the link lost once some objects were
    stored is 1 (objects not stored); lost before any was, 3."""
    write_images(tmp_path / "in", 3)

    async def answer(peer: RawPeer, request: Request) -> None:
        if len(peer.requests) > answered:
            peer.writer.close()  # the link drops before this object's answer
            return
        await peer.send(store_response(request, 0))

    async def main() -> Any:
        async with raw_scp(answer, contexts={CT_IMAGE_STORAGE: [EXPLICIT_LE, IMPLICIT_LE]}
                           ) as (port, _):
            return await asyncio.to_thread(run_cli, "store", "127.0.0.1", port,
                                           tmp_path / "in", "--json")

    result = run(main(), timeout=60)
    assert result.exit_code == exit_code, result.output
    doc = json_out(result)
    assert (doc["stored"], doc["failed"], doc["exit_code"]) == (answered, 3 - answered,
                                                                exit_code)
    if exit_code == 1:
        assert doc["error"] is None and "error:" not in result.stderr
    else:
        assert doc["error"] == error_line(result).removeprefix("error: ")
    assert all(r["error"] for r in doc["results"] if not r["ok"])
