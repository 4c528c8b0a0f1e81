"""wattlake: an energy lakehouse for PV systems and home energy managers.

Importing the package tunes the memory allocators for landing-sized work (see
:mod:`wattlake.allocator`; ``WATTLAKE_ALLOCATOR=default`` turns that off). Import
:mod:`wattlake` before Polars for the Polars part to take effect.
"""

from wattlake.allocator import tune as _tune_allocators

ALLOCATORS = _tune_allocators()
