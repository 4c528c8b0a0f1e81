"""Schedule of injected bad input and the ground-truth rows that describe it.

Every kind is injected at a rate per system-day (weather: per station-day) with a floor of
:data:`MIN_TOTAL` occurrences over the run, spread over random days, so small test runs still see
every kind and large fleets see proportionally more. The ``expected`` outcome of each kind is what
the landing code should do with the line (``ground_truth/bad_input.parquet``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

MIN_TOTAL = 3

#: (source, kind) -> (rate per system-day, expected outcome)
KINDS: dict[tuple[str, str], tuple[float, str]] = {
    ("inverter", "truncated_json"): (0.002, "quarantine:invalid_json"),
    ("inverter", "duplicate"): (0.004, "duplicate"),
    ("inverter", "unknown_serial"): (0.001, "quarantine:unknown_serial"),
    ("inverter", "future_timestamp"): (0.001, "quarantine:future_timestamp"),
    ("inverter", "negative_power"): (0.001, "quarantine:negative_power"),
    ("inverter", "unit_mixup"): (0.0004, "corrected:unit_kw_to_w"),
    ("inverter", "counter_reset"): (0.0003, "landed:counter_reset"),
    ("inverter", "missing_field"): (0.001, "quarantine:missing_field"),
    ("meter", "bad_crc"): (0.002, "quarantine:crc_mismatch"),
    ("meter", "truncated_telegram"): (0.001, "quarantine:incomplete_telegram"),
    ("meter", "duplicate_telegram"): (0.002, "duplicate"),
    ("meter", "unknown_meter"): (0.0002, "quarantine:unknown_meter"),
    ("meter", "dst_repeat"): (0.0, "landed"),
    ("device", "truncated_json"): (0.001, "quarantine:invalid_json"),
    ("device", "duplicate"): (0.002, "duplicate"),
    ("weather", "station_gap"): (0.03, "landed:null"),
}

GT_SCHEMA = {"source": pl.String, "file": pl.String, "line_no": pl.Int64, "kind": pl.String,
             "expected": pl.String}


def expected(source: str, kind: str) -> str:
    return KINDS[(source, kind)][1]


class BadInputSchedule:
    """How many of each kind to inject on each day (0-based day index)."""

    def __init__(self, n_systems: int, n_stations: int, days: int, seed: int, enabled: bool):
        rng = np.random.default_rng([seed, 0, 6])
        self.counts: dict[tuple[str, str], np.ndarray] = {}
        for key, (rate, _) in KINDS.items():  # ~16 kinds
            if not enabled or rate == 0.0 or days <= 0:
                self.counts[key] = np.zeros(max(days, 0), dtype=int)
                continue
            units = (n_stations if key[0] == "weather" else n_systems) * days
            total = max(MIN_TOTAL, int(round(rate * units)))
            self.counts[key] = np.bincount(rng.integers(0, days, total), minlength=days)

    def n(self, source: str, kind: str, day_idx: int) -> int:
        if day_idx < 0:
            return 0
        return int(self.counts[(source, kind)][day_idx])


def gt_frame(source: str, file: str, line_no: np.ndarray, kind: np.ndarray | list) -> pl.DataFrame:
    kind = np.asarray(kind, dtype=object)
    exp = np.array([expected(source, k) for k in kind], dtype=object) if len(kind) else kind
    return pl.DataFrame(
        {"source": np.full(len(kind), source, dtype=object), "file": np.full(len(kind), file, dtype=object),
         "line_no": np.asarray(line_no, dtype=np.int64), "kind": kind, "expected": exp},
        schema=GT_SCHEMA,
    )


def empty_gt() -> pl.DataFrame:
    return pl.DataFrame(schema=GT_SCHEMA)


def kind_series(name: str, kinds: np.ndarray) -> pl.Series:
    """Object array of kind strings / None -> nullable String series."""
    a = np.where(kinds == None, "", kinds).astype(str)  # noqa: E711
    return pl.Series(name, a, dtype=pl.String).replace("", None)
