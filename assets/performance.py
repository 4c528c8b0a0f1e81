"""Gold: daily performance per system and underperformance alert episodes."""

import datetime as dt

import dagster as dg
import polars as pl

from assets.registry import key
from assets.yield_ import day_chunks
from pipelines.partitions import daily
from pipelines.resources import LakeResource
from wattlake import tables as T
from wattlake.alerts import detect_alerts
from wattlake.performance import system_daily
from wattlake.tables import ALERTS, SYSTEM_DAILY
from wattlake.yield_model import PV_INTERVALS


@dg.asset(
    key=key(SYSTEM_DAILY.name),
    description=SYSTEM_DAILY.description,
    group_name="gold",
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[key(PV_INTERVALS.name), key(T.SYSTEMS.name)],
    metadata={"table": SYSTEM_DAILY.name, "keys": list(SYSTEM_DAILY.keys), "partition_column": "day"},
    kinds={"deltalake", "polars"},
    pool="lake_gold",
)
def gold_system_daily(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    systems = the_lake.read(T.SYSTEMS.name)
    r = context.partition_key_range
    rows = 0
    for first, last in day_chunks(r.start, r.end):
        intervals = the_lake.read(PV_INTERVALS.name, filter=pl.col("day").is_between(first, last))
        frame = system_daily(intervals, systems)
        the_lake.overwrite(SYSTEM_DAILY.name, frame, SYSTEM_DAILY.schema, partition_by="day",
                           predicate=f"day >= '{first}' AND day <= '{last}'",
                           configuration=SYSTEM_DAILY.configuration)
        rows += frame.height
    return dg.MaterializeResult(metadata={"rows": rows, "delta_version": the_lake.version(SYSTEM_DAILY.name)})


@dg.asset(
    key=key(ALERTS.name),
    description=ALERTS.description,
    group_name="gold",
    deps=[key(SYSTEM_DAILY.name), key(PV_INTERVALS.name), key(T.SYSTEMS.name)],
    metadata={"table": ALERTS.name, "keys": list(ALERTS.keys)},
    kinds={"deltalake", "polars"},
    pool="lake_gold",
)
def gold_underperformance_alerts(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Episodes are detected over the whole history (they span partitions), then replace the table."""
    the_lake = lake.lake()
    daily_frame = the_lake.read(SYSTEM_DAILY.name)
    intervals = the_lake.read(PV_INTERVALS.name)
    alerts = detect_alerts(daily_frame, intervals, the_lake.read(T.SYSTEMS.name))
    the_lake.overwrite(ALERTS.name, alerts, ALERTS.schema, configuration=ALERTS.configuration)
    by_kind = dict(alerts.group_by("kind").len().sort("kind").iter_rows()) if alerts.height else {}
    return dg.MaterializeResult(metadata={"alerts": alerts.height, "by_kind": dg.MetadataValue.json(by_kind),
                                          "deficit_kwh": float(alerts.get_column("deficit_kwh").sum() or 0.0),
                                          "delta_version": the_lake.version(ALERTS.name)})
