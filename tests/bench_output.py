"""What the interleaved-rounds benchmark scripts print (bench/pairs.py,
bench/senders.py), checked alike by their smoke tests."""

from __future__ import annotations

import re


def assert_on_disk_rounds(stdout: str, unit: str, stack: str, runs: int, reference: str) -> None:
    """Each round's line also gives the rate until the data is on disk (the run,
    then a timed sync), never above the run's own rate; and ``stack``'s on-disk
    median over ``runs`` runs is printed as a ratio to ``reference``'s."""
    rounds = [line for line in stdout.splitlines() if line.startswith("round")]
    assert rounds, stdout
    for line in rounds:
        found = re.search(rf" (\d+\.\d) {re.escape(unit)} .*; on disk (\d+\.\d) "
                          r"\(sync (\d+\.\d{3}) s\)$", line)
        assert found is not None, line
        assert float(found[2]) <= float(found[1]), line
    median = (rf"^{re.escape(f'{stack:16}')} on disk +\d+\.\d {re.escape(unit)} over {runs} "
              rf"run\(s\)  \d+\.\d\dx of {re.escape(reference)}$")
    assert re.search(median, stdout, re.M), stdout
