"""Silver: per system and UTC hour, measured vs pvlib-expected energy (see wattlake.yield_model)."""

import datetime as dt

import dagster as dg
import polars as pl

from assets.registry import key
from pipelines.partitions import daily
from pipelines.resources import LakeResource
from wattlake import tables as T
from wattlake.yield_model import PV_INTERVALS, expected_hourly, hourly_actuals, pv_intervals, readings_for_days

#: days modelled per step: bounds memory whatever the fleet size (a month of 1,000 systems
#: is ~9 M five-minute readings)
CHUNK_DAYS = 31


def day_chunks(start: str, end: str, size: int = CHUNK_DAYS) -> list[tuple[dt.date, dt.date]]:
    """Split ``start..end`` (inclusive ISO dates) into consecutive chunks of at most ``size`` days."""
    a, b = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    out = []
    while a <= b:
        c = min(b, a + dt.timedelta(days=size - 1))
        out.append((a, c))
        a = c + dt.timedelta(days=1)
    return out


def build_pv_intervals(lake, first: dt.date, last: dt.date) -> pl.DataFrame:
    """silver/pv_intervals rows for UTC days ``first..last`` from the bronze tables."""
    readings = lake.read(T.INVERTER_READINGS.name, filter=pl.col("day").is_between(
        first, last + dt.timedelta(days=1)) & readings_for_days(first, last))
    weather = lake.read(T.WEATHER.name, filter=pl.col("day").is_between(first, last))
    systems, stations = lake.read(T.SYSTEMS.name), lake.read(T.STATIONS.name)
    out = pv_intervals(hourly_actuals(readings), expected_hourly(systems, weather, stations), systems)
    return out.filter(pl.col("day").is_between(first, last))


@dg.asset(
    key=key(PV_INTERVALS.name),
    description=PV_INTERVALS.description,
    group_name="silver",
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        # an hour's last reading (hh+1:00) of a day's last hour can arrive in the next landing day
        dg.AssetDep(key(T.INVERTER_READINGS.name),
                    partition_mapping=dg.TimeWindowPartitionMapping(start_offset=0, end_offset=1)),
        key(T.WEATHER.name), key(T.SYSTEMS.name), key(T.STATIONS.name),
    ],
    metadata={"table": PV_INTERVALS.name, "keys": list(PV_INTERVALS.keys), "partition_column": "day"},
    kinds={"deltalake", "polars", "pvlib"},
    pool="lake_silver",
)
def silver_pv_intervals(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    r = context.partition_key_range
    rows = hours_missing = 0
    for first, last in day_chunks(r.start, r.end):
        frame = build_pv_intervals(the_lake, first, last)
        the_lake.overwrite(PV_INTERVALS.name, frame, PV_INTERVALS.schema, partition_by="day",
                           predicate=f"day >= '{first}' AND day <= '{last}'",
                           configuration=PV_INTERVALS.configuration)
        rows += frame.height
        hours_missing += int(frame.get_column("missing_data").sum())
        context.log.info(f"silver/pv_intervals {first}..{last}: {frame.height} system-hours")
    return dg.MaterializeResult(metadata={"rows": rows, "missing_data_hours": hours_missing,
                                          "delta_version": the_lake.version(PV_INTERVALS.name)})
