"""Privacy assets: the daily retention run (see :mod:`wattlake.retention` for the policy)."""


import dagster as dg

from pipelines.resources import LakeResource
from wattlake.retention import POLICY, apply_retention


@dg.asset(
    key=dg.AssetKey(["privacy", "retention"]),
    group_name="privacy",
    description="Apply the retention policy: remote IPs truncated to /24 (/48) after "
    f"{POLICY.ip_truncate_after_days} days and removed after {POLICY.ip_remove_after_months} months; raw P1 "
    f"telegrams dropped after {POLICY.telegram_raw_after_days} days; quarantine raw text after "
    f"{POLICY.quarantine_raw_after_days} days; old versions and logs purged.",
    kinds={"deltalake", "polars"},
    pool="lake_retention",
)
def retention(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Apply :data:`wattlake.retention.POLICY` as of now; counts only in the metadata."""
    report = apply_retention(lake.lake())
    context.log.info(f"retention: {report.ips_truncated} IPs truncated, {report.ips_removed} removed, "
                     f"{report.telegrams_dropped} telegrams and {report.quarantine_raw_dropped} "
                     "quarantine texts dropped")
    return dg.MaterializeResult(metadata={
        "ips_truncated": report.ips_truncated, "ip_rows_merged": report.ip_rows_merged,
        "ips_removed": report.ips_removed, "telegrams_dropped": report.telegrams_dropped,
        "quarantine_raw_dropped": report.quarantine_raw_dropped,
        "tables_purged": dg.MetadataValue.json(report.tables_purged), "audit_request_id": report.request_id,
    })


PRIVACY_ASSETS = [retention]
