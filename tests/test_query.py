"""The analyst query helper on a landed lake, locally and on the S3 test server."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from wattlake import tables as T
from wattlake.lake import Lake
from wattlake.query import connect, frames


def _check(lake: Lake):
    con = connect(lake)
    for name in lake.tables():
        layer, table = name.split("/")
        if layer == "restricted":
            with pytest.raises(duckdb.CatalogException):
                con.sql(f"select count(*) from {layer}.{table}").fetchall()
            continue
        n = con.sql(f"select count(*) from {layer}.{table}").fetchall()[0][0]
        assert n == lake.read(name).height, name
    # joins across layers work, and agree with Polars
    sql = con.sql("select s.system_id, sum(s.actual_energy_kwh) as kwh from silver.pv_intervals s "
                  "join gold.system_daily g using (system_id, day) group by 1 order by 1").pl()
    lazy = frames(lake)
    assert "restricted.subjects" not in lazy
    pol = (lazy["silver.pv_intervals"].group_by("system_id").agg(pl.col("actual_energy_kwh").sum().alias("kwh"))
           .sort("system_id").collect())
    assert sql["system_id"].to_list() == pol["system_id"].to_list()
    assert sql["kwh"].round(6).to_list() == pol["kwh"].round(6).to_list()
    # personal data only when asked for
    assert connect(lake, restricted=True).sql("select count(*) from restricted.subjects").fetchall()[0][0] > 0
    assert "restricted.subjects" in frames(lake, restricted=True)


def test_query_helper_local(landed):
    lake, _, _, _ = landed
    _check(lake)


def test_query_helper_time_travel(landed):
    lake, _, _, _ = landed
    name = T.INVERTER_READINGS.name
    first = next(v for v in range(lake.version(name) + 1) if lake.read(name, version=v).height > 0)
    con = connect(lake, versions={name: first})
    assert con.sql("select count(*) from bronze.inverter_readings").fetchall()[0][0] == lake.read(name, version=first).height
    assert frames(lake, versions={name: 0})["bronze.inverter_readings"].collect().height == 0


@pytest.mark.s3
def test_query_helper_on_s3(landed, s3_env):
    from pipelines.cli import materialize_all

    _, root, days, _ = landed
    materialize_all(days[0], days[-1], lake_root=s3_env, landing=str(root))
    _check(Lake(s3_env))
