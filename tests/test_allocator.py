"""The allocator settings applied on ``import wattlake`` (see wattlake.allocator), each checked in a
fresh interpreter, since allocators read their options once per process."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, json, os, sys
first = sys.argv[1]
if first == "polars":
    import polars
import wattlake
import polars

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
before = libc.mallinfo2().hblks
p = libc.malloc(20 << 20)  # 20 MiB: mmapped by glibc's default threshold, heap when tuned
mmapped = libc.mallinfo2().hblks - before
libc.free(ctypes.c_void_p(p))
print(json.dumps({"tuned": wattlake.ALLOCATORS, "mmapped": mmapped,
                  "conf": os.environ.get("_RJEM_MALLOC_CONF", "")}))
"""

pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                                reason="the settings apply to glibc and Polars' jemalloc on Linux")


def probe(first: str = "wattlake", **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("WATTLAKE_ALLOCATOR", "_RJEM_MALLOC_CONF")}
    out = subprocess.run([sys.executable, "-c", PROBE, first], env={**clean, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_tunes_glibc_and_polars_jemalloc():
    got = probe()
    assert got["tuned"] == {"glibc": True, "jemalloc": True}
    assert got["mmapped"] == 0  # a 20 MiB block now comes from the heap, so its pages are reused
    assert "dirty_decay_ms:10000" in got["conf"]  # Polars appended it to its own defaults


def test_opt_out_leaves_both_allocators_alone():
    got = probe(WATTLAKE_ALLOCATOR="default")
    assert got["tuned"] == {"glibc": False, "jemalloc": False}
    assert got["mmapped"] == 1 and "dirty_decay_ms:10000" not in got["conf"]


def test_an_explicit_jemalloc_setting_and_an_early_polars_are_respected():
    got = probe(_RJEM_MALLOC_CONF="dirty_decay_ms:123")
    assert got["tuned"] == {"glibc": True, "jemalloc": False}
    assert got["conf"].endswith("dirty_decay_ms:123") and "10000" not in got["conf"]
    late = probe(first="polars")  # jemalloc already configured: only glibc can still be tuned
    assert late["tuned"] == {"glibc": True, "jemalloc": False} and "10000" not in late["conf"]
