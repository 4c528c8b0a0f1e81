"""Energy-manager device readings (EV charger, heat pump; JSON lines) -> typed readings.

A line: ``device_id``, ``device_type`` (``ev_charger`` | ``heat_pump``), ``ts`` (ISO 8601 with
offset), ``power_w`` [W], ``energy_total_kwh`` [kWh, lifetime counter]. The file name is the
energy manager's id (``<em_id>.jsonl``), which the registry maps to a system.

Reasons: ``invalid_json``, ``invalid_type:<name>``, ``missing_field:<name>``, ``invalid_timestamp``,
``unknown_device_type``, ``unknown_energy_manager``, ``future_timestamp``, ``negative_power``.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

import polars as pl

from wattlake.parsing.inverter import future_limit, missing_fields, with_times, with_utc_and_offset
from wattlake.parsing.lines import (LineBuffer, Parsed, decode_json_buffer, decode_json_lines, first_match,
                                    rejects_from)

DEVICE_TYPES = ("ev_charger", "heat_pump")
LINE_TYPE = pl.Struct({
    "device_id": pl.Utf8, "device_type": pl.Utf8, "ts": pl.Utf8,
    "power_w": pl.Float64, "energy_total_kwh": pl.Float64,
})
REQUIRED = ("device_type", "ts", "power_w", "energy_total_kwh")


def parse_device_lines(lines: pl.DataFrame, em_to_system: pl.DataFrame, now_utc: dt.datetime) -> Parsed:
    """Decode and validate device lines; ``em_to_system`` maps ``em_id`` -> ``system_id``.

    ``good`` columns: system_id, device_type, ts_utc, utc_offset_min, power_w [W],
    energy_total_kwh [kWh], source_file, line_no.
    """
    decoded, rejects = decode_json_lines(lines, LINE_TYPE)
    return _validate(decoded, rejects, lines.height, em_to_system, now_utc, lambda rows: rows)


def parse_device_buffer(lb: LineBuffer, em_to_system: pl.DataFrame, now_utc: dt.datetime) -> Parsed:
    """:func:`parse_device_lines` for landing files read into a :class:`LineBuffer` (the same result,
    decoded mostly by the compiled fast path, which also reads ``ts`` of the plain shape itself);
    ``records`` counts encoding rejects too."""
    d = decode_json_buffer(lb, LINE_TYPE, timestamp="ts", times=with_utc_and_offset)
    return _validate(d.frame, d.rejects, d.records, em_to_system, now_utc, d.with_raw)


def _validate(decoded: pl.DataFrame, rejects: pl.DataFrame, records: int, em_to_system: pl.DataFrame,
              now_utc: dt.datetime, with_raw: Callable[[pl.DataFrame], pl.DataFrame]) -> Parsed:
    frame = with_times(decoded).with_columns(
        pl.col("source_file").str.extract(r"([^/]+)\.jsonl$").alias("em_id"),
    ).join(em_to_system.select("em_id", "system_id"), on="em_id", how="left")
    limit = future_limit(now_utc)
    checks = missing_fields(REQUIRED)
    checks += [
        (pl.col("ts_utc").is_null(), "invalid_timestamp"),
        (~pl.col("device_type").is_in(DEVICE_TYPES), "unknown_device_type"),
        (pl.col("system_id").is_null(), "unknown_energy_manager"),
        (pl.col("ts_utc") > limit, "future_timestamp"),
        (pl.col("power_w") < 0, "negative_power"),
    ]
    frame = frame.with_columns(first_match(checks).alias("_reason"))
    bad = pl.col("_reason").is_not_null()
    good = frame.filter(~bad).select(
        "system_id", "device_type", "ts_utc", "utc_offset_min", "power_w", "energy_total_kwh",
        "source_file", "line_no",
    )
    return Parsed(good, pl.concat([rejects, rejects_from(with_raw(frame.filter(bad)), pl.col("_reason"))]), records)
