"""The wattlake Dagster code location: assets by layer, jobs, schedule, sensors, resources."""

from __future__ import annotations

import dagster as dg

from assets.bronze import BRONZE_ASSETS
from assets.registry import registry
from pipelines.jobs import land_job, registry_job
from pipelines.resources import LakeResource, LandingResource
from pipelines.schedules import daily_landing_schedule
from pipelines.sensors import landing_sensor, registry_sensor
from quality.checks import QUALITY_CHECKS, QualityResource

RESOURCES = {"lake": LakeResource(), "landing": LandingResource(), "quality": QualityResource()}

defs = dg.Definitions(
    assets=[registry, *BRONZE_ASSETS],
    asset_checks=QUALITY_CHECKS,
    jobs=[registry_job, land_job],
    schedules=[daily_landing_schedule],
    sensors=[landing_sensor, registry_sensor],
    resources=RESOURCES,
)
