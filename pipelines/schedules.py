"""Schedules: land yesterday's files every night at 02:30 Europe/Amsterdam.

02:30 local is after local midnight (meter day files are local days) and after UTC midnight in
both winter and summer time (inverter, device and weather folders are UTC days).
"""

from __future__ import annotations

import dagster as dg

from pipelines.jobs import land_job

daily_landing_schedule = dg.build_schedule_from_partitioned_job(
    land_job, hour_of_day=2, minute_of_hour=30, name="daily_landing",
    description="Land the previous landing day at 02:30 Europe/Amsterdam.",
)
