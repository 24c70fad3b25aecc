"""A dicomnet storage server in its own process, so a test can read its memory use.

Usage: ``python tests/storage/scp_process.py ROOT [MAX_PDU]``. Serves Verification and
Storage (StorageSCP(ROOT)) on 127.0.0.1, a free port, plain TCP; prints
``PORT <n>`` once listening, and stops when its standard input closes (the test
closes it, and kills the process in any case).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from dicomnet.aio.server import serve
from dicomnet.config import Limits
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP


async def _main(root: Path, max_pdu: int) -> None:
    scp = StorageSCP(root)
    try:
        server = await serve(host="127.0.0.1", port=0, providers=[VerificationSCP(), scp],
                             limits=Limits(max_pdu_length=max_pdu))
        async with server:
            print(f"PORT {server.port}", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        scp.close()


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20))
