"""The operator's command line, run as a real process (the installed ``wattlake`` script)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from wattlake.lake import Lake

BIN = Path(sys.executable).parent


def run(args, tmp_path, **env):
    full_env = {**os.environ, "WATTLAKE_LAKE": str(tmp_path / "lakehouse"),
                "WATTLAKE_LANDING": str(tmp_path / "landing"), **env}
    full_env.pop("DAGSTER_HOME", None)
    return subprocess.run([str(BIN / "wattlake"), *args], capture_output=True, text=True, env=full_env,
                          cwd=tmp_path, timeout=300)


def test_demo_generates_lands_and_summarises(tmp_path):
    out = run(["demo", "--systems", "4", "--days", "2", "--start", "2025-06-01"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "landing summary" in text and "quarantine by reason" in text
    for table in ("bronze/inverter_readings", "bronze/meter_readings", "restricted/subjects"):
        assert table in text
    lake = Lake(str(tmp_path / "lakehouse"))
    n = lake.read("bronze/inverter_readings").height
    assert n > 4 * 2 * 200  # 4 systems x 2 days x ~288 five-minute readings, less bad input
    assert f"{n:,}" in text  # the printed count is the table's
    # running it again reuses the landing folder and lands nothing new
    again = run(["demo"], tmp_path)
    assert again.returncode == 0 and "using the existing landing folder" in again.stdout
    assert lake.read("bronze/inverter_readings").height == n
    tables = run(["tables"], tmp_path)
    assert tables.returncode == 0 and "bronze/weather" in tables.stdout and "gold/system_daily" in tables.stdout
    ev = run(["evaluate"], tmp_path)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "precision" in ev.stdout and "recall" in ev.stdout and "healthy system-days" in ev.stdout


def test_dagster_loads_the_code_location(tmp_path):
    out = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-m", "pipelines.definitions"],
                         capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=300,
                         env={**os.environ, "DAGSTER_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
