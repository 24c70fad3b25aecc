"""A dicomnet C-STORE SCP for the benchmark: prints ``PORT <n>`` and serves until killed.

Run by ``bench/store_bench.py`` in its own process, so that its peak memory
(VmHWM) and its CPU time are its own. ``--pki DIR`` (a ``make_dev_pki``
folder) selects TLS with mutual authentication; ``--profile FILE`` writes a
cProfile dump when the process is stopped with SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import signal
import sys
from pathlib import Path

from dicomnet.aio.server import serve
from dicomnet.security.config import TLSConfig
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP


def tls_config(pki: Path) -> TLSConfig:
    """The server side of the development PKI written by ``make_dev_pki``."""
    return TLSConfig(
        certfile=pki / "server.pem", keyfile=pki / "server.key", cafile=pki / "ca.pem"
    )


def disable_durability() -> None:
    """Diagnostic only: no fsync in dicomnet.storage.files (the module's ``os`` is
    replaced by a proxy whose fsync does nothing). Used with ``index=False`` to
    measure what durability costs; never what the benchmark reports."""
    import types

    from dicomnet.storage import files

    proxy = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    proxy.fsync = lambda fd: None
    files.__dict__["os"] = proxy


async def run(root: Path, pki: Path | None, port: int, *, durable: bool = True) -> None:
    if not durable:
        disable_durability()
    storage = StorageSCP(root, index=durable)
    server = await serve(
        port=port, tls=tls_config(pki) if pki is not None else None,
        providers=[VerificationSCP(), storage],
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.close)
    print(f"PORT {server.port}", flush=True)
    try:
        await server.serve_forever()
    finally:
        storage.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path, help="folder the received objects go to")
    parser.add_argument("--pki", type=Path, help="make_dev_pki folder: serve TLS")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--profile", type=Path, help="write a cProfile dump here on exit")
    parser.add_argument("--no-durability", action="store_true",
                        help="diagnostic: no fsync, no index (not what the benchmark reports)")
    args = parser.parse_args(argv)
    durable = not args.no_durability
    if args.profile is None:
        asyncio.run(run(args.root, args.pki, args.port, durable=durable))
        return 0
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(run(args.root, args.pki, args.port, durable=durable))
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
