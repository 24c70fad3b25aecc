"""Process-wide settings that suit a program moving large objects.

An SCU sending a study allocates and frees a megabyte-sized buffer per PDU (its
own, and asyncio's TLS layer's output). glibc's malloc serves such blocks with
``mmap`` or returns them to the system at the top of its heap, so every one
comes back as fresh pages: a page fault per 4 KiB, zeroed by the kernel. Keeping
them in the heap cut the sending process's CPU by about a fifth on 256 MB
objects over TLS (``bench/store_bench.py``). This changes malloc for the whole
process, so the library never calls it on its own: our command-line tools do,
and a program of yours may.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["tune_malloc_for_streaming"]

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
