"""dicomnet serve: usage errors in-process, a real run as a subprocess stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from dicomnet.security.certificates import CertificateAuthority, DevPKI
from tests.storage.helpers import make_dataset, write_part10_file

from .helpers import client_tls_args, error_line, json_out, read_line, run_cli
from .test_help import _help


def test_serve_tls_echo_then_sigterm_stops_cleanly(serve_process: Any, pki: DevPKI) -> None:
    proc, started = serve_process("--tls", "--cert", pki.server_cert, "--key", pki.server_key,
                                  "--ca", pki.ca_cert, "--aet", "TESTSCP")
    assert started["event"] == "listening"
    assert started["host"] == "127.0.0.1"
    assert started["tls"] is True
    assert started["profile"] == "bcp195-rfc9325"
    assert started["peer_cert"] == "required"
    assert (started["max_associations"], started["max_per_host"], started["max_pending"]) == (
        64, 32, 128)
    echo = run_cli("echo", "127.0.0.1", started["port"], "--called-aet", "TESTSCP", "--json",
                   *client_tls_args(pki))
    assert echo.exit_code == 0, echo.output
    assert json_out(echo)["tls"]["protocol"] in ("TLSv1.2", "TLSv1.3")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"event": "stopped", "drained": 0,
                                                        "aborted": 0}
    # One INFO line per association on stderr by default.
    assert "association DICOMNET@127.0.0.1" in err
    assert "released" in err
    assert "Traceback" not in err


def test_serve_plain_sigint_stops_cleanly(serve_process: Any) -> None:
    proc, started = serve_process()
    assert started["tls"] is False
    assert run_cli("echo", "127.0.0.1", started["port"]).exit_code == 0
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_serve_operation_timeout_reaches_the_server_and_is_checked(serve_process: Any) -> None:
    """--operation-timeout (Timeouts.operation: a request's handler or store that
    does not finish in time aborts its association), with --timeout or without."""
    proc, started = serve_process("--operation-timeout", "7.5", "--timeout", "20")
    assert started["operation_timeout"] == 7.5
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    proc, started = serve_process()
    assert started["operation_timeout"] == 300.0
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    result = run_cli("serve", "--port", "0", "--operation-timeout", "0")
    assert result.exit_code == 2
    assert "--operation-timeout" in result.output


def test_serve_tls_without_certificate_is_usage_error() -> None:
    result = run_cli("serve", "--tls", "--port", "0")
    assert result.exit_code == 2
    assert "--cert" in result.output
    assert "certs init" in result.output


def test_serve_required_peer_cert_needs_ca(pki: DevPKI) -> None:
    result = run_cli("serve", "--port", "0", "--cert", pki.server_cert, "--key", pki.server_key)
    assert result.exit_code == 2
    assert "--ca" in result.output
    assert "--peer-cert none" in result.output


def test_serve_port_in_use_exits_3(pki: DevPKI, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_cli("serve", "--port", port, "--output", tmp_path / "new" / "store")
    assert result.exit_code == 3
    assert f"cannot listen on 127.0.0.1:{port}" in error_line(result)
    # Nothing left behind: the folders it made (and the index in them) are gone again.
    assert not (tmp_path / "new").exists()


def test_a_start_that_cannot_listen_leaves_an_existing_output_as_it_was(
        tmp_path: Path) -> None:
    """An --output that was there keeps its index (a store in use is not undone)."""
    import socket

    root = tmp_path / "store"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        result = run_cli("serve", "--port", sock.getsockname()[1], "--output", root)
    assert result.exit_code == 3
    assert sorted(p.name for p in root.iterdir()) == ["index.sqlite", "notes.txt"]


def test_an_output_folder_that_cannot_be_used_is_a_usage_error(tmp_path: Path) -> None:
    """Exit 2 with the reason, before listening: a file where the folder should be."""
    (tmp_path / "file").write_text("not a folder")
    result = run_cli("serve", "--port", "0", "--output", tmp_path / "file" / "store")
    assert result.exit_code == 2
    assert error_line(result) == (
        f"error: cannot store into --output {tmp_path / 'file' / 'store'}: Not a directory")


def test_serve_admits_only_allowed_calling_aets_and_checks_the_called_one(
        serve_process: Any) -> None:
    """--allow-aet and --check-called-aet: the rejected learn why (PS3.8 Table 9-21),
    the log says who was turned away, and the admitted are served."""
    proc, started = serve_process("--allow-aet", "CT01", "--allow-aet", "MR02",
                                  "--check-called-aet", "--aet", "ARCHIVE")
    assert started["allowed_aets"] == ["CT01", "MR02"]
    assert started["check_called_aet"] is True
    port = started["port"]
    admitted = run_cli("echo", "127.0.0.1", port, "--aet", "MR02", "--called-aet", "ARCHIVE")
    stranger = run_cli("echo", "127.0.0.1", port, "--aet", "LAPTOP", "--called-aet", "ARCHIVE")
    misdialled = run_cli("echo", "127.0.0.1", port, "--aet", "CT01", "--called-aet", "PACS")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert admitted.exit_code == 0, admitted.output
    assert stranger.exit_code == 3
    assert error_line(stranger) == (
        "error: association rejected (rejected-permanent) by service-user: "
        "calling AE title not recognized")
    assert misdialled.exit_code == 3
    assert error_line(misdialled).endswith("called AE title not recognized")
    assert "association from LAPTOP@127.0.0.1:" in err
    assert "calling AE title not recognized (1, 1, 3)" in err
    assert "called AE title not recognized (1, 1, 7)" in err
    assert "association MR02@127.0.0.1" in err and "released" in err


def test_serve_refuses_an_allowed_aet_that_is_no_ae_title() -> None:
    result = run_cli("serve", "--port", "0", "--allow-aet", "A\\B")
    assert result.exit_code == 2
    assert "--allow-aet" in result.output


class _LimitedServer:
    """``dicomnet serve`` allowed 40 file descriptors, its stderr read by a thread
    (select() cannot see what readline buffered); ``seen`` is set once a line
    holds ``watch``."""

    def __init__(self, tmp_path: Path, *options: str, watch: str) -> None:
        # The limit set inside the child (preexec_fn is unsafe with threads around).
        limited = ("import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40));"
                   " sys.argv[0] = 'dicomnet'; from dicomnet.cli.main import main; main()")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", limited, "serve", "--port", "0", "--json",
             "--output", str(tmp_path / "store"), *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        self.lines: list[str] = []
        self.seen = threading.Event()
        self._watch = watch
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        try:
            self.port = json.loads(read_line(self.proc.stdout, 30))["port"]  # type: ignore[arg-type]
        except BaseException:
            self.stop()
            raise
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if self._watch in line:
                self.seen.set()

    def stop(self) -> str:
        """SIGTERM, then the whole of stderr; the exit status must be 0."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        if self._reader.is_alive() or self._reader.ident is not None:
            self._reader.join(timeout=20)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return "".join(self.lines)


def test_running_out_of_descriptors_is_said_once_and_the_server_recovers(
        tmp_path: Path) -> None:
    """60 connections against a server allowed 40 descriptors and as many waiting
    connections: accept() fails with EMFILE until they close. The server says so
    once per episode (it said so ten times a second), then that it accepts
    again, and serves."""
    import socket

    server = _LimitedServer(tmp_path, "--max-pending", "1000", watch="cannot accept connections")
    try:
        flood = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(60)]
        try:
            assert server.seen.wait(30), "".join(server.lines)
        finally:
            for sock in flood:
                sock.close()
        echo = run_cli("echo", "127.0.0.1", server.port)
        assert echo.exit_code == 0, echo.output
    finally:
        err = server.stop()
    assert server.proc.returncode == 0, err
    assert "too many open files" in err
    assert "accepting connections again, after" in err
    # Once per episode (the flood's backlog may make a second one), never per retry.
    assert 1 + err.count("cannot accept connections") <= 3, err
    assert "Traceback" not in err


def test_max_pending_keeps_serving_through_a_flood_of_idle_connections(
        tmp_path: Path) -> None:
    """The same flood against --max-pending 8: the oldest idle connections are
    closed as new ones come, descriptors never run out, and a real peer is
    served while the flood is still open."""
    import socket

    server = _LimitedServer(tmp_path, "--max-pending", "8",
                            watch="connections are waiting to associate")
    try:
        flood = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(60)]
        try:
            assert server.seen.wait(30), "".join(server.lines)
            echo = run_cli("echo", "127.0.0.1", server.port)
            assert echo.exit_code == 0, echo.output
            # The first 52 were closed by the server: each reads an end, not a timeout.
            for sock in flood[:52]:
                sock.settimeout(10)
                assert sock.recv(1) == b""
        finally:
            for sock in flood:
                sock.close()
    finally:
        err = server.stop()
    assert server.proc.returncode == 0, err
    assert "cannot accept connections" not in err
    assert err.count("connections are waiting to associate") == 1, err
    assert "Traceback" not in err


class _WatchedServer:
    """``dicomnet serve`` whose stderr lines a thread collects, to be waited for."""

    def __init__(self, tmp_path: Path, *options: str | Path,
                 env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
             "--output", str(tmp_path / "store"), *map(str, options)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        try:
            self.port = json.loads(read_line(self.proc.stdout, 30))["port"]  # type: ignore[arg-type]
        except BaseException:
            self.stop()
            raise

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, text: str, count: int = 1, timeout: float = 20) -> list[str]:
        """The stderr lines holding ``text``, once there are ``count`` of them."""
        def found() -> list[str]:
            return [line for line in self.lines if text in line]

        with self._changed:
            ok = self._changed.wait_for(lambda: len(found()) >= count, timeout)
            assert ok, f"no {count} line(s) with {text!r} in:\n{''.join(self.lines)}"
            return found()

    def stop(self) -> str:
        """SIGTERM, then the whole of stderr; the exit status must be 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        self._reader.join(timeout=20)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        assert self.proc.returncode == 0, "".join(self.lines)
        return "".join(self.lines)


def test_sighup_loads_the_tls_files_again_and_the_password_file_is_read_again(
        encrypted_pki: DevPKI, tmp_path: Path) -> None:
    """The renewed key has another password: SIGHUP before the password file says so
    keeps the old certificate (logged); once it does, SIGHUP loads the new one."""
    live = tmp_path / "live"
    live.mkdir()
    for source in (encrypted_pki.ca_cert, encrypted_pki.ca_key, encrypted_pki.server_cert,
                   encrypted_pki.server_key):
        shutil.copy(source, live / source.name)
    password_file = tmp_path / "password"
    password_file.write_text("s3cret\n")
    cert, key = live / "server.pem", live / "server.key"
    server = _WatchedServer(tmp_path, "--tls", "--cert", cert, "--key", key, "--ca",
                            live / "ca.pem", "--key-password-file", password_file)
    client: list[str | Path] = [
        "--tls", "--ca", encrypted_pki.ca_cert, "--cert", encrypted_pki.client_cert,
        "--key", encrypted_pki.client_key, "--key-password-env", "CLIENT_PASSWORD"]

    def server_name() -> str:
        echo = run_cli("echo", "127.0.0.1", server.port, "--json", *client,
                       env={"CLIENT_PASSWORD": "s3cret"})
        assert echo.exit_code == 0, echo.output
        name: str = json_out(echo)["tls"]["peer_certificates"][0]["common_name"]
        return name

    try:
        assert server_name() == "localhost"
        ca = CertificateAuthority.load(live / "ca.pem", live / "ca.key", password="s3cret")
        renewed = ca.issue("renewed", sans=("localhost", "127.0.0.1"), client=False,
                           key_type="ecdsa")
        for source, target in zip(renewed.write(tmp_path, "renewed", password="n3w"),
                                  (cert, key), strict=True):
            os.replace(source, target)
        server.proc.send_signal(signal.SIGHUP)
        [failed] = server.wait_for("TLS reload asked")
        assert (f"TLS reload asked (changed: certificate {cert}, key {key}): cannot use them: "
                f"wrong password for private key {key}; still serving with the certificate "
                "loaded before, O=dicomnet,CN=localhost (serial ") in failed
        assert server_name() == "localhost"
        password_file.write_text("n3w\n")
        server.proc.send_signal(signal.SIGHUP)
        said = server.wait_for("TLS reload asked", count=2)[1]
        # Changed since the context in use was built.
        assert (f"TLS reload asked (changed: certificate {cert}, key {key}): new connections "
                "now get certificate O=dicomnet,CN=renewed (serial ") in said
        assert server_name() == "renewed"
        assert len(server.wait_for("SIGHUP: loading the TLS files again", count=2)) == 2
    finally:
        err = server.stop()
    assert "Traceback" not in err


def test_sighup_on_a_plain_server_is_no_stop(tmp_path: Path) -> None:
    server = _WatchedServer(tmp_path)
    try:
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for("SIGHUP: plain DICOM, no TLS files to load")
        assert run_cli("echo", "127.0.0.1", server.port).exit_code == 0
    finally:
        server.stop()


def test_serve_log_lines_carry_the_date_and_utc_offset(serve_process: Any) -> None:
    """A server runs for months, its stderr often a file: "10:53:15" alone did not
    say which day a study arrived (or failed to). The short-lived commands keep
    the time alone."""
    proc, started = serve_process()
    echo = run_cli("echo", "127.0.0.1", started["port"], "--json")
    assert echo.exit_code == 0, echo.output
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    lines = err.splitlines()
    assert any("association " in line for line in lines), err
    for line in lines:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} \S", line), line


def test_serve_json_says_each_object_stored(serve_process: Any, tmp_path: Path) -> None:
    """--json: a "stored" line per object once it is durable, between "listening"
    and "stopped", for scripts that act on arrivals."""
    (tmp_path / "in").mkdir()
    for n in (1, 2):
        write_part10_file(tmp_path / "in" / f"{n}.dcm",
                          make_dataset(sop_instance_uid=f"1.2.826.0.1.3680043.8.498.{n}"))
    proc, started = serve_process("--aet", "TESTSCP")
    stored = run_cli("store", "127.0.0.1", started["port"], tmp_path / "in",
                     "--called-aet", "TESTSCP", "--aet", "SENDER")
    assert stored.exit_code == 0, stored.output
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["association_accepted", "stored", "stored",
                                            "association_ended", "stopped"]
    accepted, events = events[0], events[1:3]
    by_uid = {e["sop_instance_uid"]: e for e in events[:2]}
    assert sorted(by_uid) == [f"1.2.826.0.1.3680043.8.498.{n}" for n in (1, 2)]
    help_text = _help("serve")
    for event in by_uid.values():
        path = Path(event["path"])
        assert path.is_file() and path.is_relative_to(tmp_path / "store")
        assert (event["calling_aet"], event["duplicate"], event["tls"]) == ("SENDER", False, None)
        assert event["transfer_syntax_uid"] == "1.2.840.10008.1.2.1"  # as the files
        # Who sent it, as the association's lines name it: a script routing by the
        # called AE title, or answering the sender, needs no second lookup.
        assert event["called_aet"] == "TESTSCP"
        assert event["peer"] == accepted["peer"] and event["peer"].startswith("127.0.0.1:")
        assert [k for k in event if not re.search(rf"(?<![\w-]){k}(?![\w-])", help_text)] == []
    assert {p.name for p in (tmp_path / "store").rglob("*.dcm")} == {
        Path(e["path"]).name for e in by_uid.values()}


def test_serve_idle_timeout_aborts_an_association_left_silent(serve_process: Any) -> None:
    """--idle-timeout (Timeouts.idle, 300 s without it): an established association
    over which nothing comes for that long is aborted, its slot freed; a modality
    that keeps one open between studies needs more, a busy server less."""
    import asyncio

    from dicomnet.aio.client import associate
    from dicomnet.errors import AssociationAborted

    proc, started = serve_process("--idle-timeout", "0.5")
    assert started["idle_timeout"] == 0.5

    async def idle() -> str:
        async with associate("127.0.0.1", started["port"]) as assoc:
            for _ in range(100):  # at most 10 s: the server aborts long before
                if not assoc.is_established:
                    break
                await asyncio.sleep(0.1)
            try:
                await assoc.echo()
            except AssociationAborted as exc:
                return str(exc)
        return "still established"

    said = asyncio.run(idle())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert "abort" in said.lower(), said
    assert "idle" in err, err
    result = run_cli("serve", "--port", "0", "--idle-timeout", "0")
    assert result.exit_code == 2
    assert "--idle-timeout" in result.output


def test_serve_max_async_sets_the_window_it_grants(serve_process: Any) -> None:
    """--max-async N (Limits.max_async_operations, 32 without it): the
    asynchronous operations window granted at most (PS3.7 D.3.3.3), in the
    listening event; it was fixed at 32."""
    import asyncio

    from dicomnet.aio.client import associate

    async def granted(port: int, proposed: int) -> int:
        async with associate("127.0.0.1", port, max_async_operations=proposed) as assoc:
            return assoc.async_window

    proc, started = serve_process("--max-async", "2")
    assert started["max_async"] == 2
    assert asyncio.run(granted(started["port"], 8)) == 2
    assert asyncio.run(granted(started["port"], 1)) == 1
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    proc, started = serve_process()
    assert started["max_async"] == 32
    assert asyncio.run(granted(started["port"], 64)) == 32
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert run_cli("serve", "--port", "0", "--max-async", "0").exit_code == 2
