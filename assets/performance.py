"""Gold: daily performance per system and underperformance alert episodes."""

import dagster as dg

from assets.registry import key
from pipelines.partitions import daily
from pipelines.resources import LakeResource
from wattlake import tables as T
from wattlake.modelling import write_alerts, write_system_daily
from wattlake.tables import ALERTS, PV_INTERVALS, SYSTEM_DAILY


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
    r = context.partition_key_range
    result = write_system_daily(the_lake, r.start, r.end)
    return dg.MaterializeResult(metadata={**result, "delta_version": the_lake.version(SYSTEM_DAILY.name)})


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
    alerts = write_alerts(the_lake)
    by_kind = dict(alerts.group_by("kind").len().sort("kind").iter_rows()) if alerts.height else {}
    return dg.MaterializeResult(metadata={"alerts": alerts.height, "by_kind": dg.MetadataValue.json(by_kind),
                                          "deficit_kwh": float(alerts.get_column("deficit_kwh").sum() or 0.0),
                                          "delta_version": the_lake.version(ALERTS.name)})
