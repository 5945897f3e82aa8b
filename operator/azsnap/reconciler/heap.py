"""Giving back what a long list freed: a full collection, then glibc's `malloc_trim`, so freed pages leave the process.

Reading a subscription's list of 250,000 snapshots allocates and frees the JSON, the parsed pages and the snapshots
of 2,500 pages while the compact view it keeps grows among them. What is freed stays in the process: glibc keeps
the freed chunks between live ones in its heap (it returns only the top of the heap on its own), and Python's
full collection, which frees reference cycles, runs rarely when millions of objects are alive. The observer asks
for both once a list is read, and glibc's trim every so many pages while it is read. `malloc_trim` releases
whole free pages anywhere in the heap; a C library without it (musl) is left as it is.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from collections.abc import Callable
from typing import Final

__all__ = ["PAGES_PER_TRIM", "release", "trim"]

#: While a long list is read, the heap is trimmed every this many pages (10,000 snapshots).
PAGES_PER_TRIM: Final = 100


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trimmer: Callable[[int], int] = function
    return trimmer


_TRIM: Final = _malloc_trim()


def trim() -> bool:
    """Return the heap's free pages to the OS; False when the C library cannot (or had none to return)."""
    return _TRIM is not None and bool(_TRIM(0))


def release() -> bool:
    """Free unreachable reference cycles, then trim the heap."""
    gc.collect()
    return trim()
