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


def test_an_s3_lake_that_is_not_there_is_an_error_not_an_empty_lake(s3_env, monkeypatch, capsys):
    """On S3 a mistyped prefix is refused like a local path that does not exist (an operator must
    never tell a data subject "we hold nothing" from the wrong place), and a missing bucket or an
    unreachable endpoint is one ``error:`` line with exit 2: no traceback, no credential."""
    from pipelines.cli import main

    import pyarrow as pa

    Lake(s3_env).append("bronze/t", pa.table({"k": ["a"]}), pa.schema([("k", pa.string())]))
    assert main(["--lake", s3_env, "tables"]) == 0
    capsys.readouterr()
    assert main(["--lake", s3_env + "-typo", "tables"]) == 2
    assert "error: no lake at " + s3_env + "-typo" in capsys.readouterr().err
    assert main(["--lake", s3_env + "-typo", "subject", "find", "--email", "jan@example.nl"]) == 2
    assert "no lake at" in capsys.readouterr().err
    assert main(["--lake", "s3://no-such-bucket/lake", "land"]) == 2
    err = capsys.readouterr().err
    assert "error: bucket 'no-such-bucket' does not exist" in err
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert main(["--lake", s3_env, "tables"]) == 2
    err += capsys.readouterr().err
    assert "error: cannot reach S3 at http://127.0.0.1:9" in err and "Traceback" not in err
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in err and os.environ["AWS_ACCESS_KEY_ID"] not in err


def test_land_from_a_landing_folder_that_is_not_there_is_exit_2(tmp_path, capsys):
    """A typo in --landing is refused with exit 2 and an error line; an empty folder is exit 1."""
    from pipelines.cli import main

    assert main(["--lake", str(tmp_path / "lake"), "--landing", str(tmp_path / "nope"), "land"]) == 2
    assert "error: no landing folder at" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--lake", str(tmp_path / "lake"), "--landing", str(tmp_path / "empty"), "land"]) == 1
    assert "error: no landing days found" in capsys.readouterr().err
    assert not (tmp_path / "lake").exists()  # nothing was created
