"""Sensors: pick up new or changed files in the landing folder.

``landing_sensor`` fingerprints every landing day folder (file names, sizes and mtimes) and
requests a ``land_bronze`` run for each day whose fingerprint changed since the last tick;
the run key includes the fingerprint, so a day is landed again only when its files change
(landing is idempotent either way). ``registry_sensor`` does the same for the registry files.
``inbox_sensor`` requests a ``pull_inbox`` run whenever the S3 inbox (if one is configured)
holds objects it has not seen in that state before.
"""


import hashlib
import json
from pathlib import Path

import dagster as dg

from pipelines.jobs import land_job, pull_inbox_job, registry_job
from pipelines.partitions import daily
from pipelines.resources import LandingResource, landing_root
from wattlake.landing import SOURCES
from wattlake.registry import SNAPSHOTS


def _fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def day_fingerprints(root: Path) -> dict[str, str]:
    """Fingerprint of each landing day across all sources: {YYYY-MM-DD: hash}."""
    files: dict[str, list[Path]] = {}
    for source in SOURCES:
        base = root / source
        if not base.is_dir():
            continue
        for day_dir in base.iterdir():
            if day_dir.is_dir() and len(day_dir.name) == 10:
                # hidden files are bookkeeping (the retention marker), not landing input
                files.setdefault(day_dir.name, []).extend(
                    p for p in day_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    return {day: _fingerprint(paths) for day, paths in files.items()}


@dg.sensor(job=land_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Land a landing day whenever its files appear or change.")
def landing_sensor(context: dg.SensorEvaluationContext):
    root = landing_root()
    seen = json.loads(context.cursor) if context.cursor else {}
    current = day_fingerprints(root)
    valid = set(daily.get_partition_keys())
    for day in sorted(current):
        if current[day] != seen.get(day) and day in valid:
            yield dg.RunRequest(run_key=f"{day}:{current[day]}", partition_key=day)
    context.update_cursor(json.dumps(current, sort_keys=True))


@dg.sensor(job=registry_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Refresh the restricted registry tables when the registry files change.")
def registry_sensor(context: dg.SensorEvaluationContext):
    root = landing_root()
    # the snapshots land_registry reads, and nothing else: another file in registry/ is no change
    paths = [root / name for name in SNAPSHOTS if (root / name).is_file()]
    if not paths:
        return
    fp = _fingerprint(paths)
    if fp != context.cursor:
        yield dg.RunRequest(run_key=f"registry:{fp}")
        context.update_cursor(fp)


@dg.sensor(job=pull_inbox_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Pull the S3 inbox (WATTLAKE_INBOX) into the landing folder when objects arrive.")
def inbox_sensor(context: dg.SensorEvaluationContext, landing: LandingResource):
    from wattlake.inbox import inbox_fingerprint

    uri = landing.inbox_uri()
    if not uri:
        return dg.SkipReason("no inbox configured (WATTLAKE_INBOX)")
    count, fp = inbox_fingerprint(uri)
    if count == 0:
        context.update_cursor("")
        return dg.SkipReason("the inbox is empty")
    if fp == context.cursor:  # objects the last pull left (conflicts, unrecognised keys): not again
        return dg.SkipReason(f"{count} objects left in the inbox, unchanged since the last pull")
    context.update_cursor(fp)
    return dg.RunRequest(run_key=f"inbox:{fp}")
