"""Byte searches over landing buffers, compiled, without temporaries the size of the buffer.

``np.flatnonzero(buf == 10)`` over a 256 MB landing group first builds a 256 MB boolean array.
An allocation that large is a fresh ``mmap`` each time (glibc serves blocks above the mmap
threshold that way, see :mod:`wattlake.allocator`), so every call page-faults 65,000 new pages
before it compares a byte: the non-ASCII check alone took 0.67 s of the ~2.4 s that preparing a
279 MB inverter group took in a profile. These loops read the buffer once and allocate only
their result (0.012 s for that check).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _count(buf, byte):  # pragma: no cover - compiled
    n = 0
    for j in range(buf.size):
        n += buf[j] == byte
    return n


@njit(cache=True, nogil=True)
def _fill(buf, byte, out):  # pragma: no cover - compiled
    k = 0
    for j in range(buf.size):
        if buf[j] == byte:
            out[k] = j
            k += 1


def positions(buf: np.ndarray, byte: int) -> np.ndarray:
    """Indexes (int64, ascending) of the bytes of ``buf`` (uint8) equal to ``byte``."""
    out = np.empty(_count(buf, np.uint8(byte)), dtype=np.int64)
    _fill(buf, np.uint8(byte), out)
    return out


@njit(cache=True, nogil=True)
def _or_bytes(buf):  # pragma: no cover - compiled
    acc = np.uint8(0)
    for j in range(buf.size):  # (over a range from 0 LLVM vectorises it: ~20 GB/s)
        acc |= buf[j]
    return acc


@njit(cache=True, nogil=True)
def _high_per_file(buf, fstarts, out):  # pragma: no cover - compiled
    for i in range(fstarts.size - 1):
        out[i] = _or_bytes(buf[fstarts[i]:fstarts[i + 1]]) >= 128


def has_non_ascii(buf: np.ndarray) -> bool:
    """Whether any byte of ``buf`` (uint8) is 0x80 or above."""
    return bool(_or_bytes(buf) >= 128)


def files_with_non_ascii(buf: np.ndarray, fstarts: np.ndarray) -> np.ndarray:
    """Indexes of the files ``buf[fstarts[i]:fstarts[i + 1]]`` that hold a byte 0x80 or above."""
    out = np.zeros(max(fstarts.size - 1, 0), dtype=np.bool_)
    _high_per_file(buf, np.ascontiguousarray(fstarts, dtype=np.int64), out)
    return np.flatnonzero(out)
