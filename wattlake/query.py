"""SQL and DataFrame access to the lake for analysts: one call, every table by its layout name.

>>> con = connect()                      # DuckDB, the lake of $WATTLAKE_LAKE (local or S3)
>>> con.sql("select day, sum(actual_kwh) from gold.system_daily group by day").pl()
>>> frames()["silver.pv_intervals"].filter(...).collect()   # Polars lazy frames

Personal data stays out unless asked for: the ``restricted.*`` tables are registered only with
``restricted=True``. Tables are read through delta-rs (Arrow datasets), not DuckDB's ``delta``
extension, which downloads itself at first use and fails offline. ``versions`` pins tables to a
Delta version (time travel), e.g. ``{"gold/system_daily": 12}``.
"""

from __future__ import annotations

from typing import Mapping

import duckdb
import polars as pl

from wattlake.lake import Lake


def _names(lake: Lake, restricted: bool) -> list[str]:
    return [n for n in lake.tables() if restricted or not n.startswith("restricted/")]


def connect(lake: Lake | str | None = None, *, restricted: bool = False,
            versions: Mapping[str, int] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view ``<layer>.<table>`` per Delta table.

    Parameters
    ----------
    lake : Lake or str, optional
        The lake (default: ``$WATTLAKE_LAKE`` or ``./lakehouse``).
    restricted : bool
        Also register the ``restricted.*`` tables (personal data). Off by default.
    versions : mapping, optional
        ``{"layer/table": version}`` to read those tables as of a Delta version.
    """
    lake = lake if isinstance(lake, Lake) else Lake.from_env(lake)
    versions = dict(versions or {})
    con = duckdb.connect()
    for name in _names(lake, restricted):
        layer, table = name.split("/")
        dataset = lake.table(name, versions.get(name)).to_pyarrow_dataset()
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
        con.register(f"__{layer}__{table}", dataset)
        con.execute(f'CREATE VIEW "{layer}"."{table}" AS SELECT * FROM "__{layer}__{table}"')
    return con


def frames(lake: Lake | str | None = None, *, restricted: bool = False,
           versions: Mapping[str, int] | None = None) -> dict[str, pl.LazyFrame]:
    """Polars lazy frames keyed ``"<layer>.<table>"`` (filters push down to the Delta scan)."""
    lake = lake if isinstance(lake, Lake) else Lake.from_env(lake)
    versions = dict(versions or {})
    return {name.replace("/", "."): lake.scan(name, versions.get(name)) for name in _names(lake, restricted)}
