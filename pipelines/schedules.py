"""Schedules: land yesterday's files every night at 02:30 Europe/Amsterdam.

02:30 local is after local midnight (meter day files are local days) and after UTC midnight in
both winter and summer time (inverter, device and weather folders are UTC days).
"""


import datetime as dt

import dagster as dg

from pipelines.jobs import alerts_job, daily_job, land_job, retention_job

daily_landing_schedule = dg.build_schedule_from_partitioned_job(
    land_job, hour_of_day=2, minute_of_hour=30, name="daily_landing",
    description="Land the previous landing day at 02:30 Europe/Amsterdam.",
)


@dg.schedule(job=daily_job, cron_schedule="30 3 * * *", execution_timezone="Europe/Amsterdam",
             name="daily_model", description="Model the day before yesterday at 03:30 Europe/Amsterdam: its "
             "last hour needs yesterday's landing, which lands at 02:30.")
def daily_model_schedule(context: dg.ScheduleEvaluationContext):
    day = (context.scheduled_execution_time.date() - dt.timedelta(days=2)).isoformat()
    return dg.RunRequest(run_key=f"model:{day}", partition_key=day)


@dg.schedule(job=alerts_job, cron_schedule="30 4 * * *", execution_timezone="Europe/Amsterdam",
             name="daily_alerts", description="Re-detect underperformance episodes at 04:30 Europe/Amsterdam.")
def daily_alerts_schedule(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"alerts:{context.scheduled_execution_time.date()}")


@dg.schedule(job=retention_job, cron_schedule="30 5 * * *", execution_timezone="Europe/Amsterdam",
             name="daily_retention", description="Apply the retention policy at 05:30 Europe/Amsterdam, after the "
             "night's landing, modelling and alert runs (it rewrites bronze tables those runs write).")
def daily_retention_schedule(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"retention:{context.scheduled_execution_time.date()}")
