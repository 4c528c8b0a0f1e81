"""Importing wattlake first tunes the memory allocators before Polars loads (wattlake.allocator)."""

import wattlake  # noqa: F401
