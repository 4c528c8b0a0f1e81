"""The wattlake Dagster code location: assets by layer, jobs, schedule, sensors, resources."""

from __future__ import annotations

import dagster as dg

from assets.bronze import BRONZE_ASSETS
from assets.guarantee import gold_guarantee_evaluations
from assets.performance import gold_installer_notices, gold_system_daily, gold_underperformance_alerts
from assets.registry import registry
from assets.retention import PRIVACY_ASSETS
from assets.yield_ import silver_pv_intervals
from pipelines.jobs import (alerts_job, daily_job, guarantee_job, land_job, pull_inbox_job, registry_job,
                           retention_job)
from pipelines.resources import ExportsResource, LakeResource, LandingResource
from pipelines.schedules import (daily_alerts_schedule, daily_landing_schedule, daily_model_schedule,
                                 daily_retention_schedule)
from pipelines.sensors import inbox_sensor, landing_sensor, registry_sensor
from quality.checks import QUALITY_CHECKS, QualityResource
from wattlake.keys import install_log_redaction

install_log_redaction()  # no secret in any log record of the code location (daemon, webserver, runs)

RESOURCES = {"lake": LakeResource(), "landing": LandingResource(), "quality": QualityResource(),
             "exports": ExportsResource()}

defs = dg.Definitions(
    assets=[registry, *BRONZE_ASSETS, silver_pv_intervals, gold_system_daily, gold_underperformance_alerts,
            gold_installer_notices, *PRIVACY_ASSETS, gold_guarantee_evaluations],
    asset_checks=QUALITY_CHECKS,
    jobs=[pull_inbox_job, registry_job, land_job, daily_job, alerts_job, retention_job, guarantee_job],
    schedules=[daily_landing_schedule, daily_model_schedule, daily_alerts_schedule, daily_retention_schedule],
    sensors=[inbox_sensor, landing_sensor, registry_sensor],
    resources=RESOURCES,
)
