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


def test_cut_lines_equals_splitting_each_file_in_python():
    """Lines of files read back to back (``lines._cut_lines``): per file not skipped, its
    ``split(b"\\n")`` without the empty piece after a final newline, one trailing ``\\r`` removed,
    numbered from 1; empty files, blank lines and lone carriage returns included."""
    from wattlake.parsing.lines import _cut_lines

    rng = np.random.default_rng(11)
    for _ in range(2000):  # fuzzed file sets
        files = [bytes(rng.choice(np.frombuffer(b"ab\n\r ", dtype=np.uint8), size=int(rng.integers(0, 14))))
                 for _ in range(int(rng.integers(0, 6)))]
        buf = np.frombuffer(b"".join(files), dtype=np.uint8).copy() if files else np.zeros(0, dtype=np.uint8)
        fstarts = np.concatenate([[0], np.cumsum([len(f) for f in files])]).astype(np.int64)
        skip = [i for i in range(len(files)) if rng.random() < 0.2]
        want = []
        for i, content in enumerate(files):  # the reference, file by file
            if i in skip or not content:
                continue
            pieces = content.split(b"\n")
            if content.endswith(b"\n"):
                pieces = pieces[:-1]
            at = int(fstarts[i])
            for no, piece in enumerate(pieces, start=1):
                text = piece[:-1] if piece.endswith(b"\r") else piece
                want.append((at, at + len(text), i, no))
                at += len(piece) + 1
        starts, ends, fidx, line_no = _cut_lines(buf, fstarts, skip)
        assert list(zip(starts.tolist(), ends.tolist(), fidx.tolist(), line_no.tolist())) == want
