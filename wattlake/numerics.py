"""Numerical conventions shared by the derived tables."""

import polars as pl

#: decimals kept in derived float columns (silver, gold): summation order changes with the
#: Delta file layout and chunking in the last binary digit; rounding far below any physical
#: meaning (1e-9 kWh = 1 uWh) makes a recomputation bit-identical, whatever storage it read
DERIVED_DECIMALS = 9


def round_floats(frame, decimals: int = DERIVED_DECIMALS):
    """Round every Float64 column of a Polars frame (see :data:`DERIVED_DECIMALS`)."""
    return frame.with_columns(pl.col(pl.Float64).round(decimals))
