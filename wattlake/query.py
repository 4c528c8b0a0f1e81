"""SQL and DataFrame access to the lake for analysts: one call, every table by its layout name.

>>> con = connect()                      # DuckDB, the lake of $WATTLAKE_LAKE (local or S3)
>>> con.sql("select day, sum(actual_kwh) from gold.system_daily group by day").pl()
>>> frames()["silver.pv_intervals"].filter(...).collect()   # Polars lazy frames

Personal data stays out unless asked for: the ``restricted.*`` tables, and the columns that hold
device identifiers in raw form (:data:`wattlake.tables.RAW_IDENTIFIER_COLUMNS`: raw telegrams,
rejected raw text, landing file names), are there only with ``restricted=True``. The files of
each table version come from delta-rs, not DuckDB's ``delta`` extension, which downloads itself
at first use and fails offline. ``versions`` pins tables to a
Delta version (time travel), e.g. ``{"gold/system_daily": 12}``.
"""

from __future__ import annotations

from typing import Mapping

import duckdb
import polars as pl

from wattlake.lake import Lake


def _names(lake: Lake, restricted: bool) -> list[str]:
    return [n for n in lake.tables() if restricted or not n.startswith("restricted/")]


def _versions(names: list[str], versions: Mapping[str, int] | None) -> dict[str, int]:
    """``versions`` keyed ``layer/table`` (``layer.table`` accepted); a table that is not in the
    lake (or not registered without ``restricted=True``) is an error, not silently the current data."""
    out = {}
    for key, version in (versions or {}).items():
        name = key.replace(".", "/", 1) if "/" not in key else key
        if name not in names:
            raise ValueError(f"versions: no table {key!r} here (tables: {', '.join(names)})")
        out[name] = int(version)
    return out


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _hidden(columns, restricted: bool) -> list[str]:
    """Of a table's ``columns``, those an analyst sees only with ``restricted=True``."""
    from wattlake.tables import RAW_IDENTIFIER_COLUMNS

    return [] if restricted else [c for c in columns if c in RAW_IDENTIFIER_COLUMNS]


def _register(con: duckdb.DuckDBPyConnection, lake: Lake, name: str, version: int | None,
              restricted: bool = False) -> None:
    """View ``"<layer>"."<table>"`` over the table's files at ``version``.

    On a local lake DuckDB reads the Parquet files of that version itself (``read_parquet`` with
    the partition values from the ``day=...`` folders): delta-rs writes the files of a MERGE,
    DELETE or UPDATE with ``string_view`` columns, and a filter DuckDB pushes into a PyArrow
    dataset fails on those (PyArrow has no kernels for them). On S3, where DuckDB would need its
    ``httpfs`` extension (downloaded at first use), the PyArrow dataset is registered: there, filter
    string columns in Polars (:func:`frames`) instead.
    """
    layer, table = name.split("/")
    dt = lake.table(name, version)
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
    dataset = dt.to_pyarrow_dataset()
    arrow_schema = dataset.schema
    hidden = _hidden(arrow_schema.names, restricted)
    cols = ", ".join(f'"{c}"' for c in arrow_schema.names if c not in hidden)
    files = dt.file_uris()
    if lake.is_s3 or not files:
        source = dataset if files else arrow_schema.empty_table()
        con.register(f"__{layer}__{table}", source)
        con.execute(f'CREATE VIEW "{layer}"."{table}" AS SELECT {cols} FROM "__{layer}__{table}"')
        return
    parts = list(dt.metadata().partition_columns)
    hive = {c: _duck_type(arrow_schema.field(c).type) for c in parts}
    listing = "[" + ", ".join(_quote(f) for f in files) + "]"
    options = "union_by_name = true" + (
        ", hive_partitioning = true, hive_types = {" + ", ".join(f"{_quote(c)}: {_quote(t)}" for c, t in hive.items()) + "}"
        if parts else ", hive_partitioning = false")
    con.execute(f'CREATE VIEW "{layer}"."{table}" AS SELECT {cols} FROM read_parquet({listing}, {options})')


def _duck_type(arrow_type) -> str:
    """The DuckDB type of a partition column (dates and strings are all this catalogue uses)."""
    import pyarrow as pa

    if pa.types.is_date(arrow_type):
        return "DATE"
    if pa.types.is_integer(arrow_type):
        return "BIGINT"
    return "VARCHAR"


def connect(lake: Lake | str | None = None, *, restricted: bool = False,
            versions: Mapping[str, int] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view ``<layer>.<table>`` per Delta table.

    Parameters
    ----------
    lake : Lake or str, optional
        The lake (default: ``$WATTLAKE_LAKE`` or ``./lakehouse``).
    restricted : bool
        Also register the ``restricted.*`` tables and the raw identifier columns (personal data).
        Off by default.
    versions : mapping, optional
        ``{"layer/table": version}`` (or ``"layer.table"``) to read those tables as of a Delta
        version. An unknown table or a version that is gone is an error.
    """
    lake = lake if isinstance(lake, Lake) else Lake.from_env(lake)
    names = _names(lake, restricted)
    versions = _versions(names, versions)
    con = duckdb.connect()
    for name in names:
        _register(con, lake, name, versions.get(name), restricted)
    return con


def frames(lake: Lake | str | None = None, *, restricted: bool = False,
           versions: Mapping[str, int] | None = None) -> dict[str, pl.LazyFrame]:
    """Polars lazy frames keyed ``"<layer>.<table>"`` (filters push down to the Delta scan)."""
    lake = lake if isinstance(lake, Lake) else Lake.from_env(lake)
    names = _names(lake, restricted)
    versions = _versions(names, versions)
    out = {}
    for name in names:
        lf = lake.scan(name, versions.get(name))
        out[name.replace("/", ".")] = lf.drop(_hidden(lf.collect_schema().names(), restricted))
    return out
