"""How good are the estimator and the alerts? Measured against the generator's ground truth.

``estimator_error`` compares expected with measured daily energy on healthy system-days: days
with no injected fault of that system (``faults.parquet``), complete data and enough light to
judge (reference yield >= 0.5 h). It returns the median and the 95th percentile of the absolute
relative error |expected / actual - 1|.
"""

from __future__ import annotations

import polars as pl

MIN_COMPLETENESS = 0.95
MIN_REFERENCE_YIELD_H = 0.5


def healthy_days(daily: pl.DataFrame, faults: pl.DataFrame) -> pl.DataFrame:
    """System-days of ``gold/system_daily`` not touched by any injected fault, with full data."""
    spans = faults.select("system_id", "first_day", "last_day")
    touched = (daily.select("system_id", "day").join(spans, on="system_id", how="inner")
               .filter(pl.col("day").is_between(pl.col("first_day"), pl.col("last_day")))
               .select("system_id", "day").unique())
    return daily.join(touched, on=["system_id", "day"], how="anti").filter(
        (pl.col("data_completeness") >= MIN_COMPLETENESS)
        & (pl.col("reference_yield_h") >= MIN_REFERENCE_YIELD_H)
        & (pl.col("actual_kwh") > 0) & pl.col("expected_kwh").is_not_null())


def estimator_error(daily: pl.DataFrame, faults: pl.DataFrame) -> dict:
    """Median and P95 of |expected / actual - 1| on healthy system-days, with their count."""
    h = healthy_days(daily, faults).with_columns(
        ((pl.col("expected_kwh") / pl.col("actual_kwh")) - 1).alias("rel_error"))
    if h.height == 0:
        return {"system_days": 0, "median_abs_error": None, "p95_abs_error": None, "bias": None}
    e = h.get_column("rel_error")
    return {
        "system_days": h.height,
        "median_abs_error": float(e.abs().median()),
        "p95_abs_error": float(e.abs().quantile(0.95, interpolation="linear")),
        "bias": float(e.median()),
    }
