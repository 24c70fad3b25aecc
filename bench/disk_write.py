"""What writing a large object durably costs on this disk: through the page cache
(write, then fsync) against O_DIRECT (the way dicomnet's SCP writes data sets
over 1 MiB, see dicomnet.storage.direct). Prints MB/s and the CPU each way.

    .venv/bin/python bench/disk_write.py [--size-mib 1024] [--chunk-kib 1024] [--runs 2]

The file goes to --folder (default: a temporary folder under the current one,
so that it is on the disk the SCP would use, not on a tmpfs).
"""

from __future__ import annotations

import argparse
import mmap
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path


def one(folder: Path, size: int, chunk: int, direct: bool) -> tuple[float, float]:
    """Returns (MB/s including the final fsync, CPU seconds per GB)."""
    buffer = mmap.mmap(-1, chunk)  # page-aligned, as O_DIRECT needs
    buffer.write(os.urandom(chunk))
    path = folder / "disk_write.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags, 0o600)
    try:
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        written = 0
        while written < size:
            written += os.write(fd, buffer)
        os.fsync(fd)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        os.close(fd)
        path.unlink()
        buffer.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return written / seconds / 1e6, cpu / (written / 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--chunk-kib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    size, chunk = args.size_mib << 20, args.chunk_kib << 10
    with tempfile.TemporaryDirectory(dir=args.folder or Path.cwd()) as folder:
        for label, direct in (("page cache + fsync", False), ("O_DIRECT + fsync", True)):
            results = [one(Path(folder), size, chunk, direct) for _ in range(args.runs)]
            rate = statistics.median(r[0] for r in results)
            cpu = statistics.median(r[1] for r in results)
            print(f"{label:20} {rate:7.0f} MB/s   CPU {cpu:.2f} s/GB   "
                  f"(runs: {', '.join(f'{r[0]:.0f}' for r in results)})")


if __name__ == "__main__":
    main()
