"""What the interleaved-rounds scripts share (pairs.py, senders.py): their common
options, one case's files and PKI prepared once, a line per round and the
medians with their ratios, and 'tree', dicomnet from another checkout.

A sibling script's module (bench/ is no package).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from store_bench import Case, Measurement, generate

from dicomnet.security.certificates import make_dev_pki

__all__ = ["Rounds", "add_round_options", "case_rate", "checkout_first", "prepare_rounds",
           "print_medians", "print_round"]


def add_round_options(parser: argparse.ArgumentParser) -> None:
    """The options pairs.py and senders.py share."""
    parser.add_argument("--plain", action="store_true", help="plain TCP instead of TLS")
    parser.add_argument("--quick", action="store_true", help="store_bench's --quick sizes")
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for recently deleted inodes to age")
    parser.add_argument("--timeout", type=float, default=600.0)


@contextlib.contextmanager
def checkout_first(tree: Path) -> Iterator[None]:
    """Processes started meanwhile import dicomnet from ``tree``'s ``src`` (the
    'tree' stack of pairs.py and senders.py); PYTHONPATH is restored after."""
    base_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(tree.resolve() / "src"), base_path) if p)
    try:
        yield
    finally:
        if base_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = base_path


@dataclass(slots=True)
class Rounds:
    """What interleaved rounds of one case share: its files, the PKI (None over
    plain TCP), and one Measurement per stack."""

    folder: Path
    pki: Path | None
    payload: int
    transport: str
    results: dict[str, Measurement]


def prepare_rounds(work: Path, case: Case, names: Sequence[str], *, plain: bool) -> Rounds:
    """The case's files (synced to disk before anything is timed), a development
    PKI unless ``plain``, and an empty Measurement for each of ``names``."""
    folder = generate(work / "data", [case])[case.name]
    os.sync()  # no write-back of the test files mid-run
    pki = None if plain else make_dev_pki(work / "pki").directory
    files = list(folder.iterdir())
    payload = sum(p.stat().st_size for p in files)
    transport = "plain" if plain else "tls"
    return Rounds(folder, pki, payload, transport,
                  {n: Measurement(transport, n, case.name, len(files), payload) for n in names})


def case_rate(case: Case, m: Measurement, seconds: float) -> float:
    """The case's rate (objects/s or MB/s) for a run of ``seconds``."""
    return float((m.count if case.unit == "obj/s" else m.payload_bytes / 1e6) / seconds)


def print_round(number: int, name: str, case: Case, m: Measurement, before: int) -> None:
    """One line for a run of interleaved rounds (pairs.py, senders.py): its rate,
    or why it failed (``before``: how many runs ``m`` held before this one)."""
    if len(m.seconds) > before:
        client = f", client {m.client_cpu[-1]:.2f} s" if m.client_cpu else ""
        on_disk = ""
        if _synced(m):
            on_disk = (f"; on disk {case_rate(case, m, m.seconds[-1] + m.sync_seconds[-1]):.1f}"
                       f" (sync {m.sync_seconds[-1]:.3f} s)")
        print(f"round {number + 1}  {name:16} {case_rate(case, m, m.seconds[-1]):9.1f} "
              f"{case.unit}  CPU: server {m.server_cpu[-1]:.2f} s{client}{on_disk}", flush=True)
    else:
        print(f"round {number + 1}  {name:16} FAILED: {m.errors[-1]}", flush=True)


def _synced(m: Measurement) -> bool:
    """Whether each of ``m``'s runs has the ``sync`` after it timed (store_bench's
    and senders.py's run_once time it; pairs.py's python-ssl runs do not)."""
    return bool(m.seconds) and m.on_disk_seconds is not None


def print_medians(case: Case, results: dict[str, Measurement], names: Sequence[str]) -> None:
    """The medians of interleaved rounds, each as a ratio to the first of ``names``;
    then, where every stack's runs have their ``sync`` timed, the same until the
    data is on disk (each run plus the sync after it)."""
    print()
    _medians(case, results, names, lambda m: list(m.seconds), "median")
    if all(_synced(results[name]) for name in names):
        _medians(case, results, names, lambda m: m.on_disk_seconds or [], "on disk")


def _medians(case: Case, results: dict[str, Measurement], names: Sequence[str],
             runs_of: Callable[[Measurement], list[float]], label: str) -> None:
    reference = runs_of(results[names[0]])
    for name in names:
        runs = runs_of(results[name])
        if not runs:
            print(f"{name:16} no valid run")
            continue
        ratio = ""
        if name != names[0] and reference:
            ratio = (f"  {statistics.median(reference) / statistics.median(runs):.2f}x"
                     f" of {names[0]}")
        print(f"{name:16} {label} {case_rate(case, results[name], statistics.median(runs)):9.1f} "
              f"{case.unit} over {len(runs)} run(s){ratio}")
