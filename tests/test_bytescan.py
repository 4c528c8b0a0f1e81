"""The compiled byte searches against numpy on random buffers (edges, empty, non-ASCII files)."""

from __future__ import annotations

import numpy as np
import pytest

from wattlake.parsing.bytescan import files_with_non_ascii, has_non_ascii, positions


@pytest.mark.parametrize("seed", range(4))
def test_byte_searches_match_numpy(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(0, 5000))
    buf = rng.choice(np.frombuffer(b"ab\n!{}", dtype=np.uint8), size)
    high = rng.integers(0, size, 3) if size else np.zeros(0, dtype=np.int64)
    buf[high[: seed % 3]] = rng.integers(0x80, 0x100, seed % 3)  # 0..2 non-ASCII bytes
    for byte in (10, 33, 0x80):
        assert np.array_equal(positions(buf, byte), np.flatnonzero(buf == byte))
    assert positions(buf, 10).dtype == np.int64
    assert has_non_ascii(buf) == bool((buf >= 0x80).any())
    fstarts = np.unique(np.concatenate([[0, size], rng.integers(0, size + 1, 7)])).astype(np.int64)
    expect = [i for i in range(fstarts.size - 1) if (buf[fstarts[i]:fstarts[i + 1]] >= 0x80).any()]
    assert files_with_non_ascii(buf, fstarts).tolist() == expect


def test_edges():
    empty = np.zeros(0, dtype=np.uint8)
    assert positions(empty, 10).size == 0 and not has_non_ascii(empty)
    assert files_with_non_ascii(empty, np.array([0])).size == 0
    buf = np.frombuffer("\nab\n\xff".encode("latin-1"), dtype=np.uint8)
    assert positions(buf, 10).tolist() == [0, 3]
    assert files_with_non_ascii(buf, np.array([0, 2, 4, 5])).tolist() == [2]
    assert has_non_ascii(buf) and not has_non_ascii(buf[:4])
