"""Keep freed memory in the process between rounds (glibc's allocator settings).

A round allocates and frees the same few megabytes of arrays again and again (candidate
tables, sub-market columns, kernel scratch). With glibc's defaults, a freed block above
the top of the heap is handed back to the kernel once 128 KiB (growing with the largest
block freed) lie free there, and the next round's arrays fault the pages back in, zeroed:
about 900 page faults per round of the 3,553 x 888 bench market. :func:`retain_freed_memory`
sets the thresholds with ``mallopt`` (glibc's ``M_MMAP_THRESHOLD`` and
``M_TRIM_THRESHOLD``; ``man 3 mallopt``) so that blocks below 32 MiB come from the heap
and up to 256 MiB of freed heap stay mapped for the next round. Larger arrays (a 1M-request
round's tables) are still mapped and unmapped on their own, so the peak memory grows little
(the 1M x 100k bench round: 2,626-2,628 MB before, 2,665-2,671 MB after).

Only the standard library is imported here; elsewhere than glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import functools

#: blocks at least this large are mapped on their own (glibc's own dynamic ceiling on 64-bit)
MMAP_THRESHOLD = 32 * 1024 * 1024
#: freed memory at the top of the heap is kept up to this much
TRIM_THRESHOLD = 256 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3


@functools.cache
def retain_freed_memory() -> bool:
    """Set glibc's thresholds once per process; True if they were set (False elsewhere than glibc)."""
    return set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD)


def set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` (bytes); True if both were set.

    Setting them also turns off glibc's own adjustment of them (it raises both after a freed
    mapping, by an amount that varies between runs). False elsewhere than glibc.
    """
    try:
        # the C library the interpreter already runs on (find_library would run ldconfig:
        # 4 ms and a subprocess on every command's start)
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl has mallopt as a stub)
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
