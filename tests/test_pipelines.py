"""The Dagster code location: assets, groups, jobs, the nightly schedule and the landing sensors."""

from __future__ import annotations

import datetime as dt
import os
import time
import zoneinfo

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.sensors import landing_sensor, registry_sensor


def test_every_asset_has_group_and_description():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"bronze/inverter_readings", "bronze/meter_readings", "bronze/device_readings", "bronze/weather",
            "bronze/quarantine", "restricted/systems", "restricted/subjects"} <= keys
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name in {"bronze", "restricted", "silver", "gold", "privacy"}, key
        assert node.description and len(node.description) > 30, key
        if key.path[0] == "restricted":
            assert node.group_name == "restricted"


def test_schedule_lands_yesterday_after_midnight_amsterdam():
    schedule = defs.resolve_schedule_def("daily_landing")
    assert schedule.execution_timezone == "Europe/Amsterdam"
    assert schedule.cron_schedule == "30 2 * * *"
    ams = zoneinfo.ZoneInfo("Europe/Amsterdam")
    # contexts in a with: one left open keeps the instance it opened as Dagster's current
    # defs-state storage, and a later test building Definitions fails once that instance is gone
    with dg.instance_for_test() as instance, dg.build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2025, 10, 27, 2, 30, tzinfo=ams)) as ctx:
        requests = list(schedule.evaluate_tick(ctx).run_requests)
    assert [r.partition_key for r in requests] == ["2025-10-26"]


def test_model_schedule_takes_the_day_before_yesterday():
    schedule = defs.resolve_schedule_def("daily_model")
    ams = zoneinfo.ZoneInfo("Europe/Amsterdam")
    with dg.instance_for_test() as instance, dg.build_schedule_context(
            instance=instance, repository_def=defs.get_repository_def(),
            scheduled_execution_time=dt.datetime(2025, 10, 28, 3, 30, tzinfo=ams)) as ctx:
        requests = list(schedule.evaluate_tick(ctx).run_requests)
    assert [r.partition_key for r in requests] == ["2025-10-26"]


def test_landing_sensor_requests_new_and_changed_days(small_landing, monkeypatch):
    root, _ = small_landing
    monkeypatch.setenv("WATTLAKE_LANDING", str(root))
    days = sorted({p.name for s in ("inverter", "meter", "device", "weather") for p in (root / s).iterdir() if p.is_dir()})
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance)
        first = list(landing_sensor(ctx))
        assert sorted(r.partition_key for r in first) == days
        ctx2 = dg.build_sensor_context(instance=instance, cursor=ctx.cursor)
        assert list(landing_sensor(ctx2)) == []
        # a file changes on one day: only that day is requested again
        f = next((root / "weather" / days[1]).iterdir())
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        try:
            ctx3 = dg.build_sensor_context(instance=instance, cursor=ctx.cursor)
            assert [r.partition_key for r in landing_sensor(ctx3)] == [days[1]]
        finally:
            os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_registry_sensor_fires_once_per_change(small_landing, monkeypatch, tmp_path):
    import shutil

    from wattlake.registry import SNAPSHOTS, SYSTEMS_FILE

    root = tmp_path / "landing"
    for name in SNAPSHOTS:
        if (small_landing[0] / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(small_landing[0] / name, root / name)
    monkeypatch.setenv("WATTLAKE_LANDING", str(root))
    with dg.instance_for_test() as instance:
        def evaluate(cursor):
            ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
            return list(registry_sensor(ctx)), ctx.cursor

        requests, cursor = evaluate(None)
        assert len(requests) == 1
        assert evaluate(cursor)[0] == []
        # a file land_registry does not read is no reason to refresh the registry
        (root / "registry" / "notes.csv").write_text("a,b\n1,2\n")
        assert evaluate(cursor)[0] == []
        systems = root / SYSTEMS_FILE
        systems.write_bytes(systems.read_bytes() + b"\n")
        requests, changed = evaluate(cursor)
        assert len(requests) == 1 and changed != cursor


def test_jobs_resolve():
    assert defs.resolve_job_def("land_bronze").partitions_def is not None
    assert defs.resolve_job_def("refresh_registry").partitions_def is None


def test_instance_config_loads(tmp_path):
    import shutil
    from pathlib import Path

    shutil.copy(Path(__file__).parents[1] / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.run_coordinator is not None
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    finally:
        instance.dispose()
