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

import numpy as np
import polars as pl
from numba import njit

from wattlake.numerics import group_time_order
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


def with_times(decoded: pl.DataFrame) -> pl.DataFrame:
    """``decoded`` with ``ts_utc`` and ``utc_offset_min``: as the buffer path's scan read them, else
    from the ``ts`` text (:func:`with_utc_and_offset`)."""
    return decoded if "ts_utc" in decoded.columns else with_utc_and_offset(decoded)


def missing_fields(required) -> list[tuple[pl.Expr, str]]:
    """The ``missing_field:<name>`` checks of ``required`` fields. ``ts`` is missing only when it
    has no text and no parsed instant: the scan leaves the text of the times it read null."""
    missing = {"ts": pl.col("ts").is_null() & pl.col("ts_utc").is_null()}
    return [(missing.get(f, pl.col(f).is_null()), f"missing_field:{f}") for f in required]


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
    result, decoded mostly by the compiled fast path (:func:`~wattlake.parsing.lines.decode_json_buffer`),
    which also reads ``ts`` of the plain shape itself; ``records`` counts encoding rejects too."""
    d = decode_json_buffer(lb, MESSAGE_TYPE, timestamp="ts", times=with_utc_and_offset)
    return _validate(d.frame, d.rejects, d.records, serial_to_system, now_utc, d.with_raw)


def _validate(decoded: pl.DataFrame, rejects: pl.DataFrame, records: int, serial_to_system: pl.DataFrame,
              now_utc: dt.datetime, with_raw: Callable[[pl.DataFrame], pl.DataFrame]) -> Parsed:
    frame = with_times(decoded).join(serial_to_system.select("serial", "system_id"), on="serial", how="left")
    limit = future_limit(now_utc)
    checks = missing_fields(REQUIRED)
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

    The readings are put in (system, time) order by one sort of integer keys and the flags worked
    out in one compiled pass (:func:`_flag_kernel`); ``tests/test_parsing.py`` checks the result
    against the same rules written as Polars window expressions, on fuzzed batches.
    """
    cols = ("system_id", "ts_utc", "ac_energy_total_kwh")
    batch = readings.select(*cols, "ac_power_w")
    if previous is not None and previous.height:
        prev = previous.select(*cols).with_columns(pl.lit(None, dtype=pl.Float64).alias("ac_power_w"))
        batch = pl.concat([batch, prev], how="vertical_relaxed")
    n, total = readings.height, batch.height
    # systems only need grouping, not text order: an integer code per id (nulls: one group, first)
    code = batch.get_column("system_id").cast(pl.Categorical).to_physical().cast(pl.Int64).fill_null(-1).to_numpy() + 1
    ts = batch.get_column("ts_utc").dt.cast_time_unit("us").to_physical()
    ts_ok = ts.is_not_null().to_numpy()
    lo = ts.min() if ts_ok.any() else 0
    ts = ts.fill_null(lo - 1).to_numpy()  # null times sort first, as Polars sorts them
    order = group_time_order(code, ts, lo - 1)
    energy = batch.get_column("ac_energy_total_kwh").cast(pl.Float64)
    power = batch.get_column("ac_power_w").cast(pl.Float64)
    # the kernel reads the rows in (system, time) order: gathered once, so its reads are sequential
    judged, reset_s, kw_s = (np.zeros(total, dtype=np.bool_) for _ in range(3))
    _flag_kernel(code[order], ts[order], ts_ok[order], energy.fill_null(0.0).to_numpy()[order],
                 energy.is_not_null().to_numpy()[order], power.fill_null(0.0).to_numpy()[order],
                 power.is_not_null().to_numpy()[order], COUNTER_RESET_TOLERANCE_KWH, judged, reset_s, kw_s)
    reset, kw = np.empty(total, dtype=np.bool_), np.empty(total, dtype=np.bool_)
    reset[order], kw[order] = reset_s, kw_s
    corrected = pl.Series("unit_corrected", kw[:n])
    return readings.with_columns(
        pl.when(corrected).then(pl.col("ac_power_w") * 1000.0).otherwise(pl.col("ac_power_w")).alias("ac_power_w"),
        pl.Series("counter_reset", reset[:n]),
        corrected,
    )


_DAY_US = 86_400_000_000
_NULL_DAY = -(1 << 62)  # the "day" of a row without a time (Polars groups those together)


@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _flag_kernel(code, ts, ts_ok, energy, e_ok, power, p_ok, reset_tol, judged, reset, kw):  # pragma: no cover
    """The flags of :func:`flag_inverter_readings` for rows in (system, time) order, written to
    ``judged``, ``reset`` and ``kw`` at the same positions. Null inputs (``*_ok`` False) make a
    comparison false, as Polars' null propagation and ``fill_null(False)`` do."""
    n = code.size
    k = 0
    while k < n:  # one run of rows per (system, UTC day)
        day0 = ts[k] // _DAY_US if ts_ok[k] else _NULL_DAY
        end = k + 1
        while end < n and code[end] == code[k] and (ts[end] // _DAY_US if ts_ok[end] else _NULL_DAY) == day0:
            end += 1
        n_judged = 0
        n_kw = 0
        for i in range(k, end):  # each row against the previous row of its system
            judged[i] = False
            kw[i] = False
            reset[i] = False
            if i == 0 or code[i - 1] != code[i]:
                continue  # a system's first row: no previous counter
            if not (e_ok[i] and e_ok[i - 1]):
                continue
            reset[i] = energy[i] < energy[i - 1] - reset_tol
            if not (ts_ok[i] and ts_ok[i - 1] and p_ok[i]):
                continue
            hours = ((ts[i] - ts[i - 1]) // 1_000_000) / 3600.0  # whole seconds, as Duration.total_seconds
            implied = (energy[i] - energy[i - 1]) * 1000.0 / hours
            if power[i] > 0.0 and power[i] < 50.0 and implied > 20.0 and hours <= 0.25:
                judged[i] = True
                n_judged += 1
                ratio = implied / power[i]
                if ratio >= 300.0 and ratio <= 3000.0:
                    kw[i] = True
                    n_kw += 1
        if n_kw > n_judged / 2.0:  # a kW day: the small readings that could not be judged follow it
            for i in range(k, end):
                if not judged[i] and p_ok[i] and power[i] > 0.0 and power[i] < 50.0:
                    kw[i] = True
        k = end
