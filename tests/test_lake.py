"""The lake storage layer on a real local Delta table and on a real S3-protocol server."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from wattlake.lake import Lake, LakeError

SCHEMA = pa.schema([("system_id", pa.string()), ("ts_utc", pa.timestamp("us", tz="UTC")),
                    ("day", pa.date32()), ("value", pa.float64()), ("secret_note", pa.string())])
CONF = {"delta.dataSkippingStatsColumns": "day,ts_utc,system_id"}


def rows(ids, day=dt.date(2025, 6, 1), offset=0):
    ts = [dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=5 * i)
          for i in range(offset, offset + len(ids))]
    return pl.DataFrame({"system_id": ids, "ts_utc": ts, "day": [day] * len(ids),
                         "value": [float(i) for i in range(len(ids))], "secret_note": ["Jan Jansen"] * len(ids)})


def test_merge_insert_is_idempotent_and_counts(local_lake):
    batch = rows(["a", "b", "c"])
    assert local_lake.merge_insert("bronze/t", batch, ["system_id", "ts_utc"], SCHEMA, configuration=CONF).inserted == 3
    v = local_lake.version("bronze/t")
    assert local_lake.merge_insert("bronze/t", batch, ["system_id", "ts_utc"], SCHEMA, configuration=CONF).inserted == 0
    more = pl.concat([batch, rows(["d"], offset=7)])
    assert local_lake.merge_insert("bronze/t", more, ["system_id", "ts_utc"], SCHEMA, configuration=CONF).inserted == 1
    out = local_lake.read("bronze/t").sort("system_id")
    assert out.get_column("system_id").to_list() == ["a", "b", "c", "d"]
    assert local_lake.version("bronze/t") >= v
    # time travel to the first version still shows three rows
    assert local_lake.read("bronze/t", version=1).height == 3


@pytest.mark.parametrize("kind", ["polars", "arrow", "polars_ns"])
def test_merge_insert_into_partitions_with_data_reads_keys_not_rows(local_lake, monkeypatch, kind):
    """A batch spanning a partition that holds data and a new one: present keys are dropped by a
    narrow key read, the MERGE names only the new partition, and the counts are exact. The batch
    may be a Polars frame (filtered before the Arrow export, key types cast to the table's), or an
    Arrow table."""
    import wattlake.lake as lake_mod

    keys = ["system_id", "ts_utc"]
    june1, june2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)
    local_lake.merge_insert("bronze/t", rows(["a", "b", "c"], day=june1), keys, SCHEMA, configuration=CONF)
    predicates = []
    real_merge = lake_mod.DeltaTable.merge

    def spy(self, source, predicate, **kw):
        predicates.append(predicate)
        return real_merge(self, source, predicate=predicate, **kw)

    monkeypatch.setattr(lake_mod.DeltaTable, "merge", spy)
    # b and c are present on June 1; d is new on June 1; e and f land in the new June 2
    batch = pl.concat([rows(["b", "c"], day=june1, offset=1), rows(["d"], day=june1, offset=9),
                       rows(["e", "f"], day=june2)])
    if kind == "arrow":
        batch = batch.to_arrow().cast(SCHEMA)
    elif kind == "polars_ns":  # a key column in another unit than the table's
        batch = batch.with_columns(pl.col("ts_utc").dt.cast_time_unit("ns"))
    assert local_lake.merge_insert("bronze/t", batch, keys, SCHEMA, configuration=CONF).inserted == 3
    assert predicates[-1].endswith("t.day IN ('2025-06-02')")
    # everything present, every partition held: the MERGE scans nothing and inserts nothing
    assert local_lake.merge_insert("bronze/t", batch, keys, SCHEMA, configuration=CONF).inserted == 0
    assert predicates[-1].endswith("t.day IN ('0001-01-01')")
    out = local_lake.read("bronze/t")
    assert out.height == 6 and out.select(pl.struct(keys).n_unique()).item() == 6
    assert sorted(out.get_column("system_id").to_list()) == ["a", "b", "c", "d", "e", "f"]


def test_merge_insert_of_new_partitions_only_is_one_predicate_overwrite(local_lake):
    """A batch whose days all have no files yet is written without a MERGE: one WRITE commit whose
    predicate names exactly those days (no data value in the log), with the exact count; the
    days already held are untouched."""
    keys = ["system_id", "ts_utc"]
    june1, june2, june3 = dt.date(2025, 6, 1), dt.date(2025, 6, 2), dt.date(2025, 6, 3)
    local_lake.merge_insert("bronze/t", rows(["a", "b"], day=june1), keys, SCHEMA, configuration=CONF)
    before = local_lake.version("bronze/t")
    batch = pl.concat([rows(["c", "d"], day=june2), rows(["e"], day=june3)])
    result = local_lake.merge_insert("bronze/t", batch, keys, SCHEMA, configuration=CONF)
    assert result.inserted == 3 and result.version == before + 1 == local_lake.version("bronze/t")
    history = local_lake.table("bronze/t").history(1)[0]
    assert history["operation"] == "WRITE"
    assert history["operationParameters"]["mode"] == "Overwrite"
    assert history["operationParameters"]["predicate"] == "day = '2025-06-02'::date OR day = '2025-06-03'::date"
    out = local_lake.read("bronze/t")
    assert sorted(out.get_column("system_id").to_list()) == ["a", "b", "c", "d", "e"]
    # the same batch again: its days now hold files, so the MERGE path finds every key present
    assert local_lake.merge_insert("bronze/t", batch, keys, SCHEMA, configuration=CONF).inserted == 0
    assert local_lake.read("bronze/t").height == 5


def test_merge_insert_never_overwrites_a_partition_another_writer_filled(local_lake, monkeypatch):
    """The overwrite of a "new" day is committed against the snapshot the day was found empty in.
    When another writer fills that day between the look and the commit, the commit fails, the
    insert is re-run on the newer version (now a MERGE, the day being held), and both writers'
    rows are kept, none twice."""
    import wattlake.lake as lake_mod

    keys = ["system_id", "ts_utc"]
    june2 = dt.date(2025, 6, 2)
    local_lake.merge_insert("bronze/t", rows(["a"]), keys, SCHEMA, configuration=CONF)
    other = Lake(local_lake.root)
    real_drop, raced, looks = lake_mod._drop_present, [], []

    def look_then_race(table, data, keys, partition):
        looks.append(table.version())
        found = real_drop(table, data, keys, partition)
        if not raced:  # the other writer commits right after this writer looked
            raced.append("racing")
            raced[0] = other.merge_insert("bronze/t", rows(["x", "y"], day=june2), keys, SCHEMA,
                                          configuration=CONF).inserted
        return found

    monkeypatch.setattr(lake_mod, "_drop_present", look_then_race)
    # y is the same reading the other writer landed (12:05); z is new (12:10)
    mine = rows(["y", "z"], day=june2, offset=1)
    assert local_lake.merge_insert("bronze/t", mine, keys, SCHEMA, configuration=CONF).inserted == 1
    assert raced == [2]
    assert looks == [1, 1, 2]  # this writer at v1, the other at v1, this writer again at v2
    out = local_lake.read("bronze/t").filter(pl.col("day") == june2)
    assert sorted(out.get_column("system_id").to_list()) == ["x", "y", "z"]


def test_statistics_only_on_listed_columns(local_lake):
    local_lake.merge_insert("bronze/t", rows(["a", "b"]), ["system_id", "ts_utc"], SCHEMA, configuration=CONF)
    logs = "\n".join(p.read_text().strip() for p in Path(local_lake.uri("bronze/t"), "_delta_log").glob("*.json"))
    assert "Jan Jansen" not in logs  # a non-stats column's values never reach the log
    stats = [json.loads(json.loads(line)["add"]["stats"]) for line in logs.splitlines() if '"add"' in line]
    assert stats and all(set(s["minValues"]) <= {"day", "ts_utc", "system_id"} for s in stats)


def test_missing_column_is_a_clear_error(local_lake):
    with pytest.raises(LakeError, match="lacks columns"):
        local_lake.merge_insert("bronze/t", rows(["a"]).drop("value"), ["system_id"], SCHEMA)


def test_reading_a_missing_table_names_it(local_lake):
    with pytest.raises(LakeError, match="bronze/nothing"):
        local_lake.table("bronze/nothing")


def test_repr_never_shows_credentials():
    lake = Lake("s3://b/p", storage_options={"AWS_SECRET_ACCESS_KEY": "hunter2-secret", "AWS_ENDPOINT_URL": "http://x"})
    assert "hunter2" not in repr(lake) and "hunter2" not in lake.describe()


@pytest.mark.s3
def test_s3_merge_and_concurrent_writers(s3_env):
    """Two processes' worth of writers (threads) MERGE into one S3 table: nothing is lost."""
    lake = Lake(s3_env)
    assert lake.is_s3 and lake.storage_options["AWS_ALLOW_HTTP"] == "true"
    lake.ensure("bronze/t", SCHEMA, ["day"], CONF)
    errors: list[BaseException] = []

    def writer(prefix: str):
        try:
            for i in range(4):
                ids = [f"{prefix}{i}-{j}" for j in range(5)]
                lake.merge_insert("bronze/t", rows(ids, offset=i * 5), ["system_id", "ts_utc"], SCHEMA, configuration=CONF)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("x", "y")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    out = lake.read("bronze/t")
    assert out.height == 40 and out.get_column("system_id").n_unique() == 40
    assert lake.version("bronze/t") == 8  # one commit per MERGE, none overwritten
