"""The estimator's error on healthy system-days and the evaluation command, on a landed fleet."""

from __future__ import annotations

import datetime as dt

import polars as pl

from wattlake.evaluation import estimator_error, healthy_days
from wattlake.tables import SYSTEM_DAILY


def daily_frame(rows):
    return pl.DataFrame(rows, schema={"system_id": pl.Utf8, "day": pl.Date, "actual_kwh": pl.Float64,
                                      "expected_kwh": pl.Float64, "data_completeness": pl.Float64,
                                      "reference_yield_h": pl.Float64}, orient="row")


def test_healthy_days_exclude_faults_gaps_and_dark_days():
    d = dt.date(2025, 6, 1)
    daily = daily_frame([
        ("a", d, 10.0, 11.0, 1.0, 5.0),                           # healthy: +10 %
        ("a", d + dt.timedelta(days=1), 10.0, 9.0, 1.0, 5.0),     # healthy: -10 %
        ("b", d, 5.0, 10.0, 1.0, 5.0),                            # inside a fault: excluded
        ("c", d, 10.0, 10.0, 0.5, 5.0),                           # half the data: excluded
        ("d", d, 1.0, 1.5, 1.0, 0.2),                             # too dark to judge: excluded
    ])
    faults = pl.DataFrame({"system_id": ["b"], "first_day": [d], "last_day": [d], "kind": ["outage"]})
    assert healthy_days(daily, faults)["system_id"].to_list() == ["a", "a"]
    err = estimator_error(daily, faults)
    assert err["system_days"] == 2
    assert abs(err["median_abs_error"] - 0.10) < 1e-9 and abs(err["p95_abs_error"] - 0.10) < 1e-9
    assert abs(err["bias"]) < 1e-9


def test_estimator_error_on_the_landed_fleet_is_within_bounds(landed):
    """Bound: the estimator sees hourly station weather and registry metadata, the truth per-house
    5-minute clouds and true orientation; the generator alone gives ~3 % median, ~8 % P95 against
    fault-free truth (tests/test_yield_model.py). Measured actuals add ageing and meter rounding,
    so healthy days here allow 8 % median and 20 % P95."""
    lake, root, _, _ = landed
    faults = pl.read_parquet(root / "ground_truth" / "faults.parquet")
    err = estimator_error(lake.read(SYSTEM_DAILY.name), faults)
    assert err["system_days"] >= 5
    assert err["median_abs_error"] < 0.08 and err["p95_abs_error"] < 0.20
