"""dicomnet store's summary of a run with many failures: the table lists the first
few, and every failure is counted under its reason. A folder of 20,000 files of
which 1,000 failed printed a table of 1,000 rows (187 kB), two reasons over and
over; on a terminal, 1,000 more lines above the progress bar."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import Result
from pydicom.uid import ExplicitVRLittleEndian

from tests.aio.helpers import run
from tests.aio.rawscp import EXPLICIT_LE, IMPLICIT_LE, RawPeer, Request, raw_scp, store_response
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

from .helpers import run_cli

FILES = 63  # past the table's 50 rows


def _store(folder: Path, env: dict[str, str] | None = None) -> Result:
    """Each C-STORE refused (C000H) with the comment "reason <n mod 12>"; the
    third of each twelve requests stored."""
    async def answer(peer: RawPeer, request: Request) -> None:
        n = len(peer.requests) - 1
        if n % 12 == 2:
            await peer.send(store_response(request, 0x0000))
        else:
            await peer.send(store_response(request, 0xC000, f"reason {n % 12}"))

    async def main() -> Result:
        async with raw_scp(answer, contexts={SECONDARY_CAPTURE: [EXPLICIT_LE, IMPLICIT_LE]}
                           ) as (port, _):
            return await asyncio.to_thread(run_cli, "store", "127.0.0.1", port, folder,
                                           env=env)

    return run(main(), timeout=60)


def _files(folder: Path) -> list[Path]:
    folder.mkdir()
    return [write_part10(folder / f"{n:03d}.dcm", make_image(n, rows=8, columns=8),
                         ExplicitVRLittleEndian) for n in range(FILES)]


def test_many_failures_are_listed_up_to_the_table_and_counted_by_reason(
        tmp_path: Path) -> None:
    files = _files(tmp_path / "in")
    result = _store(tmp_path / "in")
    assert result.exit_code == 1, result.output
    out = result.stdout
    failed = [f for n, f in enumerate(files) if n % 12 != 2]  # sent in name order
    assert len(failed) == 57
    assert "Failed objects (the first 50 of 57; --json lists them all)" in out
    assert [f for f in failed[:50] if str(f) not in out] == [], out
    assert not any(str(f) in out for f in failed[50:])
    lines = out.splitlines()
    start = lines.index("Not stored, by reason (57 objects):")
    # Eleven reasons (63 requests, each twelfth stored): reasons 0 and 1 six times,
    # the others five; the ten most frequent named, the last counted.
    reasons = lines[start + 1:start + 12]
    assert [line.split()[0] for line in reasons] == ["6", "6"] + ["5"] * 9
    assert all("0xC000 Error: cannot understand (reason " in line for line in reasons[:10])
    assert reasons[10] == "        5  for 1 other reason(s)"
    assert lines[start + 12].startswith("Stored 6 of 63 objects")


def test_on_a_terminal_the_failures_said_during_the_run_stop_at_the_table_s_rows(
        tmp_path: Path) -> None:
    files = _files(tmp_path / "in")
    # rich: a terminal, wide enough for the paths, without colours.
    result = _store(tmp_path / "in", env={"TTY_COMPATIBLE": "1", "NO_COLOR": "1",
                                          "COLUMNS": "1000"})
    assert result.exit_code == 1, result.output
    failed = [f for n, f in enumerate(files) if n % 12 != 2]
    assert [f for f in failed[:50] if f"failed {f}: " not in result.stderr] == []
    assert result.stderr.count("failed /") == 50
    assert not any(str(f) in result.stderr for f in failed[50:])
    assert "more than 50 failures: the others are counted in the summary" in result.stderr
