"""Building the derived tables from the lake: silver/pv_intervals, gold/system_daily, alerts.

Each ``write_*`` function reads its inputs, calls the domain maths and writes one table in
bounded steps (silver: :data:`CHUNK_SYSTEM_DAYS` system-days, gold: :data:`GOLD_SYSTEM_DAYS`, alerts:
:data:`ALERT_SYSTEMS_PER_STEP` systems) so memory stays flat whatever the fleet size. The Dagster
assets and the benchmark call exactly these functions, so what is measured is what runs.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import polars as pl

from wattlake import tables as T
from wattlake.alerts import INTERVAL_COLUMNS, detect_alerts
from wattlake.lake import Lake
from wattlake.performance import DAILY_INPUT_COLUMNS, system_daily
from wattlake.yield_model import expected_hourly, hourly_actuals, pv_intervals, readings_for_days

#: the inverter reading columns :func:`~wattlake.yield_model.hourly_actuals` needs
READING_COLUMNS = ("system_id", "ts_utc", "ac_power_w", "status", "dc")
#: days modelled per step at most
CHUNK_DAYS = 31
#: system-days modelled per step by silver: its input, 288 five-minute readings per system-day,
#: stays ~2.7 M rows whatever the fleet (a month of 300 systems, 9 days of 1,000), so its memory
#: does not grow with the fleet
CHUNK_SYSTEM_DAYS = 9_300
#: system-days summed per step by gold: 24 silver rows each, ~880 k rows a step (a year of 100
#: systems, 37 days of 1,000). A step has a fixed cost (a table opened, a commit): a year of 100
#: systems in monthly steps took 0.70-0.73 s, in one step 0.38-0.41 s (2026-11-24)
GOLD_SYSTEM_DAYS = 36_600


def days_per_chunk(n_systems: int, system_days: int | None = None, max_days: int = CHUNK_DAYS) -> int:
    """Days per step for a fleet of ``n_systems``: ``system_days`` (default
    :data:`CHUNK_SYSTEM_DAYS`, silver's) / systems, at least 1 and at most ``max_days``."""
    return max(1, min(max_days, (system_days or CHUNK_SYSTEM_DAYS) // max(n_systems, 1)))


def day_chunks(start: str | dt.date, end: str | dt.date, size: int = CHUNK_DAYS) -> list[tuple[dt.date, dt.date]]:
    """Split ``start..end`` (inclusive dates) into consecutive chunks of at most ``size`` days."""
    a = dt.date.fromisoformat(start) if isinstance(start, str) else start
    b = dt.date.fromisoformat(end) if isinstance(end, str) else end
    out = []
    while a <= b:
        c = min(b, a + dt.timedelta(days=size - 1))
        out.append((a, c))
        a = c + dt.timedelta(days=1)
    return out


def build_pv_intervals(lake: Lake, first: dt.date, last: dt.date) -> pl.DataFrame:
    """silver/pv_intervals rows for UTC days ``first..last`` from the bronze tables."""
    return pv_intervals_from(read_pv_inputs(lake, first, last), first, last)


def read_pv_inputs(lake: Lake, first: dt.date, last: dt.date) -> dict[str, pl.DataFrame]:
    """What silver/pv_intervals for UTC days ``first..last`` is built from: ``readings`` (the
    columns :func:`~wattlake.yield_model.hourly_actuals` uses), ``weather``, ``systems``, ``stations``.

    An hour's readings end at the next full hour, so the last hour of ``last`` needs the 00:00
    reading of the next day: partitions ``first..last+1`` are read and cut by
    :func:`~wattlake.yield_model.readings_for_days`.
    """
    readings = (
        lake.scan(T.INVERTER_READINGS.name)
        .filter(pl.col("day").is_between(first, last + dt.timedelta(days=1)) & readings_for_days(first, last))
        .select(list(READING_COLUMNS))  # only what hourly_actuals uses: half the read cost
        .collect()
    )
    weather = lake.read(T.WEATHER.name, filter=pl.col("day").is_between(first, last))
    return {"readings": readings, "weather": weather, "systems": lake.read(T.SYSTEMS.name),
            "stations": lake.read(T.STATIONS.name)}


def pv_intervals_from(inputs: dict[str, pl.DataFrame], first: dt.date, last: dt.date) -> pl.DataFrame:
    """silver/pv_intervals rows for UTC days ``first..last`` from :func:`read_pv_inputs`."""
    systems = inputs["systems"]
    out = pv_intervals(hourly_actuals(inputs["readings"]),
                       expected_hourly(systems, inputs["weather"], inputs["stations"]), systems)
    return out.filter(pl.col("day").is_between(first, last))


def _write_days(lake: Lake, spec: T.TableSpec, frame: pl.DataFrame, first: dt.date, last: dt.date) -> None:
    """Replace the table's partitions ``first..last`` with ``frame`` (one atomic commit)."""
    lake.overwrite(spec.name, frame, spec.schema, partition_by="day",
                   predicate=f"day >= '{first}' AND day <= '{last}'", configuration=spec.configuration,
                   writer_properties=spec.writer_properties)


def write_pv_intervals(lake: Lake, start, end, progress: Callable[[str], None] | None = None) -> dict:
    """Rebuild silver/pv_intervals for days ``start..end``; returns rows, missing-data hours and the
    number of steps (:func:`days_per_chunk` days each, one commit per step).

    The steps overlap on three threads: while step k is modelled, step k+1's inputs are read
    (Parquet decoding) and step k-1's result is written (delta-rs), one write at a time and in
    order. The result is the same as one step after the other; at most three steps are in memory.
    A failed read or write is raised here, after the steps before it are committed.
    """
    rows = missing = 0
    chunks = day_chunks(start, end, days_per_chunk(lake.read(T.SYSTEMS.name).height))
    with ThreadPoolExecutor(1, thread_name_prefix="silver-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="silver-write") as writer:
        pending = reader.submit(read_pv_inputs, lake, *chunks[0]) if chunks else None
        written = None
        for k, (first, last) in enumerate(chunks):
            inputs = pending.result()
            if k + 1 < len(chunks):
                pending = reader.submit(read_pv_inputs, lake, *chunks[k + 1])
            frame = pv_intervals_from(inputs, first, last)
            del inputs
            if written is not None:
                written.result()  # the step before is committed (or its error raised) first
            written = writer.submit(_write_days, lake, T.PV_INTERVALS, frame, first, last)
            rows += frame.height
            missing += int(frame.get_column("missing_data").sum())
            if progress:
                progress(f"silver/pv_intervals {first}..{last}: {frame.height} system-hours")
        if written is not None:
            written.result()
    return {"rows": rows, "missing_data_hours": missing, "chunks": len(chunks)}


def write_system_daily(lake: Lake, start, end) -> dict:
    """Rebuild gold/system_daily for days ``start..end`` from silver, :data:`GOLD_SYSTEM_DAYS`
    system-days per step (one commit each); returns rows."""
    systems = lake.read(T.SYSTEMS.name)
    rows = 0
    step = days_per_chunk(systems.height, GOLD_SYSTEM_DAYS, max_days=366)
    for first, last in day_chunks(start, end, step):
        intervals = (lake.scan(T.PV_INTERVALS.name).filter(pl.col("day").is_between(first, last))
                     .select(DAILY_INPUT_COLUMNS).collect())
        frame = system_daily(intervals, systems)
        _write_days(lake, T.SYSTEM_DAILY, frame, first, last)
        rows += frame.height
    return {"rows": rows}


#: systems judged per step by :func:`write_alerts`: a year of 300 systems is 2.6 M hourly rows
ALERT_SYSTEMS_PER_STEP = 300


def write_alerts(lake: Lake) -> pl.DataFrame:
    """Re-detect alert episodes over the whole history and replace gold/underperformance_alerts.

    Alerts are judged per system, so the history is read :data:`ALERT_SYSTEMS_PER_STEP` systems at
    a time and memory does not grow with the fleet. Returns the alerts; the number of system-days
    judged is ``lake.read(SYSTEM_DAILY).height``.
    """
    daily = lake.read(T.SYSTEM_DAILY.name)
    systems = lake.read(T.SYSTEMS.name)
    ids = systems.get_column("system_id").unique().sort().to_list()
    parts = []
    history = lake.scan(T.PV_INTERVALS.name, lake.version(T.PV_INTERVALS.name))
    for i in range(0, max(len(ids), 1), ALERT_SYSTEMS_PER_STEP):  # loop over system batches
        some = ids[i:i + ALERT_SYSTEMS_PER_STEP]
        # filtered while the files are scanned (the lazy filter goes into the Parquet reader)
        intervals = history.filter(pl.col("system_id").is_in(some)).select(INTERVAL_COLUMNS).collect()
        batch = pl.col("system_id").is_in(some)
        parts.append(detect_alerts(daily.filter(batch), intervals, systems.filter(batch)))
    alerts = pl.concat(parts)
    lake.overwrite(T.ALERTS.name, alerts, T.ALERTS.schema, configuration=T.ALERTS.configuration)
    return alerts
