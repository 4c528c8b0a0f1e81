"""Memory allocator settings for landing-sized work, applied when :mod:`wattlake` is imported.

Landing parses a group of files in thousands of short-lived arrays of a few MB each. With the
allocators' defaults each of them is new memory: glibc hands allocations above its (dynamic)
mmap threshold straight back to the kernel and trims its heaps, and Polars configures its
jemalloc to return freed pages after 0.5 s. Every reuse then costs a page fault per 4 KiB,
zeroed by the kernel: 1.56 M faults and 5.8 s of system time to land 1.15 M P1 telegrams
(1,000 homes x 12 days) on 2 cores. Keeping freed memory for reuse a little longer cut that to
0.66 M faults and 2.9 s, and raised meter landing from 93 k to 119 k telegrams/s, for about
0.5 GB more resident memory (measured 2026-11-23; transparent huge pages were slower still,
their compaction cost more system time than the faults they saved).

- **glibc** (numpy, pyarrow, CPython): ``mallopt`` keeps allocations up to 32 MiB in the heap
  and up to 256 MiB of free heap top per arena, instead of returning them at once.
- **jemalloc** (Polars): freed pages are kept 10 s instead of 0.5 s. jemalloc reads its options
  once, when Polars is imported; if Polars was imported before :mod:`wattlake` this part is
  skipped (:func:`tune` says so in its result).

Set ``WATTLAKE_ALLOCATOR=default`` to leave both allocators alone; an explicit
``_RJEM_MALLOC_CONF`` is never overridden.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

#: glibc: allocations up to this size come from the heap, so freed ones are reused (bytes)
MMAP_THRESHOLD = 32 << 20
#: glibc: free memory at the top of a heap kept before it is returned to the kernel (bytes)
TRIM_THRESHOLD = 256 << 20
#: glibc: extra memory requested whenever a heap grows (bytes)
TOP_PAD = 64 << 20
#: jemalloc (Polars): how long freed pages are kept for reuse (ms)
JEMALLOC_CONF = "dirty_decay_ms:10000,muzzy_decay_ms:10000"

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # <malloc.h>


def tune() -> dict[str, bool]:
    """Apply the settings above (once per process is enough; repeating is harmless).

    Returns which allocators were tuned: ``{"glibc": ..., "jemalloc": ...}``.
    """
    if os.environ.get("WATTLAKE_ALLOCATOR", "").lower() == "default":
        return {"glibc": False, "jemalloc": False}
    jemalloc = False
    if "polars" not in sys.modules and "_RJEM_MALLOC_CONF" not in os.environ:
        os.environ["_RJEM_MALLOC_CONF"] = JEMALLOC_CONF  # Polars appends it to its own defaults
        jemalloc = True
    return {"glibc": _tune_glibc(), "jemalloc": jemalloc}


def _tune_glibc() -> bool:
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; the mmap threshold is refused above 32 MiB on 64-bit glibc
    return all(
        mallopt(option, value) == 1
        for option, value in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                              (_M_TOP_PAD, TOP_PAD))
    )
