"""A dicomnet C-STORE SCP for the benchmark: prints ``PORT <n>`` and serves until killed.

Run by ``bench/store_bench.py`` in its own process, so that its peak memory
(VmHWM) and its CPU time are its own. ``--pki DIR`` (a ``make_dev_pki``
folder) selects TLS with mutual authentication; ``--profile FILE`` writes a
cProfile dump when the process is stopped with SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import signal
import sys
from pathlib import Path

from dicomnet.aio.server import serve
from dicomnet.config import DEFAULT_MIN_FREE
from dicomnet.security.config import TLSConfig
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP

try:
    from dicomnet.tuning import start_up_left_alone
except ImportError:  # a checkout older than it (pairs.py --tree)
    start_up_left_alone = contextlib.nullcontext  # type: ignore[assignment]


def tls_config(pki: Path) -> TLSConfig:
    """The server side of the development PKI written by ``make_dev_pki``."""
    return TLSConfig(
        certfile=pki / "server.pem", keyfile=pki / "server.key", cafile=pki / "ca.pem"
    )


async def run(root: Path, pki: Path | None, port: int, *, durable: bool = True,
              min_free: str = DEFAULT_MIN_FREE) -> None:
    # durable=False: StorageSCP's own no-fsync mode (atomic renames, index kept),
    # the counterpart of DCMTK's storescp, which never fsyncs. min_free: serve's
    # default reserve, checked as serve checks it (a statvfs per store round).
    storage = StorageSCP(root, durable=durable, min_free=min_free)
    server = await serve(
        port=port, tls=tls_config(pki) if pki is not None else None,
        providers=[VerificationSCP(), storage],
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.close)
    try:
        # As `dicomnet serve` does once it listens (dicomnet.tuning).
        with start_up_left_alone():
            print(f"PORT {server.port}", flush=True)
            await server.serve_forever()
    finally:
        storage.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path, help="folder the received objects go to")
    parser.add_argument("--pki", type=Path, help="make_dev_pki folder: serve TLS")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--profile", type=Path, help="write a cProfile dump here on exit")
    parser.add_argument("--no-fsync", action="store_true",
                        help="StorageSCP(durable=False): atomic renames without fsync")
    parser.add_argument("--min-free", default=DEFAULT_MIN_FREE,
                        help="free space kept, as serve's --min-free (0: none)")
    args = parser.parse_args(argv)
    durable = not args.no_fsync
    if args.profile is None:
        asyncio.run(run(args.root, args.pki, args.port, durable=durable,
                        min_free=args.min_free))
        return 0
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(run(args.root, args.pki, args.port, durable=durable,
                        min_free=args.min_free))
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
