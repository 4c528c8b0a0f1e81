"""Inverter communication-stick messages (JSON lines) -> typed readings, vectorised.

A message: ``serial``, ``ts`` (ISO 8601 with UTC offset or ``Z``), ``remote_ip``,
``ac_power_w`` [W], ``ac_energy_total_kwh`` [kWh, lifetime counter], ``dc`` (list of
``{mppt, voltage_v [V], current_a [A]}``), ``temperature_c`` [degC], ``status``.

Decisions (each rejected record gets one reason, first that applies):

==========================  ==========================================================
``invalid_json``            not a JSON object
``invalid_type:<name>``     a boolean or text where a number belongs
``missing_field:<name>``    serial, ts, ac_power_w or ac_energy_total_kwh absent/null
``invalid_timestamp``       ts not ISO 8601 with an offset (a naive local time is
                            ambiguous around DST, so it is never guessed)
``unknown_serial``          serial not in ``restricted/systems``
``future_timestamp``        ts more than :data:`FUTURE_TOLERANCE` after landing time
``negative_power``          ac_power_w below :data:`NEGATIVE_POWER_TOLERANCE_W`
==========================  ==========================================================

Accepted readings are flagged, not altered, except one documented correction:
``unit_corrected`` — ac_power_w sent in kW (a known stick firmware bug) is detected from the
energy counter and multiplied by 1000; ``counter_reset`` — the lifetime counter went down
(firmware swap), so downstream energy must not difference across this reading.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

import polars as pl

from wattlake.parsing.lines import (LineBuffer, Parsed, decode_json_buffer, decode_json_lines, first_match,
                                    rejects_from)

FUTURE_TOLERANCE = dt.timedelta(minutes=10)
#: below this ac_power_w is an error, not night-time standby draw [W]
NEGATIVE_POWER_TOLERANCE_W = -5.0
#: a counter drop larger than this is a reset; smaller ones are rounding of the stick [kWh]
COUNTER_RESET_TOLERANCE_KWH = 0.01

MESSAGE_TYPE = pl.Struct({
    "serial": pl.Utf8,
    "ts": pl.Utf8,
    "remote_ip": pl.Utf8,
    "ac_power_w": pl.Float64,
    "ac_energy_total_kwh": pl.Float64,
    "dc": pl.List(pl.Struct({"mppt": pl.Int8, "voltage_v": pl.Float64, "current_a": pl.Float64})),
    "temperature_c": pl.Float64,
    "status": pl.Utf8,
})
REQUIRED = ("serial", "ts", "ac_power_w", "ac_energy_total_kwh")


def parse_iso_utc(col: str) -> pl.Expr:
    """ISO 8601 text with an offset (or ``Z``) -> UTC timestamp [us]; null if no offset."""
    return pl.col(col).str.strip_chars().str.to_datetime("%+", strict=False, time_zone="UTC", time_unit="us")


def future_limit(now_utc: dt.datetime) -> pl.Expr:
    """The latest acceptable reading time: landing time (naive UTC) + :data:`FUTURE_TOLERANCE`."""
    return pl.lit(now_utc + FUTURE_TOLERANCE).dt.replace_time_zone("UTC").cast(pl.Datetime("us", "UTC"))


def utc_offset_minutes(col: str) -> pl.Expr:
    """The UTC offset the sender wrote, in minutes (``Z`` -> 0), read from the text (regex)."""
    m = pl.col(col).str.strip_chars().str.extract_groups(r"([+-])(\d{2}):?(\d{2})$")
    sign = pl.when(m.struct.field("1") == "-").then(-1).otherwise(1)
    minutes = m.struct.field("2").cast(pl.Int16) * 60 + m.struct.field("3").cast(pl.Int16)
    return (pl.when(pl.col(col).str.strip_chars().str.ends_with("Z")).then(0)
            .otherwise(sign * minutes)).cast(pl.Int16)


def with_utc_and_offset(frame: pl.DataFrame, col: str = "ts") -> pl.DataFrame:
    """Add ``ts_utc`` (:func:`parse_iso_utc`) and ``utc_offset_min`` [min] from ISO 8601 text.

    The offset is the sender's wall time (the first 19 characters, ``YYYY-MM-DDTHH:MM:SS``)
    minus the UTC instant, which is exact for any offset ``%+`` accepts and ten times cheaper
    than a regex per row; only rows whose wall time does not have that shape (rare) fall back
    to :func:`utc_offset_minutes`.
    """
    wall = (pl.col(col).str.strip_chars().str.slice(0, 19)
            .str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False, time_unit="us"))
    out = frame.with_columns(parse_iso_utc(col).alias("ts_utc")).with_columns(
        ((wall - pl.col("ts_utc").dt.replace_time_zone(None)).dt.total_milliseconds() / 60_000)
        .round(0).cast(pl.Int16).alias("utc_offset_min"))
    fallback = pl.col("utc_offset_min").is_null() & pl.col("ts_utc").is_not_null()
    if out.select(fallback.any()).item():
        out = out.with_columns(pl.when(fallback).then(utc_offset_minutes(col))
                               .otherwise(pl.col("utc_offset_min")).alias("utc_offset_min"))
    return out


def parse_inverter_lines(lines: pl.DataFrame, serial_to_system: pl.DataFrame,
                         now_utc: dt.datetime) -> Parsed:
    """Decode and validate inverter message lines.

    Parameters
    ----------
    lines : DataFrame
        ``source_file``, ``line_no``, ``raw`` (one JSON object per line).
    serial_to_system : DataFrame
        ``serial`` -> ``system_id`` from ``restricted/systems``.
    now_utc : datetime
        Landing time; readings later than this plus :data:`FUTURE_TOLERANCE` are rejected.

    Returns
    -------
    Parsed
        ``good``: system_id, ts_utc, utc_offset_min, ac_power_w [W], ac_energy_total_kwh
        [kWh], dc, temperature_c [degC], status, remote_ip, source_file, line_no.
    """
    decoded, rejects = decode_json_lines(lines, MESSAGE_TYPE)
    return _validate(decoded, rejects, lines.height, serial_to_system, now_utc, lambda rows: rows)


def parse_inverter_buffer(lb: LineBuffer, serial_to_system: pl.DataFrame, now_utc: dt.datetime) -> Parsed:
    """:func:`parse_inverter_lines` for landing files read into a :class:`LineBuffer`: the same
    result, decoded mostly by the compiled fast path (:func:`~wattlake.parsing.lines.decode_json_buffer`);
    ``records`` counts encoding rejects too."""
    d = decode_json_buffer(lb, MESSAGE_TYPE)
    return _validate(d.frame, d.rejects, d.records, serial_to_system, now_utc, d.with_raw)


def _validate(decoded: pl.DataFrame, rejects: pl.DataFrame, records: int, serial_to_system: pl.DataFrame,
              now_utc: dt.datetime, with_raw: Callable[[pl.DataFrame], pl.DataFrame]) -> Parsed:
    frame = with_utc_and_offset(decoded).join(serial_to_system.select("serial", "system_id"), on="serial", how="left")
    limit = future_limit(now_utc)
    checks = [(pl.col(f).is_null(), f"missing_field:{f}") for f in REQUIRED]
    checks += [
        (pl.col("ts_utc").is_null(), "invalid_timestamp"),
        (pl.col("system_id").is_null(), "unknown_serial"),
        (pl.col("ts_utc") > limit, "future_timestamp"),
        (pl.col("ac_power_w") < NEGATIVE_POWER_TOLERANCE_W, "negative_power"),
    ]
    frame = frame.with_columns(first_match(checks).alias("_reason"))
    bad = pl.col("_reason").is_not_null()
    good = frame.filter(~bad).select(
        "system_id", "ts_utc", "utc_offset_min", "ac_power_w", "ac_energy_total_kwh", "dc",
        "temperature_c", "status", "remote_ip", "source_file", "line_no",
    )
    all_rejects = pl.concat([rejects, rejects_from(with_raw(frame.filter(bad)), pl.col("_reason"))])
    return Parsed(good, all_rejects, records)


def flag_inverter_readings(readings: pl.DataFrame, previous: pl.DataFrame | None = None) -> pl.DataFrame:
    """Add ``counter_reset`` and ``unit_corrected``; correct kW-reported power to W.

    Readings must be unique per (system_id, ts_utc); rows come back in their input order.
    ``previous`` (optional) holds the last
    landed reading per system before this batch (system_id, ts_utc, ac_energy_total_kwh), so
    a reset at a batch boundary is also seen.

    kW detection: between consecutive readings of a system the counter gives the mean power
    ``1000 * d_kwh / d_h`` [W]. For an honest reading the ratio implied / reported is near 1;
    for one sent in kW it is near 1000. Where the counter implies more than 20 W the reading
    is judged on its own (kW when the ratio lies in [300, 3000]); below that the counter's
    1 Wh resolution (+-12 W over 5 minutes) cannot tell, so readings between 0 and 50 follow the
    verdict of the judged readings of the same system and UTC day (the firmware bug affects a
    stick for whole days).
    """
    # the flags are worked out on a narrow copy (sorting every column, DC lists included, cost
    # more than the rest) and joined back by position: the result keeps the input's row order
    base = readings.select("system_id", "ts_utc", "ac_energy_total_kwh", "ac_power_w").with_columns(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"), pl.lit(False).alias("_prev"))
    if previous is not None and previous.height:
        prev = previous.select("system_id", "ts_utc", "ac_energy_total_kwh").with_columns(pl.lit(True).alias("_prev"))
        base = pl.concat([base, prev], how="diagonal_relaxed")
    # systems only need grouping, not text order: sorting on an integer code of the id is cheaper
    code = pl.col("system_id").cast(pl.Categorical).to_physical()
    w = base.with_columns(code.alias("_sys")).sort("_sys", "ts_utc").with_columns(
        pl.col("ac_energy_total_kwh").shift(1).over("_sys").alias("_e0"),
        pl.col("ts_utc").shift(1).over("_sys").alias("_t0"),
    )
    hours = (pl.col("ts_utc") - pl.col("_t0")).dt.total_seconds() / 3600.0
    implied_w = (pl.col("ac_energy_total_kwh") - pl.col("_e0")) * 1000.0 / hours
    small = (pl.col("ac_power_w") > 0) & (pl.col("ac_power_w") < 50)
    judged = (small & (implied_w > 20) & (hours <= 0.25)).fill_null(False)
    kw_alone = (judged & (implied_w / pl.col("ac_power_w")).is_between(300, 3000)).fill_null(False)
    w = w.with_columns(judged.alias("_judged"), kw_alone.alias("_kw"),
                       pl.col("ts_utc").dt.date().alias("_day"))
    day_kw = (pl.col("_kw").sum().over("_sys", "_day")
              > (pl.col("_judged").sum().over("_sys", "_day") / 2))
    kw = pl.when(pl.col("_judged")).then(pl.col("_kw")).otherwise(small & day_kw).fill_null(False)
    reset = (pl.col("ac_energy_total_kwh") < pl.col("_e0") - COUNTER_RESET_TOLERANCE_KWH).fill_null(False)
    flags = (w.filter(~pl.col("_prev"))
             .select("_i", reset.alias("counter_reset"), kw.alias("unit_corrected"))
             .sort("_i"))
    return readings.with_columns(
        pl.when(flags.get_column("unit_corrected")).then(pl.col("ac_power_w") * 1000.0)
        .otherwise(pl.col("ac_power_w")).alias("ac_power_w"),
        flags.get_column("counter_reset"),
        flags.get_column("unit_corrected"),
    )
