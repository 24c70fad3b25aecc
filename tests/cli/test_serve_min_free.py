"""dicomnet serve --min-free: the free space the store keeps (1% unless told),
said in the listening line; a value that is no size is a usage error; a server
whose disk is under its reserve says so at the start and refuses objects with
A700, which the real CLI sender reports."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.storage.helpers import make_dataset, write_part10_file

from .helpers import read_line, run_cli, serve_that_must_refuse

UID = "1.2.826.0.1.3680043.8.498.34"


def test_serve_keeps_one_percent_free_unless_told(serve_process: Any, tmp_path: Path) -> None:
    proc, listening = serve_process()
    stat = os.statvfs(tmp_path)
    assert listening["min_free"] == "1%"
    assert listening["min_free_bytes"] == stat.f_blocks * stat.f_frsize // 100
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "keeps free" not in err  # no warning: there is room


def test_the_listening_line_says_what_is_kept_free(tmp_path: Path) -> None:
    said = []
    for given in ("1%", "5GiB", "0"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--output",
             str(tmp_path / "store"), "--min-free", given],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            said.append(read_line(proc.stdout, 30))  # type: ignore[arg-type]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=20)
    store = re.escape(str(tmp_path / "store"))
    assert re.search(rf"C-STORE into {store}, keeping \d+\.\d [KMGT]iB free \(1% of its "
                     r"disk\)\. Ctrl-C stops\.$", said[0]), said[0]
    assert said[1].endswith(f"C-STORE into {tmp_path / 'store'}, keeping 5.0 GiB free. "
                            "Ctrl-C stops.\n"), said[1]
    assert said[2].endswith(f"C-STORE into {tmp_path / 'store'}. Ctrl-C stops.\n"), said[2]


def test_min_free_zero_keeps_none(serve_process: Any) -> None:
    proc, listening = serve_process("--min-free", "0")
    assert (listening["min_free"], listening["min_free_bytes"]) == (None, None)
    proc.kill()


def test_a_min_free_that_is_no_size_is_a_usage_error(tmp_path: Path) -> None:
    done = serve_that_must_refuse(tmp_path, "--min-free", "lots")
    assert done.returncode == 2
    assert "Invalid value for '--min-free'" in done.stderr
    assert "'lots' is not a size" in done.stderr
    assert not (tmp_path / "store").exists()  # refused before anything was made


def test_a_disk_under_the_reserve_is_said_at_start_and_refuses_with_a700(
        serve_process: Any, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_part10_file(tmp_path / "in" / "a.dcm", make_dataset(sop_instance_uid=UID))
    proc, listening = serve_process("--min-free", "100%")
    assert listening["min_free"] == "100%"
    sent = run_cli("store", "127.0.0.1", listening["port"], tmp_path / "in" / "a.dcm", "--json")
    assert sent.exit_code == 1, sent.output
    (result,) = json.loads(sent.stdout)["results"]
    assert (result["status"], result["error"]) == (
        0xA700, "cannot store: disk space down to the store's reserve")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert re.search(r"WARNING: store \S+: .* free, under the .* it keeps free \(min_free "
                     r"100%\): objects are refused", err), err
    assert re.search(rf"C-STORE {re.escape(UID)} from \S+ refused, status 0xA700: no room for "
                     r".* kept free \(min_free 100%\)\n", err), err
    (refused,) = [e for e in map(json.loads, out.splitlines()) if e["event"] == "refused"]
    assert refused["status"] == "0xA700"
    assert not list((tmp_path / "store").rglob("*.dcm"))
