"""Landing streams its files through the page cache: read files leave it, the group after next
is asked for ahead of time. Checked with ``mincore`` on a real file (Linux)."""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from wattlake.parsing.lines import LineBuffer, advise_willneed, read_buffer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(os, "posix_fadvise"),
                                reason="page-cache advice and mincore are Linux calls")


def resident(path: Path) -> float:
    """Fraction of the file's pages in the page cache (``mincore`` on a read-only mapping)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), size, prot=mmap.PROT_READ) as mm:
        view = np.frombuffer(mm, dtype=np.uint8)
        try:
            if libc.mincore(ctypes.c_void_p(view.ctypes.data), size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            del view
    return sum(v & 1 for v in vec) / pages


def write_synced(path: Path, data: bytes) -> Path:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())  # clean pages: only those can be dropped
    return path


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    """A cached 16 MB JSON-lines file; skips where the file system keeps
    pages whatever it is advised (tmpfs)."""
    line = b'{"serial": "S1", "ac_power_w": 1.5}\n'
    # 16 MB: more than one advice call reads (the benchmark VM's read_ahead_kb is 8 MB)
    path = write_synced(tmp_path / "messages.jsonl", line * ((16 << 20) // len(line) + 7))
    with open(path, "rb") as fh:
        fh.read()
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    if resident(path) > 0.5:
        pytest.skip("this file system ignores POSIX_FADV_DONTNEED")
    with open(path, "rb") as fh:
        fh.read()
    assert resident(path) > 0.9
    return path


def test_read_files_leave_the_page_cache(big_file: Path, tmp_path: Path):
    lb = LineBuffer.read([("inverter/day/messages.jsonl", big_file)])
    assert resident(big_file) < 0.1
    assert bytes(lb.buf) == big_file.read_bytes()  # the content, whole (this read caches it again)
    p1 = write_synced(tmp_path / "em_1.p1", big_file.read_bytes())
    p1.read_bytes()
    buf, starts = read_buffer([("meter/day/em_1.p1", p1)])
    assert resident(p1) < 0.1
    assert bytes(buf) == p1.read_bytes() and starts.tolist() == [0, buf.size]


def test_willneed_reads_the_whole_file_ahead(big_file: Path):
    with open(big_file, "rb") as fh:
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    assert resident(big_file) < 0.1
    assert advise_willneed([big_file, big_file.with_name("missing.jsonl")]) == 1  # a missing file is skipped
    deadline = time.monotonic() + 5
    while resident(big_file) < 0.99 and time.monotonic() < deadline:  # the reads are queued, not awaited
        time.sleep(0.02)
    # Far past the device's read-ahead window (8 MB of the 16 MB, 0.5), which one advice call
    # would stop at. Not 1.0: the kernel's read-ahead is best-effort, and under memory pressure
    # (a CI run beside another test) it skipped 1.6 % of the pages once.
    assert resident(big_file) >= 0.9
