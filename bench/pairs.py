"""Interleaved runs of one benchmark case, for A/B comparisons on a noisy machine.

``store_bench.py`` measures every stack on every case once per run; on a shared
2-core VM two identical runs differ by 20-30 %, so a change worth 10 % is lost
in one run. This script runs one case for a few stacks (or for two dicomnet
source trees) in rounds, alternating their order each round, with nothing
deleted until the end (ext4 skips recently freed inodes, see store_bench.py),
and prints every round, then the medians and each one's ratio to the first;
each round and the medians also until the data is on disk (the run plus the
``sync`` after it, see store_bench.py's until-on-disk table).

    .venv/bin/python bench/pairs.py images                       # dicomnet vs DCMTK, TLS
    .venv/bin/python bench/pairs.py small --stacks dicomnet,dcmtk+B --rounds 6
    .venv/bin/python bench/pairs.py images --stacks dicomnet,tree --tree ../other-checkout
    .venv/bin/python bench/pairs.py large --stacks dicomnet,dcmtk+B,python-ssl --rounds 4

``tree`` is dicomnet from another checkout (its ``src`` first on PYTHONPATH), to
compare a change with what it replaces, both on the same files and the same
minutes. ``python-ssl`` (large objects over TLS only) is no DICOM stack: it is
``ssl_ceiling.py``'s transfer of the same number of bytes, blocking ``ssl``
sockets with no framing and no file, i.e. the most a Python stack built on
CPython's ``ssl`` can move here. Loopback only; TLS 1.3 with mutual
authentication unless ``--plain``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import interleaved  # sibling scripts, not a package
import ssl_ceiling
import store_bench as sb

STACKS = ("dicomnet", "dicomnet-nosync", "dcmtk", "dcmtk+B", "pynetdicom", "pynetdicom-nodelay",
          "tree", "python-ssl")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Stacks: " + ", ".join(STACKS) + ". Rates are medians over the rounds.")
    parser.add_argument("case", choices=["images", "large", "small"])
    parser.add_argument("--stacks", default="dicomnet,dcmtk",
                        help="comma-separated, the first is the reference (default: %(default)s)")
    parser.add_argument("--tree", type=Path, help="the other dicomnet checkout, for 'tree'")
    parser.add_argument("--rounds", type=int, default=4, help="default: %(default)s")
    interleaved.add_round_options(parser)
    args = parser.parse_args(argv)
    stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
    unknown = set(stacks) - set(STACKS)
    if unknown or len(stacks) < 2:
        parser.error(f"--stacks: two or more of {', '.join(STACKS)}")
    if "tree" in stacks and (args.tree is None or not (args.tree / "src").is_dir()):
        parser.error("'tree' needs --tree pointing at a checkout with a src/ folder")
    if "python-ssl" in stacks and (args.case != "large" or args.plain):
        parser.error("'python-ssl' compares with large objects over TLS only")
    case = {c.name: c for c in sb.cases(args.quick)}[args.case]
    sb.wait_for_freed_inodes(wait=not args.no_wait)
    with sb.workspace(None) as work:
        rounds = interleaved.prepare_rounds(work, case, stacks, plain=args.plain)
        pki, payload, results = rounds.pki, rounds.payload, rounds.results
        for number in range(args.rounds):
            order = stacks if number % 2 == 0 else stacks[::-1]
            for stack in order:
                m = results[stack]
                before = len(m.seconds)
                if stack == "python-ssl":
                    assert pki is not None
                    os.sync()  # as before every run_once
                    sb.warm(rounds.folder)
                    first = min(rounds.folder.iterdir())
                    rate, client_cpu, server_cpu = ssl_ceiling.run_once(
                        pki, first, None, 256 << 10, total=payload)
                    m.seconds.append(payload / 1e6 / rate)
                    m.server_cpu.append(server_cpu)
                    m.client_cpu.append(client_cpu)
                else:
                    with (interleaved.checkout_first(args.tree) if stack == "tree" and args.tree
                          else contextlib.nullcontext()):
                        sb.run_once("dicomnet" if stack == "tree" else stack, pki, case,
                                    rounds.folder, payload=payload, work=work,
                                    tag=f"{stack}-{number}", timeout=args.timeout, m=m)
                interleaved.print_round(number, stack, case, m, before)
    interleaved.print_medians(case, results, stacks)
    return 0 if all(m.ok for m in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
