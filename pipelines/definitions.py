"""The wattlake Dagster code location: assets by layer, jobs, schedule, sensors, resources."""

from __future__ import annotations

import dagster as dg

from assets.bronze import BRONZE_ASSETS
from assets.registry import registry
from pipelines.jobs import land_job, registry_job
from pipelines.resources import LakeResource, LandingResource
from pipelines.schedules import daily_landing_schedule
from pipelines.sensors import landing_sensor, registry_sensor

RESOURCES = {"lake": LakeResource(), "landing": LandingResource()}

defs = dg.Definitions(
    assets=[registry, *BRONZE_ASSETS],
    jobs=[registry_job, land_job],
    schedules=[daily_landing_schedule],
    sensors=[landing_sensor, registry_sensor],
    resources=RESOURCES,
)
