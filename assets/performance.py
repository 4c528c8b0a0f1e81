"""Gold: daily performance per system, underperformance alert episodes and the notices installers get."""

import dagster as dg

from assets.registry import key
from pipelines.partitions import daily
from pipelines.resources import ExportsResource, LakeResource
from wattlake import tables as T
from wattlake.modelling import write_alerts, write_system_daily
from wattlake.notices import send_notices
from wattlake.tables import ALERTS, INSTALLER_NOTICES, PV_INTERVALS, SYSTEM_DAILY


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


@dg.asset(
    key=key(INSTALLER_NOTICES.name),
    description=INSTALLER_NOTICES.description,
    group_name="gold",
    deps=[key(ALERTS.name), key(SYSTEM_DAILY.name), key(T.SYSTEMS.name), key(T.SUBJECTS.name)],
    metadata={"table": INSTALLER_NOTICES.name, "keys": list(INSTALLER_NOTICES.keys)},
    kinds={"deltalake", "polars"},
    pool="lake_gold",
)
def gold_installer_notices(context: dg.AssetExecutionContext, lake: LakeResource,
                           exports: ExportsResource) -> dg.MaterializeResult:
    """Send installers what changed in their alert episodes since the last delivery (one signed folder
    per installer under exports/installers/), then record it in the ledger."""
    the_lake = lake.lake()
    report = send_notices(the_lake, exports.export_root())
    context.log.info(report.summary())
    return dg.MaterializeResult(metadata={
        "notices": report.notices, "by_notice": dg.MetadataValue.json(report.by_notice),
        "installers": len(report.installers), "held_restricted": report.held_restricted,
        "no_installer": report.no_installer, "batch_id": report.batch_id,
        "delta_version": the_lake.version(INSTALLER_NOTICES.name) if the_lake.exists(INSTALLER_NOTICES.name) else None,
    })
