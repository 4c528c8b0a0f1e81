"""Great Expectations suites and the Dagster asset checks that run them.

Every check is run on real landed data (which passes) and on the same data with one defect
(which fails exactly that check). Then, through Dagster: a blocking failure stops the
downstream asset of the partition, a warning does not, and outcomes and Data Docs are stored.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from quality.suites import SUITES, validate
from wattlake import tables as T
from wattlake.lake import Lake

DAY = dt.date(2025, 10, 26)
NOW = dt.datetime(2026, 1, 1)


@pytest.fixture(scope="module")
def clean(landed):
    """One UTC day of every bronze table, limited to series complete enough to pass everything."""
    lake, _, _, _ = landed
    systems = lake.read(T.SYSTEMS.name)
    out = {}
    for spec, key, per_day in ((T.INVERTER_READINGS, "system_id", 288), (T.METER_READINGS, "system_id", 96),
                               (T.DEVICE_READINGS, None, None), (T.WEATHER, "station_id", 24)):
        frame = lake.read(spec.name, filter=pl.col("day") == DAY)
        if key:
            complete = frame.group_by(key).agg(pl.col("ts_utc").n_unique().alias("n")).filter(pl.col("n") >= 0.95 * per_day)
            frame = frame.filter(pl.col(key).is_in(complete[key].implode()))
        assert frame.height > 0, spec.name
        out[spec.name] = frame
    out[T.QUARANTINE.name] = lake.read(T.QUARANTINE.name)
    out[T.PV_INTERVALS.name] = lake.read(T.PV_INTERVALS.name, filter=pl.col("day") == DAY)
    return out, systems


def _bump_one(frame, col, value):
    i = frame.height // 2 + 3  # inside a series, not on its first row
    return frame.with_columns(pl.when(pl.int_range(pl.len()) == i).then(value).otherwise(pl.col(col)).alias(col))


def _one_future(frame):
    i = frame.height // 2
    future = dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone.utc)
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == i).then(pl.lit(future)).otherwise(pl.col("ts_utc")).alias("ts_utc"),
        pl.when(pl.int_range(pl.len()) == i).then(pl.lit(future.date())).otherwise(pl.col("day")).alias("day"),
    )


def _drop_half_of_one_series(frame, key):
    first_id = frame[key].sort()[0]
    return frame.filter((pl.col(key) != first_id) | (pl.col("ts_utc").dt.hour() < 12))


def _counter_drop(frame, col, series_key):
    ordered = frame.sort(*series_key, "ts_utc")
    i = ordered.height // 2 + 3  # inside a series, not on its first row
    return ordered.with_columns(pl.when(pl.int_range(pl.len()) == i).then(pl.col(col) - 5.0).otherwise(pl.col(col)).alias(col))


COMMON = {
    "schema": lambda f: f.with_columns(pl.lit(1).alias("unexpected_column")),
    "types": lambda f: f.with_columns(pl.col("ts_utc").dt.replace_time_zone(None)) if "ts_utc" in f.columns
    else f.with_columns(pl.col("line_no").cast(pl.Int64)),
    "key_unique": lambda f: pl.concat([f, f.head(1)]),
    "ts_in_partition": lambda f: _bump_one(f, "ts_utc", pl.col("ts_utc") + pl.duration(days=1)),
    "ts_not_future": _one_future,
}
SPECIFIC = {
    ("bronze/inverter_readings", "types"): lambda f: f.with_columns(pl.col("ac_power_w").cast(pl.Int64)),
    ("bronze/inverter_readings", "counter_monotonic"): lambda f: _counter_drop(f, "ac_energy_total_kwh", ["system_id"]),
    ("bronze/inverter_readings", "ac_power_within_rating"): lambda f: _bump_one(f, "ac_power_w", pl.lit(50_000.0)),
    ("bronze/inverter_readings", "completeness"): lambda f: _drop_half_of_one_series(f, "system_id"),
    ("bronze/meter_readings", "counter_monotonic"): lambda f: _counter_drop(f, "imported_t1_kwh", ["system_id"]),
    ("bronze/meter_readings", "import_power_plausible"): lambda f: _bump_one(f, "power_imported_kw", pl.lit(40.0)),
    ("bronze/meter_readings", "export_power_plausible"): lambda f: _bump_one(f, "power_exported_kw", pl.lit(-1.0)),
    ("bronze/meter_readings", "completeness"): lambda f: _drop_half_of_one_series(f, "system_id"),
    ("bronze/device_readings", "counter_monotonic"): lambda f: _counter_drop(f, "energy_total_kwh", ["system_id", "device_type"]),
    ("bronze/device_readings", "power_plausible"): lambda f: _bump_one(f, "power_w", pl.lit(99_000.0)),
    ("bronze/weather", "irradiance_range"): lambda f: _bump_one(f, "ghi_w_m2", pl.lit(1600.0)),
    ("bronze/weather", "temperature_range"): lambda f: _bump_one(f, "temp_air_c", pl.lit(60.0)),
    ("bronze/weather", "wind_range"): lambda f: _bump_one(f, "wind_speed_m_s", pl.lit(-3.0)),
    ("bronze/weather", "completeness"): lambda f: _drop_half_of_one_series(f, "station_id"),
    ("silver/pv_intervals", "readings_per_hour"): lambda f: _bump_one(f, "n_readings", pl.lit(13, dtype=pl.Int32)),
    ("silver/pv_intervals", "actual_energy_plausible"): lambda f: _bump_one(f, "actual_energy_kwh", pl.lit(99.0)),
    ("silver/pv_intervals", "expected_energy_plausible"): lambda f: _bump_one(f, "expected_energy_kwh", pl.lit(-1.0)),
    ("silver/pv_intervals", "poa_range"): lambda f: _bump_one(f, "poa_irradiation_kwh_m2", pl.lit(2.0)),
    ("bronze/quarantine", "reason_present"): lambda f: _bump_one(f, "reason", pl.lit(None, dtype=pl.Utf8)),
}


def cases():
    for table, suite in SUITES.items():
        for check in suite.checks:
            mutate = SPECIFIC.get((table, check.name)) or COMMON.get(check.name)
            yield pytest.param(table, check.name, mutate, id=f"{table}:{check.name}")


def test_every_check_has_a_failing_case():
    missing = [p.id for p in cases() if p.values[2] is None]
    assert not missing


@pytest.mark.parametrize("table,check,mutate", list(cases()))
def test_check_passes_on_clean_data_and_fails_on_its_defect(clean, table, check, mutate):
    frames, systems = clean
    frame = frames[table]
    if table == T.QUARANTINE.name and frame.height == 0:
        pytest.skip("no quarantine rows in the fixture")
    good = {o.check: o for o in validate(table, frame, systems=systems, now=NOW)}
    assert good[check].passed, (check, good[check].unexpected_sample)
    bad = {o.check: o for o in validate(table, mutate(frame), systems=systems, now=NOW)}
    assert not bad[check].passed, check
    if check not in ("schema",):
        assert bad[check].unexpected_count >= 1


def test_all_checks_pass_on_the_clean_day(clean):
    frames, systems = clean
    for table in SUITES:
        failed = [o.check for o in validate(table, frames[table], systems=systems, now=NOW) if not o.passed]
        assert not failed, (table, failed)


# ------------------------------------------------------------------ through Dagster
def _downstream(asset_key: dg.AssetKey):
    ran = []

    @dg.asset(key=["silver", "probe"], deps=[asset_key],
              partitions_def=__import__("pipelines.partitions", fromlist=["daily"]).daily,
              backfill_policy=dg.BackfillPolicy.single_run())
    def probe() -> None:
        ran.append(True)

    return probe, ran


def _run(lake_root: str, landing: Path, day: str, docs: Path, asset_key: dg.AssetKey):
    from assets.bronze import weather
    from pipelines.resources import LakeResource, LandingResource
    from quality.checks import QUALITY_CHECKS, QualityResource

    probe, ran = _downstream(asset_key)
    checks = [c for c in QUALITY_CHECKS if asset_key in {k.asset_key for k in c.check_keys}]
    result = dg.materialize(
        [weather, probe, *checks], partition_key=day, raise_on_error=False,
        resources={"lake": LakeResource(root=lake_root), "landing": LandingResource(root=str(landing)),
                   "quality": QualityResource(docs_dir=str(docs))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    return result, ran


def _copy_lake(landed, tmp_path) -> Lake:
    import shutil

    lake, _, _, _ = landed
    shutil.copytree(lake.root, tmp_path / "lake")
    return Lake(str(tmp_path / "lake"))


def test_blocking_failure_stops_downstream_and_is_recorded(landed, tmp_path):
    lake = _copy_lake(landed, tmp_path)
    _, landing, days, _ = landed
    # a reading written straight into the table, outside its day partition: an integrity defect
    bad = lake.read(T.WEATHER.name, filter=pl.col("day") == DAY).head(1).with_columns(
        pl.col("ts_utc") + pl.duration(days=3), (pl.col("station_id") * 0 + 999).cast(pl.Int32).alias("station_id"))
    lake.append(T.WEATHER.name, bad, T.WEATHER.schema)
    result, ran = _run(lake.root, landing, str(DAY), tmp_path / "docs", dg.AssetKey(["bronze", "weather"]))
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evals["ts_in_partition"].passed and evals["ts_in_partition"].severity == dg.AssetCheckSeverity.ERROR
    assert not ran, "downstream ran although a blocking check failed"
    outcomes = lake.read(T.CHECK_OUTCOMES.name)
    row = outcomes.filter((pl.col("check") == "ts_in_partition") & (pl.col("table") == T.WEATHER.name)
                          & (pl.col("run_id") == result.run_id))
    assert row.height == 1 and not row["passed"][0] and row["unexpected_count"][0] == 1
    assert (tmp_path / "docs" / "index.html").is_file()


def test_warning_is_recorded_and_downstream_still_runs(landed, tmp_path):
    lake = _copy_lake(landed, tmp_path)
    _, landing, _, _ = landed
    # an implausible but well-placed value: a warning, not an integrity failure
    dt_ = lake.table(T.WEATHER.name)
    dt_.update(predicate=f"day = '{DAY}' AND station_id = 260", updates={"temp_air_c": "70.0"})
    result, ran = _run(lake.root, landing, str(DAY), tmp_path / "docs", dg.AssetKey(["bronze", "weather"]))
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evals["temperature_range"].passed
    assert evals["temperature_range"].severity == dg.AssetCheckSeverity.WARN
    assert all(e.passed for n, e in evals.items() if n != "temperature_range")
    assert ran == [True]
    docs = list((tmp_path / "docs" / "validations").rglob("*.html"))
    assert docs and any("temperature" in p.read_text() or "temp_air_c" in p.read_text() for p in docs)


def test_clean_partition_passes_every_check(landed, tmp_path):
    lake = _copy_lake(landed, tmp_path)
    _, landing, _, _ = landed
    result, ran = _run(lake.root, landing, str(DAY), tmp_path / "docs", dg.AssetKey(["bronze", "weather"]))
    evals = result.get_asset_check_evaluations()
    assert evals and all(e.passed for e in evals) and ran == [True]


def test_a_clean_first_day_on_a_new_lake_passes_the_quarantine_checks(tmp_path):
    """On a new lake, a landing day without a single rejected record never created
    ``bronze/quarantine``; its asset now leaves an empty table, and the suite passes on it."""
    from assets.bronze import quarantine
    from pipelines.resources import LakeResource
    from quality.checks import QUALITY_CHECKS, QualityResource

    lake = Lake(str(tmp_path / "lake"))
    asset_key = dg.AssetKey(["bronze", "quarantine"])
    checks = [c for c in QUALITY_CHECKS if asset_key in {k.asset_key for k in c.check_keys}]
    result = dg.materialize(
        [quarantine, *checks], partition_key=str(DAY), raise_on_error=False,
        resources={"lake": LakeResource(root=lake.root), "quality": QualityResource(docs_dir=str(tmp_path / "docs"))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    evals = result.get_asset_check_evaluations()
    assert evals and all(e.passed for e in evals)
    assert lake.read(T.QUARANTINE.name).height == 0
