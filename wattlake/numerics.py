"""Numerical conventions shared by the derived tables, and the row order grouped kernels use."""

import numpy as np
import polars as pl

#: decimals kept in derived float columns (silver, gold): summation order changes with the
#: Delta file layout and chunking in the last binary digit; rounding far below any physical
#: meaning (1e-9 kWh = 1 uWh) makes a recomputation bit-identical, whatever storage it read
DERIVED_DECIMALS = 9


def round_floats(frame, decimals: int = DERIVED_DECIMALS):
    """Round every Float64 column of a Polars frame (see :data:`DERIVED_DECIMALS`)."""
    return frame.with_columns(pl.col(pl.Float64).round(decimals))


def group_time_order(code: np.ndarray, ts: np.ndarray, lo: int) -> np.ndarray:
    """Row order by (``code``, ``ts``), ties in row order (int64 indexes).

    ``code`` are non-negative integer group codes, ``ts`` integer times not below ``lo``. Both
    are packed into one 62-bit key when they fit (else a lexicographic sort, slower), sorted by
    numpy's default (vectorised, not stable) sort, four times faster than its stable one on
    864 k keys; when the sorted keys hold a tie, the stable sort is run instead, so ties keep
    their row order either way.
    """
    shift = int(ts.max() - lo).bit_length() if ts.size else 0
    if int(code.max(initial=0)).bit_length() + shift <= 62:
        key = (code.astype(np.int64, copy=False) << shift) | (ts - lo)
        order = np.argsort(key)
        ranked = key[order]
        if ranked.size > 1 and (ranked[1:] == ranked[:-1]).any():
            order = np.argsort(key, kind="stable")
        return order.astype(np.int64, copy=False)
    return np.lexsort((ts, code)).astype(np.int64)
