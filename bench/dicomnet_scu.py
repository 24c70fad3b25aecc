"""The dicomnet C-STORE SCU of the benchmark: sends every file of a folder on one
association and prints one JSON line: seconds (around ``store_paths``), cpu (this
process's CPU seconds over the same span, every thread), sent, ok.

``--pki DIR`` (a ``make_dev_pki`` folder) selects TLS with mutual
authentication; ``--profile FILE`` writes a cProfile dump of the send.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures.thread  # noqa: F401  (imported before the timing: see below)
import contextlib
import cProfile
import json
import resource
import sys
import time
from pathlib import Path

import dicomnet.aio.client  # (imported before the timing: see below)
import dicomnet.security.certificates  # noqa: F401  (imported before the timing: see below)
from dicomnet.security.config import TLSConfig
from dicomnet.services.storage import StoreResult, store_paths
from dicomnet.tuning import tune_malloc_for_streaming

try:
    from dicomnet.tuning import start_up_left_alone
except ImportError:  # a checkout older than it (pairs.py --tree)
    start_up_left_alone = contextlib.nullcontext  # type: ignore[assignment]

# store_paths imports the asyncio client on its first call (at module level the
# import would be circular), asyncio its thread pool at the first
# run_in_executor, and TLSConfig the certificates' module (cryptography, ~60 ms)
# when it first reads a key: imports, which the timing leaves out like the
# interpreter's start-up and every other import.


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def tls_config(pki: Path) -> TLSConfig:
    """The client side of the development PKI written by ``make_dev_pki``."""
    return TLSConfig(
        certfile=pki / "client.pem", keyfile=pki / "client.key", cafile=pki / "ca.pem",
        server_hostname="localhost",
    )


async def send(host: str, port: int, folder: Path, pki: Path | None) -> list[StoreResult]:
    return await store_paths(host, port, [folder],
                             tls=tls_config(pki) if pki is not None else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--pki", type=Path, help="make_dev_pki folder: use TLS")
    parser.add_argument("--profile", type=Path, help="write a cProfile dump of the send here")
    args = parser.parse_args(argv)
    tune_malloc_for_streaming()  # as ``dicomnet store`` does (see dicomnet.tuning)
    profiler = cProfile.Profile() if args.profile is not None else None
    start, cpu = time.perf_counter(), _cpu()
    if profiler is not None:
        profiler.enable()
    with start_up_left_alone():  # as ``dicomnet store`` sends (dicomnet.tuning)
        results = asyncio.run(send(args.host, args.port, args.folder, args.pki))
    if profiler is not None:
        profiler.disable()
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    if profiler is not None:
        profiler.dump_stats(args.profile)
    ok = sum(1 for r in results if r.ok)
    errors = sorted({r.error for r in results if r.error})[:3]
    print(json.dumps({"seconds": seconds, "cpu": cpu, "sent": len(results), "ok": ok,
                      "errors": errors}))
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
