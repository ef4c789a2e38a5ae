"""Hand the C heap's free pages back to the operating system between encoder batches.

A CPU run over an hour of video frees and reallocates gigabytes: activations, decoded frames, weights
widened for one layer. glibc keeps freed memory in its heaps, and with decoding and encoding interleaved
the free space fragments, so resident memory creeps up over an hour-long video although nothing live
grows (measured in docs/benchmarks.md). ``malloc_trim(0)`` returns every free page, including those
between live blocks. It costs about a millisecond, and the pages it returns fault back in on the next
allocations, so between encoder batches it runs at most every :data:`TRIM_INTERVAL_S` seconds
(:func:`trim_heap_now_and_then`): slow encoders still trim after every batch, fast ones (a batch in a few
milliseconds) not dozens of times a second.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import time
from typing import Any

TRIM_INTERVAL_S = 0.5
"""Least time between two trims by :func:`trim_heap_now_and_then`."""

_last_trim = -float("inf")


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only (musl and others do not have it)
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim_heap() -> bool:
    """Return free heap memory to the OS (glibc); ``False`` where the C library cannot do that."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def trim_heap_now_and_then() -> bool:
    """:func:`trim_heap` when the last trim through here was at least :data:`TRIM_INTERVAL_S` ago; ``True``
    when it trimmed."""
    global _last_trim
    now = time.monotonic()
    if now - _last_trim < TRIM_INTERVAL_S:
        return False
    _last_trim = now
    return trim_heap()
