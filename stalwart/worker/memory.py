"""Giving freed heap memory back to the kernel (glibc ``malloc_trim``).

CPython frees most objects into its own pools, but the C heap keeps pages it no longer
uses resident until something trims it: the temporary buffers of imports in the master
(the ``.pyc`` reads, compile-time tables) and of a worker's start-up (configuration,
TLS contexts, the first store reads) would otherwise stay in the resident set of every
process for its whole life. ``trim()`` releases the free pages inside the heap
(``madvise(MADV_DONTNEED)``); it costs about a millisecond on a small heap and is a no-op
where glibc is not the C library.

The master trims once after preloading, before the first fork (so the workers inherit a
compact heap), and again each time it reports READY (start, reload); every process trims
once it has started and again after each quiet minute (``stalwart.worker.process``).
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["trim"]

_malloc_trim = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _malloc_trim = _libc.malloc_trim
    _malloc_trim.argtypes = [ctypes.c_size_t]
    _malloc_trim.restype = ctypes.c_int
except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim this way
    _malloc_trim = None


def trim() -> bool:
    """Release the free pages of the C heap; True if memory was given back."""
    if _malloc_trim is None:
        return False
    return bool(_malloc_trim(0))
