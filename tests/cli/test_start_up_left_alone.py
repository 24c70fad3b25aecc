"""``dicomnet serve`` and ``dicomnet store`` keep start-up's objects out of the
cyclic collector's walks while they move data (``dicomnet.tuning.
start_up_left_alone``), and hand them back at the end."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dicomnet.services import storage
from dicomnet.services.verification import VerificationSCP
from dicomnet.tuning import start_up_left_alone

from .helpers import ServerThread, read_line, reaped, run_cli, terminated
from .test_store import write_images

StartServer = Callable[..., ServerThread]


def test_objects_alive_at_the_start_are_left_out_then_handed_back() -> None:
    before = gc.get_objects()  # kept alive: no id of theirs is reused meanwhile
    before_ids = {id(obj) for obj in before}
    with start_up_left_alone():
        frozen = gc.get_freeze_count()
        made_inside: list[list[int]] = [[]]  # a container: tracked by the collector
        tracked = {id(obj) for obj in gc.get_objects()}
        assert gc.get_freeze_count() == frozen  # what is made inside is not left out
    assert frozen >= len(before) > 1000
    assert not tracked & before_ids  # every earlier object left out
    assert id(made_inside) in tracked
    assert gc.get_freeze_count() == 0
    assert id(before) in {id(obj) for obj in gc.get_objects()}  # handed back


def test_handed_back_when_the_block_fails() -> None:
    with pytest.raises(ZeroDivisionError), start_up_left_alone():
        assert gc.get_freeze_count() > 0
        _ = 1 / 0
    assert gc.get_freeze_count() == 0


def test_store_sends_with_start_up_left_out(start_server: StartServer, tmp_path: Path) -> None:
    seen: list[int] = []  # the freeze count as each object is stored (same process)
    scp = storage.StorageSCP(tmp_path / "store",
                             on_stored=lambda stored: seen.append(gc.get_freeze_count()))
    server = start_server(providers=[VerificationSCP(), scp])
    write_images(tmp_path / "in", 3)
    result = run_cli("store", "127.0.0.1", server.port, tmp_path / "in", "--json")
    scp.close()
    assert result.exit_code == 0, result.output
    assert len(seen) == 3
    assert min(seen) > 1000  # pydicom's, click's and the test's own objects
    assert gc.get_freeze_count() == 0


# `dicomnet serve` in its own process, its gc.freeze and gc.unfreeze reporting on
# stderr: what they left out, and whether pydicom (start-up's largest share of
# objects) and the store were loaded by then (so that they are left out too).
_REPORTING = """
import gc, sys
freeze, unfreeze = gc.freeze, gc.unfreeze
def reported_freeze():
    freeze()
    print("froze", gc.get_freeze_count(), "pydicom" in sys.modules,
          "dicomnet.services.store_disk" in sys.modules, file=sys.stderr, flush=True)
def reported_unfreeze():
    print("unfroze", file=sys.stderr, flush=True)
    unfreeze()
gc.freeze, gc.unfreeze = reported_freeze, reported_unfreeze
from dicomnet.cli.main import main
main()
"""


def test_serve_leaves_start_up_out_while_it_serves(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _REPORTING, "serve", "--port", "0", "--json",
         "--output", str(tmp_path / "store")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    with reaped(proc):
        listening = read_line(proc.stdout, 30)  # type: ignore[arg-type]
        assert '"listening"' in listening
        _, err = terminated(proc, 30)
    assert proc.returncode == 0, err
    lines = [line.split() for line in err.splitlines() if line.startswith(("froze", "unfroze"))]
    assert [words[0] for words in lines] == ["froze", "unfroze"], err
    _, count, pydicom_loaded, store_loaded = lines[0]
    assert int(count) > 10_000
    assert (pydicom_loaded, store_loaded) == ("True", "True")
