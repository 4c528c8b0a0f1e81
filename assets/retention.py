"""Privacy assets: the daily retention run (see :mod:`wattlake.retention` for the policy)."""


import dagster as dg

from pipelines.resources import ExportsResource, LakeResource, LandingResource
from wattlake.retention import POLICY, apply_retention


@dg.asset(
    key=dg.AssetKey(["privacy", "retention"]),
    group_name="privacy",
    description="Apply the retention policy: remote IPs truncated to /24 (/48) after "
    f"{POLICY.ip_truncate_after_days} days and removed after {POLICY.ip_remove_after_months} months; raw P1 "
    f"telegrams dropped after {POLICY.telegram_raw_after_days} days; quarantine raw text after "
    f"{POLICY.quarantine_raw_after_days} days; old versions and logs purged; the same limits on the landing "
    "folder's raw files (addresses rewritten, landed P1 files deleted); installer notice folders deleted "
    f"{POLICY.notice_folders_after_days} days after they were sent.",
    kinds={"deltalake", "polars"},
    pool="lake_retention",
)
def retention(context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource,
              exports: ExportsResource) -> dg.MaterializeResult:
    """Apply :data:`wattlake.retention.POLICY` as of now, to the lake, the landing folder and the
    installer notice folders under the exports root; counts only in the metadata."""
    root = landing.path()
    report = apply_retention(lake.lake(), landing_root=root if root.is_dir() else None,
                             export_root=exports.export_root())
    context.log.info(f"retention: {report.ips_truncated} IPs truncated, {report.ips_removed} removed, "
                     f"{report.telegrams_dropped} telegrams and {report.quarantine_raw_dropped} "
                     "quarantine texts dropped")
    return dg.MaterializeResult(metadata={
        "ips_truncated": report.ips_truncated, "ip_rows_merged": report.ip_rows_merged,
        "ips_removed": report.ips_removed, "telegrams_dropped": report.telegrams_dropped,
        "quarantine_raw_dropped": report.quarantine_raw_dropped,
        "tables_purged": dg.MetadataValue.json(report.tables_purged), "audit_request_id": report.request_id,
        "landing": dg.MetadataValue.json(vars(report.landing) if report.landing else None),
        "notice_folders_deleted": report.notice_folders_deleted, "notice_files_deleted": report.notice_files_deleted,
    })


PRIVACY_ASSETS = [retention]
