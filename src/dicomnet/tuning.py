"""Process-wide settings that suit a program moving large objects.

Two of them. The first is for memory: an SCU sending a study allocates and frees
a megabyte-sized buffer per PDU (its own, and asyncio's TLS layer's output).
glibc's malloc serves such blocks with ``mmap`` or returns them to the system at
the top of its heap, so every one comes back as fresh pages: a page fault per 4
KiB, zeroed by the kernel. Keeping them in the heap cut the sending process's
CPU by about a fifth on 256 MB objects over TLS (``bench/store_bench.py``). This
changes malloc for the whole process, so the library never calls it on its own:
our command-line tools do, and a program of yours may.

The second is for the cyclic garbage collector. A command's start-up leaves
some 44,000 objects that the collector tracks (modules, pydicom's dictionaries,
click's objects) and that live as long as the process. CPython walks every one
of them in each full collection; the first comes due after about eleven
collections of the middle generation, which in ``dicomnet serve`` fell in the
first association after start-up and held the interpreter 20-34 ms, in the
middle of a 200 x 512 KB transfer of ~250 ms (docs/benchmarks.md, item 45).
:func:`start_up_left_alone` keeps those objects out of the collector's walks
(``gc.freeze``), which is also process-wide: ``dicomnet serve`` and
``dicomnet store`` use it, the library does not.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Iterator

__all__ = ["start_up_left_alone", "tune_malloc_for_streaming"]

_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_THRESHOLD = -3


def tune_malloc_for_streaming(*, mmap_threshold: int = 32 << 20,
                              trim_threshold: int = 128 << 20) -> bool:
    """Serve blocks below ``mmap_threshold`` from the heap and keep up to
    ``trim_threshold`` bytes of free heap instead of returning it (glibc's
    ``mallopt``). Returns False, doing nothing, where that is not glibc.

    The price: up to ``trim_threshold`` bytes freed by the program stay in its
    resident memory until reused.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl and others have no mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold))


@contextlib.contextmanager
def start_up_left_alone() -> Iterator[None]:
    """Within this block, the cyclic collector leaves out every object alive when
    it began (``gc.freeze``); objects made later are collected as before. On
    leaving, those objects are handed back (``gc.unfreeze``), so that a program
    that goes on afterwards (a test, a script calling a command) has its usual
    collector again.

    No collection runs first: the few cycles left unreachable by start-up stay
    until the block ends, which costs less than the full collection (20-30 ms
    here) that would free them."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
