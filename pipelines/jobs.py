"""Jobs: the inbox pull, the registry refresh and the daily landing of every bronze source."""

import dagster as dg

from pipelines.partitions import daily
from pipelines.resources import LandingResource


@dg.op(description="Move every object of the S3 inbox into the landing folder (wattlake.inbox.pull_inbox).")
def pull_inbox_op(context: dg.OpExecutionContext, landing: LandingResource) -> dict:
    from wattlake.inbox import pull_inbox

    report = pull_inbox(landing.path(), landing.inbox_uri())
    context.log.info(report.summary())
    if report.conflicts:
        context.log.warning(f"{report.conflicts} inbox objects conflict with landing files of the same name "
                            "and stay in the inbox (wattlake inbox pull --help)")
    return report.as_dict()


@dg.job(name="pull_inbox", description="Pull the S3 inbox into the landing folder; the landing sensor lands what arrives.")
def pull_inbox_job():
    pull_inbox_op()


registry_job = dg.define_asset_job(
    "refresh_registry",
    selection=dg.AssetSelection.assets(["restricted", "systems"]).required_multi_asset_neighbors(),
    description="Land the registry snapshot (restricted/*, weather stations).",
)

daily_job = dg.define_asset_job(
    "model_daily",
    selection=dg.AssetSelection.groups("silver") | dg.AssetSelection.assets(["gold", "system_daily"]),
    partitions_def=daily,
    description="Expected yield (silver/pv_intervals) and daily performance (gold/system_daily) for a day.",
)

alerts_job = dg.define_asset_job(
    "detect_alerts",
    selection=dg.AssetSelection.assets(["gold", "underperformance_alerts"], ["gold", "installer_notices"]),
    description="Re-detect underperformance episodes over the whole history, then send installers what changed.",
)

land_job = dg.define_asset_job(
    "land_bronze",
    selection=(dg.AssetSelection.groups("bronze") - dg.AssetSelection.assets(["bronze", "weather_stations"]))
    .required_multi_asset_neighbors(),
    partitions_def=daily,
    description="Land one landing day of inverter, meter, device and weather files into bronze.",
)

retention_job = dg.define_asset_job(
    "apply_retention",
    selection=dg.AssetSelection.groups("privacy"),
    description="Apply the retention policy (IP truncation/removal, raw telegram and quarantine text) and purge old versions.",
)

guarantee_job = dg.define_asset_job(
    "evaluate_guarantees",
    selection=dg.AssetSelection.assets(["gold", "guarantee_evaluations"]),
    description="Re-evaluate the kWh guarantee of every completed guarantee year (gold/guarantee_evaluations).",
)
