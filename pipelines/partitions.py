"""Partitions: one per landing day (the day raw files arrived), in Europe/Amsterdam."""

from __future__ import annotations

import os

import dagster as dg

#: first landing day; override for a fleet whose data starts elsewhere
START_DATE = os.environ.get("WATTLAKE_START_DATE", "2025-01-01")

daily = dg.DailyPartitionsDefinition(start_date=START_DATE, timezone="Europe/Amsterdam")
